# HDF5 run log (comm/runlog): the C API, then h5py on what it wrote (tests/runlog_check.py, the
# reusable schema checker, and tests/runlog_values.py, the formula values), live SWMR reading, and
# a kill -9 + resume. The shell parts need /usr/bin/python3 with h5py (they skip without it).
trustee_c_test(test_runlog SOURCES test_runlog.c LIBS trustee_comm
               ARGS ${CMAKE_CURRENT_BINARY_DIR}/runlog-tmp)
add_executable(runlog_tool runlog_tool.c)
target_link_libraries(runlog_tool PRIVATE trustee_comm)
foreach(part values live crash)
  trustee_sh_test(runlog_${part} runlog.sh ${part})
  set_property(TEST runlog_${part} APPEND PROPERTY ENVIRONMENT
               "RUNLOG_TOOL=$<TARGET_FILE:runlog_tool>;TEST_RUNLOG=$<TARGET_FILE:test_runlog>")
endforeach()
