// A small seeded generator for test inputs (xorshift64*): the same numbers on every machine.
// A test sets rng_state to its own seed before drawing.
#pragma once
#include <stdint.h>

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static inline uint32_t rng_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

// uniform in [lo, hi), 24 random bits
static inline float rng_uniform(float lo, float hi) { return lo + (hi - lo) * (float)(rng_u32() >> 8) / 16777216.0f; }
