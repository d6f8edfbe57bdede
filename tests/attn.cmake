# CPU attention: the OpenBLAS (GEMM) paths of op_attention / op_attention_backward against the
# scalar reference kernels (kernels/cpu/attention.c, backward.c) on odd shapes.
trustee_c_test(test_attention_gemm SOURCES test_attention_gemm.c)

# timing helper for bench/attention.sh
add_executable(bench_attention ${CMAKE_SOURCE_DIR}/bench/bench_attention.c)
target_link_libraries(bench_attention PRIVATE trustee_model)
