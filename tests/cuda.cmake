# CUDA backend (kernels/cuda).
# The shared per-element / per-row math (kernels/cuda/rowops.h) is plain C as well: it is tested on
# the host whether or not nvcc is present.
trustee_c_test(cuda_rowops SOURCES test_cuda_rowops.c)
# The op harness: every op on CUDA against the CPU backend; exits 77 (skip) without a usable
# device. cuda_ops_harness runs the same harness with the CPU as the device under test, so the
# harness itself is checked on machines without a GPU.
if(TRUSTEE_CUDA)
  trustee_c_test(cuda_ops SOURCES test_cuda_ops.c)
  add_test(NAME cuda_ops_harness COMMAND cuda_ops --self-check)
  set_tests_properties(cuda_ops_harness PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}")
  # AdamW / sampling / chunked LM-head log-prob on CUDA vs their CPU references (learner/optim.c,
  # model/sampler.c, kernels/lmhead.c); the harness checks the CPU references against double loops
  trustee_c_test(cuda_train SOURCES test_cuda_train.c LIBS trustee_learner)
  add_test(NAME cuda_train_harness COMMAND cuda_train --self-check)
  set_tests_properties(cuda_train_harness PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}")
  # the backward ops (kernels/cuda/backward.cu) in the same way: CUDA against the CPU backend, and
  # cuda_backward_harness with the CPU as the device under test
  trustee_c_test(cuda_backward SOURCES test_cuda_backward.c)
  add_test(NAME cuda_backward_harness COMMAND cuda_backward --self-check)
  set_tests_properties(cuda_backward_harness PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}")
  # the Qwen3 training forward / backward (model/qwen3_train) with the model on CUDA vs the CPU:
  # lp, entropy, every gradient (tied, untied, BF16 weights; checkpointing; output restriction),
  # and the optimizer step on the device (learner/optim.c through kernels/cuda/adamw.h);
  # train_cuda_harness runs the same comparisons with the CPU as the device under test
  trustee_c_test(test_train_cuda SOURCES test_train_cuda.c LIBS trustee_learner)
  add_test(NAME train_cuda_harness COMMAND test_train_cuda --self-check)
  set_tests_properties(train_cuda_harness PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV}")
endif()
