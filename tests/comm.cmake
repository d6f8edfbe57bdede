# comm/msg: msgpack codecs of every message that crosses ranks (docs/protocol.md).

# round trips of every type with random values, every truncation, single-byte corruptions,
# hand-built malformed messages, exact bytes
trustee_c_test(test_msg SOURCES test_msg.c LIBS trustee_comm)
# the same test with comm/msg.c + kernels/err.c compiled under ASan + UBSan (gcc)
add_executable(test_msg_asan test_msg.c ${CMAKE_SOURCE_DIR}/comm/msg.c ${CMAKE_SOURCE_DIR}/kernels/err.c)
target_include_directories(test_msg_asan PRIVATE ${CMAKE_SOURCE_DIR})
target_compile_options(test_msg_asan PRIVATE -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
                       -fno-omit-frame-pointer)
target_link_options(test_msg_asan PRIVATE -fsanitize=address,undefined)
target_link_libraries(test_msg_asan PRIVATE PkgConfig::MSGPACK)
add_test(NAME test_msg_asan COMMAND test_msg_asan)
set_tests_properties(test_msg_asan PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV};ASAN_OPTIONS=detect_leaks=1")

# msg_tool: decode a file / write a random message (driver of the Python cross-check and the fuzz seeds)
add_executable(msg_tool msg_tool.c)
target_link_libraries(msg_tool PRIVATE trustee_comm)
# the C codec against Python's msgpack (python3-msgpack, /usr/bin/python3) both ways; skips (77)
# without the module
add_test(NAME msg_python COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/msg_check.py
         $<TARGET_FILE:msg_tool> 40)
set_tests_properties(msg_python PROPERTIES SKIP_RETURN_CODE 77)

# libFuzzer targets, one per decoder (fuzz_msg_task, fuzz_msg_sim_req, ...), built with clang when
# it can link -fsanitize=fuzzer (needs libclang-rt-14-dev); part of `all` then, so that the
# fuzz_msg_smoke test can run them. bench/fuzz.sh runs them for 1,000,000 executions each.
find_program(TRUSTEE_CLANG NAMES clang clang-16 clang-15 clang-14)
set(TRUSTEE_LIBFUZZER OFF)
if(TRUSTEE_CLANG)
  set(_probe ${CMAKE_CURRENT_BINARY_DIR}/libfuzzer_probe.c)
  file(WRITE ${_probe} "#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${TRUSTEE_CLANG} -fsanitize=fuzzer,address,undefined ${_probe}
                          -o ${CMAKE_CURRENT_BINARY_DIR}/libfuzzer_probe
                  RESULT_VARIABLE _probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(_probe_rc EQUAL 0)
    set(TRUSTEE_LIBFUZZER ON)
  endif()
endif()
if(TRUSTEE_LIBFUZZER)
  set(_fz_flags -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  set(_fz_inc -I${CMAKE_SOURCE_DIR})
  foreach(d ${MSGPACK_INCLUDE_DIRS})
    list(APPEND _fz_inc -I${d})
  endforeach()
  set(_fz_dir ${CMAKE_CURRENT_BINARY_DIR}/fuzz_msg_obj)
  file(MAKE_DIRECTORY ${_fz_dir})
  add_custom_command(OUTPUT ${_fz_dir}/msg.o ${_fz_dir}/err.o
    COMMAND ${TRUSTEE_CLANG} -std=gnu11 ${_fz_flags} -fsanitize=fuzzer-no-link ${_fz_inc}
            -c ${CMAKE_SOURCE_DIR}/comm/msg.c -o ${_fz_dir}/msg.o
    COMMAND ${TRUSTEE_CLANG} -std=gnu11 ${_fz_flags} -fsanitize=fuzzer-no-link ${_fz_inc}
            -c ${CMAKE_SOURCE_DIR}/kernels/err.c -o ${_fz_dir}/err.o
    DEPENDS ${CMAKE_SOURCE_DIR}/comm/msg.c ${CMAKE_SOURCE_DIR}/comm/msg.h ${CMAKE_SOURCE_DIR}/kernels/err.c
    COMMENT "comm/msg.c for libFuzzer (clang, ASan + UBSan)" VERBATIM)
  set(_fz_bins "")
  set(_fz_num 1)
  foreach(t task sim_req sim_rep traj curric weights shutdown) # msg_type_t order: 1..7
    add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_msg_${t}
      COMMAND ${TRUSTEE_CLANG} -std=gnu11 ${_fz_flags} -fsanitize=fuzzer ${_fz_inc} -DFUZZ_TARGET=${_fz_num}
              ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_msg.c ${_fz_dir}/msg.o ${_fz_dir}/err.o ${MSGPACK_LINK_LIBRARIES}
              -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_msg_${t}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_msg.c ${_fz_dir}/msg.o ${_fz_dir}/err.o
      COMMENT "libFuzzer target fuzz_msg_${t}" VERBATIM)
    list(APPEND _fz_bins ${CMAKE_CURRENT_BINARY_DIR}/fuzz_msg_${t})
    math(EXPR _fz_num "${_fz_num} + 1")
  endforeach()
  add_custom_target(fuzz_msg ALL DEPENDS ${_fz_bins})
  # every target for 20,000 executions from seeds of valid encodings
  add_test(NAME fuzz_msg_smoke COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_msg.sh ${CMAKE_BINARY_DIR} 20000)
  set_tests_properties(fuzz_msg_smoke PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
else()
  message(STATUS "trustee: no clang with libFuzzer: fuzz_msg_* targets and the fuzz_msg_smoke test are not defined")
endif()
