// trustee plan-memory: the device memory budget of one role (model/memplan.h), printed as a table.
// Exit 0: it fits; 2: it does not (a "needs X GiB of Y GiB: ..." line on stderr); 1: bad settings.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "model/config.h"
#include "model/memplan.h"

static const char *PLAN_MEMORY_USAGE =
    "usage: trustee plan-memory [--preset qwen3-8b|qwen3-0.6b|laptop | --config config.json]\n"
    "                           [--role learner|rollout|sim] [--gpu-gib 80] [options]\n"
    "\n"
    "Prints every device buffer of one role (name, shape, GiB, GB), the total against the device\n"
    "and, for rollout/sim, the largest KV cache that fits. Exit 0 when it fits, 2 when it does not.\n"
    "Element sizes: bf16 weights, activations and KV; fp32 master weights, Adam moments, grads.\n"
    "See docs/gpu-memory.md.\n"
    "\n"
    "model and device:\n"
    "  --preset NAME          built-in shape: qwen3-8b (default), qwen3-0.6b, laptop\n"
    "  --config FILE          an HF config.json instead of a preset\n"
    "  --role R               learner (default), rollout, sim\n"
    "  --gpu-gib X            device capacity in GiB (default 80; an H100 80GB reports 79.18)\n"
    "  --reserve-mib N        CUDA context + modules reserve (default 640: 595 measured on H100)\n"
    "  --seq-len T            tokens per sequence (default 8192)\n"
    "  --out-vocab n          restricted output vocabulary of n ids (default 0: full)\n"
    "learner:\n"
    "  --micro-tokens N       tokens of one forward/backward (default 16384)\n"
    "  --checkpointing 0|1    keep only layer inputs, recompute in backward (default 1)\n"
    "  --learners L           data-parallel learners (default 1)\n"
    "  --zero 0|1|2           shard master + Adam (1), and grads (2), over the learners\n"
    "                         (default 2 when --learners > 1, else 0)\n"
    "  --grad-dtype fp32|bf16 gradient element (default fp32)\n"
    "  --master fp32|none     fp32 master copy of the weights (default fp32)\n"
    "  --act-dtype bf16|fp32  activations (default bf16; today's CPU code keeps fp32)\n"
    "  --chunk-rows n         LM-head rows per logits chunk (default 32)\n"
    "rollout / sim:\n"
    "  --kv-tokens T          KV cache token slots (default 0: the largest that fits)\n"
    "  --kv-dtype bf16|fp32   KV element (default bf16; today's code keeps fp32)\n"
    "  --page-size S          KV page size (default 16)\n"
    "  --max-seqs B           concurrent sequences = decode logit rows (default 64)\n"
    "  --batch-tokens N       rows of one forward: decode rows + prefill chunk (default 2048)\n";

// "bf16" -> 2, "fp32" -> 4 (and "none" -> 0 when allowed)
static int dtype_bytes(const char *opt, const char *s, int allow_none, int *out) {
    if (strcmp(s, "bf16") == 0) *out = 2;
    else if (strcmp(s, "fp32") == 0) *out = 4;
    else if (allow_none && strcmp(s, "none") == 0) *out = 0;
    else return err_set("--%s: expected %s, found \"%s\"", opt, allow_none ? "fp32 or none" : "bf16 or fp32", s);
    return 0;
}

int cmd_plan_memory(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(PLAN_MEMORY_USAGE, stdout);
        return 0;
    }
    int err = 0;
    const char *preset = args_str(&a, "preset", NULL, &err);
    const char *config = args_str(&a, "config", NULL, &err);
    const char *role_s = args_str(&a, "role", "learner", &err);
    const char *grad_s = args_str(&a, "grad-dtype", "fp32", &err);
    const char *master_s = args_str(&a, "master", "fp32", &err);
    const char *act_s = args_str(&a, "act-dtype", "bf16", &err);
    const char *kv_s = args_str(&a, "kv-dtype", "bf16", &err);
    double gpu_gib;
    long reserve, seq_len, out_vocab, micro, ckpt, learners, zero, chunk, kv_tokens, page, seqs, batch;
    if (err || args_float(&a, "gpu-gib", 80, &gpu_gib) || args_int(&a, "reserve-mib", 640, &reserve) ||
        args_int(&a, "seq-len", 8192, &seq_len) || args_int(&a, "out-vocab", 0, &out_vocab) ||
        args_int(&a, "micro-tokens", 16384, &micro) || args_int(&a, "checkpointing", 1, &ckpt) ||
        args_int(&a, "learners", 1, &learners) || args_int(&a, "zero", -1, &zero) ||
        args_int(&a, "chunk-rows", 32, &chunk) || args_int(&a, "kv-tokens", 0, &kv_tokens) ||
        args_int(&a, "page-size", 16, &page) || args_int(&a, "max-seqs", 64, &seqs) ||
        args_int(&a, "batch-tokens", 2048, &batch) || args_finish(&a))
        return cmd_fail("plan-memory");
    if (preset && config) {
        err_set("give --preset or --config, not both");
        return cmd_fail("plan-memory");
    }
    if (ckpt != 0 && ckpt != 1) {
        err_set("--checkpointing: expected 0 or 1, found %ld", ckpt);
        return cmd_fail("plan-memory");
    }
    const long ints[] = {seq_len, out_vocab, learners, zero, chunk, page, seqs, reserve};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i] < -1 || ints[i] > 1000000000L) {
            err_set("an option is out of range (%ld)", ints[i]);
            return cmd_fail("plan-memory");
        }
    qwen3_config_t cfg;
    memplan_role_t role;
    if ((config ? qwen3_config_load(&cfg, config) : memplan_preset(&cfg, preset ? preset : "qwen3-8b")) ||
        memplan_role_parse(role_s, &role))
        return cmd_fail("plan-memory");
    memplan_opts_t o;
    memplan_opts_default(&o, role);
    if (dtype_bytes("grad-dtype", grad_s, 0, &o.grad_bytes) || dtype_bytes("master", master_s, 1, &o.master_bytes) ||
        (o.master_bytes == 2 && err_set("--master: expected fp32 or none, found \"bf16\"")) ||
        dtype_bytes("act-dtype", act_s, 0, &o.act_bytes) || dtype_bytes("kv-dtype", kv_s, 0, &o.kv_bytes))
        return cmd_fail("plan-memory");
    o.gpu_gib = gpu_gib;
    o.context_reserve = (int64_t)reserve << 20;
    o.seq_len = (int)seq_len;
    o.out_vocab = (int)out_vocab;
    o.micro_tokens = micro;
    o.checkpointing = (int)ckpt;
    o.learners = (int)learners;
    o.zero_stage = zero >= 0 ? (int)zero : (learners > 1 ? 2 : 0);
    o.chunk_rows = (int)chunk;
    o.kv_tokens = kv_tokens;
    o.page_size = (int)page;
    o.max_seqs = (int)seqs;
    o.batch_tokens = batch;
    if (o.out_vocab > cfg.vocab_size) {
        err_set("--out-vocab %d is larger than the vocabulary (%d)", o.out_vocab, cfg.vocab_size);
        return cmd_fail("plan-memory");
    }
    memplan_t p;
    if (memplan_compute(&p, &cfg, &o)) return cmd_fail("plan-memory");
    printf("model: %s\n", config ? config : preset ? preset : "qwen3-8b");
    memplan_print(&p, stdout);
    if (!p.fits) {
        char msg[512];
        memplan_shortfall(&p, msg, sizeof msg);
        fprintf(stderr, "trustee plan-memory: %s\n", msg);
        return 2;
    }
    return 0;
}
