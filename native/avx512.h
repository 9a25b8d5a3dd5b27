// What the AVX-512 kernels (chacha_lanes.cc, poly1305_lanes.cc) share. Each kernel is compiled
// for AVX-512 through function attributes, not compiler flags, so that the rest of the addon runs
// on any x86-64 and the kernels are called only after a CPU check.

#ifndef SEALCAST_NATIVE_AVX512_H_
#define SEALCAST_NATIVE_AVX512_H_

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SEALCAST_AVX512 1
#include <immintrin.h>

// GCC's AVX-512 intrinsics (rotate, shuffle, unpack, IFMA) leave their pass-through operand
// deliberately undefined, and GCC 12 then reports it as "(maybe) used uninitialized" wherever
// they are inlined (GCC bug 105593). With every mask bit set the pass-through is never read.
#if defined(__GNUC__) && !defined(__clang__)
#define SEALCAST_AVX512_BEGIN                                      \
  _Pragma("GCC diagnostic push")                                   \
  _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")     \
  _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define SEALCAST_AVX512_END _Pragma("GCC diagnostic pop")
#else
#define SEALCAST_AVX512_BEGIN
#define SEALCAST_AVX512_END
#endif

namespace sealcast {

SEALCAST_AVX512_BEGIN

// Rearranges four vectors P, Q, R, S of four 128-bit chunks each into out[c] = [P.c Q.c R.c S.c]:
// the last step of transposing a matrix of 32- or 64-bit words held in 512-bit rows.
__attribute__((target("avx512f"))) inline void TransposeChunks(__m512i p, __m512i q, __m512i r, __m512i s,
                                                               __m512i out[4]) {
  const __m512i pq_low = _mm512_shuffle_i64x2(p, q, 0x44);   // P0 P1 Q0 Q1
  const __m512i pq_high = _mm512_shuffle_i64x2(p, q, 0xee);  // P2 P3 Q2 Q3
  const __m512i rs_low = _mm512_shuffle_i64x2(r, s, 0x44);   // R0 R1 S0 S1
  const __m512i rs_high = _mm512_shuffle_i64x2(r, s, 0xee);  // R2 R3 S2 S3
  out[0] = _mm512_shuffle_i64x2(pq_low, rs_low, 0x88);       // P0 Q0 R0 S0
  out[1] = _mm512_shuffle_i64x2(pq_low, rs_low, 0xdd);       // P1 Q1 R1 S1
  out[2] = _mm512_shuffle_i64x2(pq_high, rs_high, 0x88);     // P2 Q2 R2 S2
  out[3] = _mm512_shuffle_i64x2(pq_high, rs_high, 0xdd);     // P3 Q3 R3 S3
}

SEALCAST_AVX512_END

}  // namespace sealcast

#else
#define SEALCAST_AVX512 0
#endif

#endif  // SEALCAST_NATIVE_AVX512_H_
