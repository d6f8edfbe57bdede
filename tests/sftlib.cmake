# The SFT warm start as a library: an oracle dataset (sim/oracle.h) of 2 envs x 4 tasks, rendered
# (learner/sft.h) and trained on in-process by a tiny random-init Qwen3 with the full vocabulary;
# the loss halves and equal seeds give bitwise-equal weights.
trustee_c_test(test_sftlib SOURCES test_sftlib.c LIBS trustee_learner trustee_sim)
set_tests_properties(test_sftlib PROPERTIES ENVIRONMENT "${TRUSTEE_TEST_ENV};OMP_NUM_THREADS=1")
