# BFCL AST checker (sim/bfcl.c, `trustee check-bfcl`): reproduces every verdict of BFCL's own
# checker in tests/data/bfcl (BFCL v4 single-turn data + verdicts, see tests/data/README.md).
trustee_sh_test(bfcl_check bfcl_check.sh)
