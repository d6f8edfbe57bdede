// sampler_rng: the counter-based RNG of the sampler (model/sampler.c) as one inline function that
// plain C and CUDA both compile, so the CPU sampler and the CUDA sampler (kernels/cuda/sample.cu)
// draw bit-identical uniforms: splitmix64's finalizer as a hash of (seed, stream, step).
//
// Plain C11 and CUDA C++ both accept this header (like rowops.h).
#pragma once
#include <stdint.h>

#ifdef __CUDACC__
#define SAMPLER_RNG_FN static inline __host__ __device__
#else
#define SAMPLER_RNG_FN static inline
#endif

SAMPLER_RNG_FN uint64_t sampler_rng_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// uniform double in [0, 1) for (seed, stream, step): the top 53 bits of the hash, exactly
SAMPLER_RNG_FN double sampler_rng_uniform(uint64_t seed, uint64_t stream, uint64_t step) {
    uint64_t h = sampler_rng_mix64(seed + 0x9e3779b97f4a7c15ull);
    h = sampler_rng_mix64(h ^ (stream * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
    h = sampler_rng_mix64(h ^ (step * 0x8cb92ba72f3d8dd7ull + 0xa0761d6478bd642full));
    return (double)(h >> 11) * 0x1.0p-53;
}
