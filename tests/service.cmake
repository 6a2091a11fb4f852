bg_test(validation_test SOURCES validation_test.cc LIBS bg_service LABELS unit)
