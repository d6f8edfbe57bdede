// sample: next-token sampling of B rows of logits on the device, the same draws as the CPU sampler
// (model/sampler.c: temperature, top-k, top-p, greedy with the lowest id on ties, counter-based
// uniforms from kernels/cuda/sampler_rng.h, log-prob over the FULL vocabulary before truncation).
//
// One block per row. e_i = e^((l_i - max) / T) is computed with the CPU's exp polynomial, every
// operation rounded the same way, so both backends see identical e_i. The ordered walks (the
// cumulative sums of the top-p cut and of the draw) cannot be summed in the CPU's sequential
// order on a block: the device finds the element where a cumulative sum crosses its target by a
// bisection on the float bits of e (sums of e over "e >= threshold", deterministic block
// reductions in double), then walks the ties at that value in id order. Its sums differ from the
// CPU's by double rounding only (~1e-16 relative), so a token can differ only when the target
// falls within that distance of a cumulative-mass boundary.
// Cost: O(V) for greedy / plain temperature; about 32 passes over the row per top-k / top-p cut.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float temperature; // 0: greedy (argmax, lowest id on ties); log-prob at temperature 1
    int top_k;         // 0: off
    float top_p;       // in (0, 1]; 1: off
    uint64_t seed;
} cuda_sample_params_t;

#ifdef TRUSTEE_CUDA
// logits (B, V) F32, streams / steps (B) U64, tokens (B) I32, logprobs (B) F32: all on the
// device. Row b draws with sampler_uniform(seed, streams[b], steps[b]). Synchronizes (a row with
// no finite maximum is reported as an error naming it). V <= INT32_MAX.
int cuda_sample(int32_t *tokens, float *logprobs, const float *logits, int B, int V,
                const cuda_sample_params_t *p, const uint64_t *streams, const uint64_t *steps);
#endif

#ifdef __cplusplus
}
#endif
