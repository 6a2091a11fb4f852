bg_test(validation_test SOURCES validation_test.cc LIBS bg_service LABELS unit)
bg_test(subscription_unit_test SOURCES subscription_unit_test.cc LIBS bg_service LABELS unit)
bg_test(account_created_test SOURCES account_created_test.cc
        LIBS bg_service bg_killbill_client PkgConfig::HTTPLIB LABELS integration)
bg_test(killbill_call_test SOURCES killbill_call_test.cc LIBS bg_service LABELS unit)
