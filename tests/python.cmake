# The Python client (clients/python, pytest): run them all with `ctest -R python_client`.
#   python_client_stubs  generates the gRPC stubs from proto/ into <build>/clients/python/gen
#                        with Debian's python3-grpc-tools (a fixture: the others need it), so
#                        they are never stale and never committed;
#   python_client_unit   the retry/pushback policy on a fake channel and a fake clock;
#   python_client_e2e    sync and grpc.aio clients and the example registration against
#                        killbill-sim + billing-gateway processes on free loopback ports;
#   python_client_storm  200 async callers registering for 18 s: no DEADLINE_EXCEEDED, every
#                        registration succeeded or was rejected explicitly, pushbacks honoured.
# The interpreter is the first of /usr/bin/python3 and the python3 on PATH that has grpc,
# grpc_tools and pytest (scripts/setup.sh installs python3-grpcio, python3-grpc-tools and
# python3-pytest), or -DBG_PYTHON3=... Not under TSan: that build leaves out everything that
# runs gRPC (scripts/sanitize.sh).
if(BG_SANITIZE MATCHES "thread")
  return()
endif()

if(NOT BG_PYTHON3)
  find_program(BG_PATH_PYTHON3 python3)
  foreach(candidate /usr/bin/python3 ${BG_PATH_PYTHON3})
    execute_process(COMMAND ${candidate} -c "import grpc, grpc_tools.protoc, pytest"
                    RESULT_VARIABLE bg_python_rc OUTPUT_QUIET ERROR_QUIET)
    if(bg_python_rc EQUAL 0)
      set(BG_PYTHON3 ${candidate} CACHE FILEPATH
          "python3 with grpcio, grpc_tools and pytest, for the Python client's tests")
      break()
    endif()
  endforeach()
endif()

if(NOT BG_PYTHON3)
  message(WARNING "no python3 with grpcio, grpc_tools and pytest: python_client_* tests fail "
                  "until scripts/setup.sh installs them and CMake runs again")
  add_test(NAME python_client_missing
    COMMAND sh -c "echo 'no python3 with grpcio, grpc_tools and pytest when CMake ran: run scripts/setup.sh, then cmake again' >&2; exit 1")
  return()
endif()

set(bg_py_root ${PROJECT_SOURCE_DIR}/clients/python)
set(bg_py_stubs ${PROJECT_BINARY_DIR}/clients/python/gen)
add_test(NAME python_client_stubs
  COMMAND ${BG_PYTHON3} ${bg_py_root}/generate_stubs.py ${bg_py_stubs})
set_tests_properties(python_client_stubs PROPERTIES FIXTURES_SETUP bg_python_stubs LABELS unit)

foreach(kind unit e2e storm)
  if(kind STREQUAL "unit")
    set(file tests/test_retry.py)
    set(label unit)
  else()
    set(file tests/test_${kind}.py)
    set(label e2e)
  endif()
  add_test(NAME python_client_${kind}
    COMMAND ${BG_PYTHON3} -m pytest -p no:cacheprovider -q -rA -s ${file}
    WORKING_DIRECTORY ${bg_py_root})
  set_tests_properties(python_client_${kind} PROPERTIES
    FIXTURES_REQUIRED bg_python_stubs
    ENVIRONMENT "BG_PYTHON_STUBS=${bg_py_stubs};BG_SIM_BINARY=$<TARGET_FILE:killbill-sim>;BG_GATEWAY_BINARY=$<TARGET_FILE:billing-gateway>;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 120
    LABELS ${label})
endforeach()
