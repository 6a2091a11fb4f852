# dispatch/: the call gate, the flow control lanes, the health monitor and the dispatcher, under bg::FakeClock.
bg_test(call_gate_test SOURCES call_gate_test.cc LIBS bg_dispatch LABELS unit)
bg_test(health_monitor_test SOURCES health_monitor_test.cc
        LIBS bg_dispatch prometheus-cpp::core LABELS unit)
bg_test(dispatcher_test SOURCES dispatcher_test.cc LIBS bg_dispatch LABELS unit)
bg_test(flow_control_test SOURCES flow_control_test.cc LIBS bg_dispatch LABELS unit)
# The setters a configuration reload applies through (flow/ and FlowControl).
bg_test(flow_reload_test SOURCES flow_reload_test.cc LIBS bg_dispatch LABELS unit)
