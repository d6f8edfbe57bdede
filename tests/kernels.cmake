# Op tests of kernels/ (CPU backend against naive double-precision references written in the test)
trustee_c_test(test_kernels SOURCES test_kernels.c)
