// learner/sft: supervised fine-tuning of a Qwen3 model on rendered chat transcripts, loss on the
// assistant's tokens only, AdamW (learner/optim.h). `trustee sft` and the SFT warm start of
// `trustee train` both run it.
//
// Rendering (learner_sft_render): one conversation {"messages": [...], "tools": [...]} -> token ids
// and a token-aligned loss mask (model/qwen3_train.h): 1 on the assistant's tokens (content, tool
// calls, closing <|im_end|>), 0 elsewhere and at t = 0. episode = 1 lays it out as a rollout builds
// an episode (model/chat.h chat_load_json_episode: every assistant turn = the generation prompt,
// with the empty think block when thinking is off, + the reply), episode = 0 with the HF template
// (chat_load_json). A conversation object is rendered without a generation prompt (one that asks
// for it, "add_generation_prompt": true, is refused); a bare array of messages is rendered as
// chat_load_json renders it.
//
// Training (learner_sft_run): each step takes `batch` examples of a seeded shuffle (Fisher-Yates
// with sampler_uniform(seed, epoch, i), reshuffled every epoch), runs them in micro-batches of
// `micro_batch`, formed in length order (the step's examples sorted by length, stable, so a
// micro-batch holds similar lengths) and right-padded to their longest, accumulates the gradients
// of the token-mean NLL over ALL assistant tokens of the step (every micro-batch's loss is divided
// by the step's token count), then takes one AdamW step (warmup, then cosine to min_lr over
// `steps`). Deterministic for a given seed (and thread count of the kernels).
#pragma once
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "../model/qwen3.h"
#include "../model/tokenizer.h"

typedef struct {
    int32_t *ids;  // (n) rendered conversation (episode layout by default)
    uint8_t *mask; // (n) 1 on assistant tokens (loss positions, token-aligned as model/qwen3_train.h)
    int n;
    int n_loss;    // loss positions (the mask's sum, >= 1)
    int cut;       // 1: learner_sft_render_cut cut the conversation to max_len tokens
} learner_sft_example_t;
void learner_sft_example_free(learner_sft_example_t *e); // frees the arrays, zeroes *e

// Renders one conversation (see above). Longer than max_len tokens, or no assistant token to train
// on: an error naming `where` (e.g. "data.jsonl:12"). 0, or -1 with err_set (out is then empty).
int learner_sft_render(const tokenizer_t *tok, const json_t *conv, int episode, int max_len,
                       const char *where, learner_sft_example_t *out);
// the same, but a longer conversation is cut to its first max_len tokens (out->cut = 1)
int learner_sft_render_cut(const tokenizer_t *tok, const json_t *conv, int episode, int max_len,
                           const char *where, learner_sft_example_t *out);

typedef struct {
    int steps;               // optimizer steps (100)
    int batch;               // examples per step (8)
    int micro_batch;         // examples per forward/backward, gradients accumulate; <= 0: batch (0)
    int max_len;             // longest example allowed (2048; <= 0: no bound); activations are
                             // planned for micro_batch x the longest example given
    double lr;               // peak learning rate (1e-5)
    double min_lr;           // floor of the cosine decay over `steps`; < 0: lr / 10 (-1)
    double weight_decay;     // AdamW decoupled decay on the layers' matrices (0.01)
    double clip_norm;        // global gradient-norm clip, <= 0: off (1.0)
    double beta1, beta2;     // AdamW moment rates (0.9, 0.999)
    int warmup;              // linear warmup steps (0)
    uint64_t seed;           // shuffle seed (0)
    int recompute;           // 1: activation checkpointing (recompute each layer in the backward) (0)
    int log_every;           // a progress line every n steps, and every skipped step (0: none) (1)
    FILE *log;               // where progress lines go (NULL: stderr) (NULL)
    double max_seconds;      // > 0: stop after the step that brings the loop's wall time past this
                             // (a time budget; `steps` still bounds it and shapes the schedule) (0)
    double stop_loss;        // with stop_window > 0: stop after the step at which the mean loss of
    int stop_window;         // the last stop_window steps falls below stop_loss (skipped steps count
                             // with their loss) (0, 0: off)
} learner_sft_opts_t;
void learner_sft_opts_default(learner_sft_opts_t *o); // the defaults of `trustee sft` (above)

typedef struct {
    double first_loss, last_loss; // loss of the first / last step (before its update)
    int64_t tokens;               // tokens processed (all steps)
    int64_t loss_tokens;          // of which assistant tokens
    double seconds;               // wall time of the training loop
    int steps_done;               // steps run (skipped ones included)
    int n_skipped;                // steps the NaN guard of the optimizer refused
    int stopped;                  // 1: stopped by stop_loss before `steps`
    double window_loss;           // with stop_window > 0: mean loss of the last stop_window steps run
} learner_sft_result_t;

// Trains m in place (F32 CPU weights) on the n examples; res may be NULL. Progress lines:
//   step S/N loss L lr X grad_norm G tokens T (loss A) tok/s R
//   step S/N SKIPPED: why
// 0, or -1 with err_set (the weights may then be partly trained).
int learner_sft_run(qwen3_t *m, const learner_sft_example_t *ex, int n, const learner_sft_opts_t *o,
                    learner_sft_result_t *res);
