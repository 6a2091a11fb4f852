bg_test(killbill_parse_test SOURCES killbill_parse_test.cc LIBS bg_killbill_client LABELS unit)
bg_test(killbill_billing_parse_test SOURCES killbill_billing_parse_test.cc LIBS bg_killbill_client
        LABELS unit)
bg_test(killbill_client_test SOURCES killbill_client_test.cc
        LIBS bg_killbill_client bg_sim PkgConfig::HTTPLIB nlohmann_json::nlohmann_json
        LABELS integration)
