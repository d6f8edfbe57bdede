# Restricted output vocabulary (qwen3_set_output_vocab): engine logits / samples / log-probs, learner
# log-probs / entropies / gradients against the unrestricted model (model/qwen3, engine, qwen3_train)
trustee_c_test(test_vocab SOURCES test_vocab.c)

# timing helper (run by hand): bench_vocab MODEL_DIR N_IDS [THREADS], see bench/bench_vocab.c
add_executable(bench_vocab ${CMAKE_SOURCE_DIR}/bench/bench_vocab.c)
target_link_libraries(bench_vocab PRIVATE trustee_model)
