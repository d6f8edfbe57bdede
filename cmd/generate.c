// trustee generate: continues a prompt with a Qwen3 model, streaming the text to stdout.
// trustee bench-generate (hidden): batched prefill + greedy decode throughput on random prompts.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "model/chat.h"
#include "model/engine.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"

static const char *GENERATE_USAGE =
    "usage: trustee generate --model DIR (--prompt TEXT | --chat FILE.json) [options]\n"
    "\n"
    "Continues TEXT, or the assistant turn of a chat, with the Qwen3 checkpoint in DIR and streams\n"
    "the continuation to stdout; prefill and decode speeds go to stderr. TEXT is tokenized as is\n"
    "(no chat template) with DIR/tokenizer.json when present, else the built-in Qwen3 tokenizer.\n"
    "FILE.json is rendered with the Qwen3 chat template straight to ids: {\"messages\": [...],\n"
    "\"tools\": [...], \"add_generation_prompt\": true, \"enable_thinking\": false} or a bare list of\n"
    "messages (enable_thinking absent means on, as in the Qwen3 template); the tool calls in the\n"
    "reply are parsed and listed on stderr. Generation stops at <|im_end|> / <|endoftext|>, at a\n"
    "--stop string, or after --max-tokens tokens.\n"
    "\n"
    "options:\n"
    "  --model DIR          Hugging Face checkpoint directory\n"
    "  --prompt TEXT        the text to continue\n"
    "  --chat FILE.json     a chat (messages + tools) to answer as the assistant\n"
    "  --render hf|episode  how --chat is rendered: hf = the official Qwen3 template (default);\n"
    "                       episode = as a rollout builds it, every assistant turn after its\n"
    "                       generation prompt (the layout `trustee sft` trains on by default)\n"
    "  --max-tokens N       most tokens to generate (default 256)\n"
    "  --temperature T      0 = greedy (default 0)\n"
    "  --top-p P            nucleus sampling mass, 1 = off (default 1)\n"
    "  --top-k K            keep the K most likely tokens, 0 = off (default 0)\n"
    "  --seed S             sampling seed (default 0)\n"
    "  --stop TEXT          also stop when the generated text contains TEXT\n"
    "  --threads N          CPU threads (default: all cores)\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


// lists the tool calls of a generated assistant reply on stderr (parse status of each)
static void report_tool_calls(const tokenizer_t *tok, const ids_t *out) {
    char *text = NULL;
    size_t len = 0;
    chat_parsed_t p;
    if (tokenizer_decode(tok, out->ids, out->n, &text, &len) || chat_parse_assistant(text, len, &p)) {
        free(text);
        return;
    }
    fprintf(stderr, "tool calls in the reply: %d\n", p.n_calls);
    for (int i = 0; i < p.n_calls; i++) {
        char *args = p.calls[i].arguments ? json_dumps(p.calls[i].arguments, JSON_COMPACT) : NULL;
        fprintf(stderr, "  [%d] %s: %s %s\n", i, chat_call_status_name(p.calls[i].status),
                p.calls[i].name ? p.calls[i].name : "(no name)", args ? args : "");
        free(args);
    }
    chat_parsed_free(&p);
    free(text);
}

