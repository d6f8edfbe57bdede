# Constrained JSON decoding (sim/grammar) and the four LM roles (sim/roles)
trustee_c_test(test_grammar SOURCES test_grammar.c LIBS trustee_sim)
# test_lmroles needs a model made by `trustee init-model`: built here, run by lmroles.sh
add_executable(test_lmroles test_lmroles.c)
target_link_libraries(test_lmroles PRIVATE trustee_sim trustee_model)
target_compile_definitions(test_lmroles PRIVATE TEST_DATA_DIR="${TRUSTEE_TEST_DATA}" SOURCE_DIR="${CMAKE_SOURCE_DIR}")
trustee_sh_test(test_lmroles lmroles.sh $<TARGET_FILE:test_lmroles>)
