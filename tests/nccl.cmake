# comm/nccl: GPU collectives with NCCL (learner gradient all-reduce, weight broadcast).
# test_nccl runs under mpirun, one rank per GPU; ctest runs one rank (a machine with G GPUs runs
# `mpirun -np G build/test_nccl` by hand for the multi-rank checks). Exits 77 (skip) without a
# usable CUDA device, or when two ranks would share a GPU.
# bench_allreduce: all-reduce bus bandwidth, run by hand: `mpirun -np G build/bench_allreduce [MAX] [ITERS]`.
if(TRUSTEE_CUDA AND TRUSTEE_NCCL)
  add_executable(test_nccl test_nccl.c)
  target_link_libraries(test_nccl PRIVATE trustee_comm trustee_model)
  add_test(NAME test_nccl COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:test_nccl>)
  set_tests_properties(test_nccl PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}" SKIP_RETURN_CODE 77
                       TIMEOUT 300)
  # the result checkers of test_nccl against host emulations of NCCL's reductions (no GPU, no MPI)
  add_test(NAME test_nccl_harness COMMAND test_nccl --self-check)
  set_tests_properties(test_nccl_harness PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}")
  # two ranks: on a machine with one GPU this checks the refusal path (both ranks would get the same
  # GPU: nccl_device_plan reports it, the test skips); with >= 2 GPUs it runs the 2-rank checks
  add_test(NAME test_nccl_np2 COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe
           $<TARGET_FILE:test_nccl>)
  set_tests_properties(test_nccl_np2 PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}" SKIP_RETURN_CODE 77
                       TIMEOUT 300)
  add_executable(bench_allreduce ${CMAKE_SOURCE_DIR}/bench/bench_allreduce.c)
  target_link_libraries(bench_allreduce PRIVATE trustee_comm)
endif()