int cmd_generate(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(GENERATE_USAGE, stdout);
        return 0;
    }
    int err = 0;
    long max_tokens, top_k, seed, threads;
    double temperature, top_p;
    const char *dir = args_str(&a, "model", NULL, &err);
    const char *prompt = err ? NULL : args_str(&a, "prompt", NULL, &err);
    const char *chat = err ? NULL : args_str(&a, "chat", NULL, &err);
    const char *stop = err ? NULL : args_str(&a, "stop", NULL, &err);
    const char *render = err ? NULL : args_str(&a, "render", "hf", &err);
    if (err || args_int(&a, "max-tokens", 256, &max_tokens) ||
        args_float(&a, "temperature", 0.0, &temperature) || args_float(&a, "top-p", 1.0, &top_p) ||
        args_int(&a, "top-k", 0, &top_k) || args_int(&a, "seed", 0, &seed) ||
        args_int(&a, "threads", 0, &threads) || args_finish(&a))
        return cmd_fail("generate");
    if (!dir) {
        err_set("--model DIR is required (see --help)");
        return cmd_fail("generate");
    }
    if (max_tokens < 1 || max_tokens > 1000000 || top_k < 0 || top_k > 0x7fffffff) {
        err_set("--max-tokens must be in 1..1000000 and --top-k >= 0");
        return cmd_fail("generate");
    }
    engine_gen_t gen = {{(float)temperature, (int)top_k, (float)top_p, (uint64_t)seed},
                        (int)max_tokens, 0, NULL, 0, 0, NULL, 0};
    if (sampler_params_check(&gen.sampling)) return cmd_fail("generate");
    if (stop) {
        gen.stop_strings = &stop;
        gen.n_stop_strings = 1;
    }
    kernels_set_threads((int)threads);

    tokenizer_t *tok = tokenizer_load_dir(dir, 1); // else the built-in Qwen3 tokenizer
    if (!tok) return cmd_fail("generate");
    ids_t ids = {0}, out_ids = {0}; // prompt ids, generated ids (chat mode)
    int rc = 1;
    qwen3_t m;
    int loaded = 0;
    engine_t *e = NULL;
    if (render && strcmp(render, "hf") && strcmp(render, "episode")) {
        err_set("--render: expected hf or episode, found '%s'", render);
        goto done;
    }
    if (chat && prompt) {
        err_set("give either --prompt TEXT or --chat FILE.json, not both");
        goto done;
    } else if (chat) {
        chat_t c;
        if (chat_init(&c, tok)) goto done;
        int crc;
        if (strcmp(render, "episode") == 0) {
            json_error_t je;
            json_t *root = json_load_file(chat, JSON_DECODE_ANY | JSON_PRESERVE_ORDER, &je);
            crc = root ? chat_load_json_episode(&c, root, chat)
                       : err_set("%s: line %d column %d: %s", chat, je.line, je.column, je.text);
            json_decref(root);
        } else {
            crc = chat_load_file(&c, chat);
        }
        if (!crc && !c.assistant_open)
            crc = err_set("%s: add_generation_prompt is false: there is no assistant turn to generate", chat);
        if (!crc) crc = ids_append(&ids, c.ids.ids, c.ids.n);
        chat_free(&c);
        if (crc) goto done;
    } else if (prompt) {
        if (tokenizer_encode(tok, prompt, strlen(prompt), &ids)) goto done;
    } else {
        err_set("give --prompt TEXT (see --help)");
        goto done;
    }
    if (ids.n == 0) {
        err_set("the prompt encodes to no tokens");
        goto done;
    }
    if (qwen3_load(&m, dir, DEVICE_CPU)) goto done;
    loaded = 1;
    engine_opts_t o = {1, ids.n < 4096 ? ids.n : 4096, ids.n + (int)max_tokens, 16, 0,
                       engine_tokenizer_bytes, tok};
    e = engine_new(&m, &o);
    if (!e || engine_add(e, ids.ids, ids.n, &gen, -1) < 0) goto done;

    // stream: print each token's complete UTF-8 characters as they come
    tok_stream_t ts = {0};
    char text[1024];
    engine_event_t ev[1];
    double t0 = now_s(), t_first = 0;
    int n_gen = 0, finish = 0;
    while (!finish) {
        int n = engine_step(e, ev, 1);
        if (n < 0) goto done;
        if (n == 0 && engine_pending(e) == 0) break;
        if (n == 0) continue; // a prefill chunk of a long prompt
        if (n_gen++ == 0) t_first = now_s();
        finish = ev[0].finish;
        if (finish == ENGINE_STOP_ID) break; // the stop token itself is not printed
        if (chat && ids_push(&out_ids, ev[0].token)) goto done;
        int k = tokenizer_stream_decode(tok, &ts, ev[0].token, text, sizeof text);
        if (k > 0) fwrite(text, 1, (size_t)k, stdout);
        fflush(stdout);
    }
    int k = tokenizer_stream_flush(&ts, text, sizeof text);
    if (k > 0) fwrite(text, 1, (size_t)k, stdout);
    printf("\n");
    fflush(stdout);
    double t1 = now_s();
    if (chat) report_tool_calls(tok, &out_ids);
    fprintf(stderr, "prefill: %d tokens in %.3f s (%.1f tok/s); decode: %d tokens in %.3f s (%.1f tok/s)\n",
            ids.n, t_first - t0, ids.n / (t_first - t0), n_gen - 1, t1 - t_first,
            n_gen > 1 ? (n_gen - 1) / (t1 - t_first) : 0.0);
    rc = 0;
