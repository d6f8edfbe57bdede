# Qwen3 with random weights on a device (qwen3_init_random) and the GPU benchmark (bench/gpu.sh).
# model_random: CPU checks; model_random_cuda: BF16 weights on CUDA against the CPU forward of the
# same weights (exits 77 without a usable device).
trustee_c_test(model_random SOURCES test_model_random.c)
add_test(NAME model_random_cuda COMMAND model_random --cuda)
set_tests_properties(model_random_cuda PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}" SKIP_RETURN_CODE 77)
if(TRUSTEE_CUDA)
  # bench_gpu: decode / prefill / training throughput of Qwen3-8B-shaped models on one GPU.
  # Run by bench/gpu.sh, not by ctest; bench_gpu_dry checks its CPU side (arguments, parameter and
  # FLOP counts) against numbers worked out by hand from the Qwen3-8B config.
  add_executable(bench_gpu ${CMAKE_SOURCE_DIR}/bench/bench_gpu.c)
  target_link_libraries(bench_gpu PRIVATE trustee_model CUDA::cudart)
  add_test(NAME bench_gpu_dry COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_gpu_dry.sh $<TARGET_FILE:bench_gpu>
           ${CMAKE_CURRENT_SOURCE_DIR}/data/qwen3-tiny/config.json)
  set_tests_properties(bench_gpu_dry PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}")
endif()
