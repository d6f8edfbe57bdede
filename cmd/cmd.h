// Subcommands of the trustee binary. Each takes (argc, argv) with argv[0] = the subcommand name,
// returns the process exit status, and prints its own --help.
#pragma once

int cmd_tokenize(int argc, char **argv);   // cmd/tokenize.c
int cmd_logits(int argc, char **argv);     // cmd/logits.c
int cmd_generate(int argc, char **argv);   // cmd/generate.c
int cmd_init_model(int argc, char **argv); // cmd/init_model.c
int cmd_grad(int argc, char **argv);       // cmd/grad.c
int cmd_bench_generate(int argc, char **argv); // cmd/generate.c (hidden: not in the usage list)
int cmd_sft(int argc, char **argv);         // cmd/sft.c
int cmd_env(int argc, char **argv);         // cmd/env.c
int cmd_bench_train(int argc, char **argv); // cmd/bench_train.c (hidden)
int cmd_check_bfcl(int argc, char **argv);  // cmd/check_bfcl.c
int cmd_eval(int argc, char **argv);        // cmd/eval.c
int cmd_train(int argc, char **argv);       // cmd/train.c
int cmd_inspect(int argc, char **argv);     // cmd/inspect.c
int cmd_plan_memory(int argc, char **argv); // cmd/plan_memory.c

// prints "trustee <sub>: <err_msg()>" on stderr and returns 1 (for `return cmd_fail("sub")`)
int cmd_fail(const char *sub);
