# Tokenizer tests (model/tokenizer.c, model/tok_*.c, cmd/tokenize.c).
trustee_c_test(test_tokenizer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer.c
               LIBS PkgConfig::JANSSON PkgConfig::UTF8PROC)

# encode timing helper for bench/tokenizer.sh
add_executable(bench_tokenizer ${CMAKE_SOURCE_DIR}/bench/bench_tokenizer.c)
target_link_libraries(bench_tokenizer PRIVATE trustee_model)

# differential test against HF tokenizers (needs the venv: scripts/install-deps.sh --tests)
add_executable(tokenizer_batch ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_batch.c)
target_link_libraries(tokenizer_batch PRIVATE trustee_model)
trustee_sh_test(test_tokenizer_diff test_tokenizer_diff.sh $<TARGET_FILE:tokenizer_batch>)

# the `trustee tokenize` command end to end
trustee_sh_test(test_tokenize_cmd test_tokenize_cmd.sh)
