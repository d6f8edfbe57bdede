# BFCL AST checker (sim/bfcl.c, `trustee check-bfcl`): reproduces every verdict of BFCL's own
# checker in tests/data/bfcl (BFCL v4 single-turn data + verdicts, see tests/data/README.md).
trustee_sh_test(bfcl_check bfcl_check.sh)
# The pipeline end to end without a model: every entry's ground-truth calls rendered as a Qwen3
# assistant turn, tokenized, decoded, parsed back and judged (all valid but listed exceptions).
trustee_c_test(test_bfcl_roundtrip SOURCES bfcl_roundtrip.c LIBS trustee_sim
               ARGS ${TRUSTEE_TEST_DATA}/bfcl/bfcl-v4-single-turn.tar.gz
                    ${CMAKE_BINARY_DIR}/bfcl-roundtrip-data)
# `trustee eval --bench bfcl` on a 5-entry slice per category with a random init-model checkpoint:
# record fields and counts, prompt lengths against jinja2 + HF tokenizers, check-bfcl agreement.
trustee_sh_test(bfcl_eval bfcl_eval.sh)
