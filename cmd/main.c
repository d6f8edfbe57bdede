// trustee: train tool-calling LLM agents with GRPO inside simulated environments.
// main() only dispatches to a subcommand (cmd/*.c); library code never exits.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "kernels/err.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand_t;

static const subcommand_t SUBCOMMANDS[] = {
    {"train", cmd_train, "run the TRUSTEE loop: rollouts in simulated environments, GRPO, curriculum"},
    {"init-model", cmd_init_model, "write a random-init Qwen3 checkpoint (HF config + safetensors + tokenizer)"},
    {"generate", cmd_generate, "generate a continuation of a prompt or a chat with a Qwen3 model"},
    {"logits", cmd_logits, "print the last-position logits for a list of token ids"},
    {"grad", cmd_grad, "loss and gradient of every parameter for a case file (sft / grpo)"},
    {"tokenize", cmd_tokenize, "text on stdin -> token ids (or ids -> text with --decode)"},
    {"sft", cmd_sft, "supervised fine-tuning on chat transcripts (JSONL), loss on assistant tokens"},
    {"env", cmd_env, "programmatic Lua environments: list, sample a task, play as the agent, oracle transcripts"},
    {"check-bfcl", cmd_check_bfcl, "judge candidate tool calls with the BFCL AST checker (verdicts JSONL)"},
    {"eval", cmd_eval, "evaluate a checkpoint on a benchmark (BFCL single-turn): accuracy per category"},
    {"inspect", cmd_inspect, "print a training step of a run log: its row, tasks, a trajectory's transcript"},
    {"plan-memory", cmd_plan_memory, "device memory budget of a role (learner, rollout, sim): every buffer, total vs GPU"},
    {"bench-generate", cmd_bench_generate, NULL}, // hidden: batched generation throughput
    {"bench-train", cmd_bench_train, NULL},       // hidden: forward+backward and optimizer timing
};
#define N_SUBCOMMANDS ((int)(sizeof SUBCOMMANDS / sizeof SUBCOMMANDS[0]))

int cmd_fail(const char *sub) {
    fprintf(stderr, "trustee %s: error: %s\n", sub, err_msg());
    return 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: trustee <command> [options]   (trustee <command> --help for its options)\n\n"
               "commands:\n");
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        if (SUBCOMMANDS[i].summary) // NULL: a hidden subcommand
            fprintf(f, "  %-12s %s\n", SUBCOMMANDS[i].name, SUBCOMMANDS[i].summary);
}

int main(int argc, char **argv) {
    // OpenMP threads that spin between parallel regions starve OpenBLAS's threads (and everything
    // else on shared cores): decode ran 10-100x slower on 2 busy cores. libgomp reads
    // OMP_WAIT_POLICY only when it loads, so unless the user chose one, restart once with PASSIVE.
    if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
        execv("/proc/self/exe", argv); // returns only on failure: then run as we are
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("trustee 0.1\n");
        return 0;
    }
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        if (strcmp(argv[1], SUBCOMMANDS[i].name) == 0) return SUBCOMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "trustee: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