done:
    if (rc) cmd_fail("generate");
    engine_free(e);
    if (loaded) qwen3_free(&m);
    ids_free(&ids);
    ids_free(&out_ids);
    tokenizer_free(tok);
    return rc;
}

// ---------------------------------------------------------------------------------------------

static const char *BENCH_USAGE =
    "usage: trustee bench-generate --model DIR --batch B --prompt-len L --gen-len T [--seed S] [--threads N]\n"
    "\n"
    "B random prompts of L ids (uniform in [0, min(151643, vocab)), seeded) are prefilled as one\n"
    "batch (timed: the step also samples each sequence's first token), then T more tokens are\n"
    "greedy-decoded for all B sequences, stop ids ignored (timed). Prints one line:\n"
    "bench-generate batch=B prompt_len=L gen_len=T prefill_tok_s=X decode_tok_s=Y\n"
    "with X = B*L / prefill time and Y = B*T / decode time.\n";

int cmd_bench_generate(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(BENCH_USAGE, stdout);
        return 0;
    }
    int err = 0;
    long B, L, T, seed, threads;
    const char *dir = args_str(&a, "model", NULL, &err);
    if (err || args_int(&a, "batch", 1, &B) || args_int(&a, "prompt-len", 128, &L) ||
        args_int(&a, "gen-len", 128, &T) || args_int(&a, "seed", 0, &seed) ||
        args_int(&a, "threads", 0, &threads) || args_finish(&a))
        return cmd_fail("bench-generate");
    if (!dir || B < 1 || B > 4096 || L < 1 || T < 1 || B * L > 1000000 || L + T > 1000000) {
        err_set("need --model DIR, 1 <= --batch <= 4096, --prompt-len >= 1, --gen-len >= 1 (see --help)");
        return cmd_fail("bench-generate");
    }
    kernels_set_threads((int)threads);
    qwen3_t m;
    if (qwen3_load(&m, dir, DEVICE_CPU)) return cmd_fail("bench-generate");
    int rc = 1;
    int32_t *prompt = malloc((size_t)L * sizeof(int32_t));
    engine_opts_t o = {(int)B, (int)(B * L), (int)(L + T + 1), 16, 0, NULL, NULL};
    engine_t *e = prompt ? engine_new(&m, &o) : NULL;
    engine_event_t *ev = malloc((size_t)B * sizeof(engine_event_t));
    if (!e || !ev) goto done;
    int id_range = m.cfg.vocab_size < 151643 ? m.cfg.vocab_size : 151643;
    engine_gen_t gen = {{0, 0, 1, 0}, (int)T + 1, 0, NULL, 0, 1, NULL, 0}; // greedy, no stop ids
    for (long b = 0; b < B; b++) {
        for (long i = 0; i < L; i++)
            prompt[i] = (int32_t)(sampler_uniform((uint64_t)seed, (uint64_t)b, (uint64_t)i) * id_range);
        gen.stream = (uint64_t)b;
        if (engine_add(e, prompt, (int)L, &gen, -1) < 0) goto done;
    }
    double t0 = now_s();
    int n = engine_step(e, ev, (int)B); // the whole batch prefills in this one step
    double t1 = now_s();
    if (n != B) {
        if (n >= 0) err_set("prefill gave %d first tokens, expected %ld", n, B);
        goto done;
    }
    long decoded = 0;
    for (long t = 0; t < T; t++) {
        n = engine_step(e, ev, (int)B);
        if (n < 0) goto done;
        decoded += n;
    }
    double t2 = now_s();
    printf("bench-generate batch=%ld prompt_len=%ld gen_len=%ld prefill_tok_s=%.1f decode_tok_s=%.1f\n",
           B, L, T, (double)(B * L) / (t1 - t0), (double)decoded / (t2 - t1));
    rc = 0;
done:
    if (rc) cmd_fail("bench-generate");
    free(ev);
    free(prompt);
    engine_free(e);
    qwen3_free(&m);
    return rc;
}
