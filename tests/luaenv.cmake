# Programmatic Lua environments (sim/luaenv, docs/environments.md): every env under sim/data/envs
# (globbed from the source tree when the test runs) against the contract (oracle top reward at
# D = 1/50/100, do-nothing bottom, half-way oracle strictly between, random policy far below),
# the sandbox against malicious scripts, malformed scripts, oracle transcripts through chat_load_json.
trustee_c_test(test_luaenv SOURCES test_luaenv.c LIBS trustee_sim)
# the CLI: list / sample / play (piped stdin) / oracle JSONL
trustee_sh_test(luaenv_cli luaenv_cli.sh)
