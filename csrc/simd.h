// Runtime CPU dispatch for the hot loops.
//
// The default build must run on any x86-64 (no host-tuned -march), so the loops
// that pay for SIMD are compiled twice with GCC/Clang function multiversioning:
// once for x86-64-v3 (AVX2 + FMA, chosen by CPU features rather than model) and once for the baseline; the loader picks
// one per process through an ifunc. Elsewhere (arm64 has NEON in its baseline,
// macOS has no ifunc) the attribute is empty and the plain build is used.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define PYSER_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PYSER_MULTIVERSION
#endif

// The butterflies read and write disjoint quarters of one array, which the
// compiler cannot prove; this tells it the iterations are independent.
#if defined(__clang__)
#define PYSER_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define PYSER_IVDEP _Pragma("GCC ivdep")
#else
#define PYSER_IVDEP
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PYSER_RESTRICT __restrict__
#define PYSER_INLINE inline __attribute__((always_inline))
#else
#define PYSER_RESTRICT
#define PYSER_INLINE inline
#endif
