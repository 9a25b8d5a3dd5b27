#include "chacha_lanes.h"

#include <cstring>

#include "avx512.h"

namespace sealcast {

#if SEALCAST_AVX512

bool ChaChaLanesSupported() {
  // __builtin_cpu_supports also checks that the OS saves the ZMM registers (XCR0).
  return __builtin_cpu_supports("avx512f");
}

namespace {

SEALCAST_AVX512_BEGIN

#define SEALCAST_TARGET __attribute__((target("avx512f")))

SEALCAST_TARGET inline void QuarterRound(__m512i& a, __m512i& b, __m512i& c, __m512i& d) {
  a = _mm512_add_epi32(a, b);
  d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 16);
  c = _mm512_add_epi32(c, d);
  b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 12);
  a = _mm512_add_epi32(a, b);
  d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 8);
  c = _mm512_add_epi32(c, d);
  b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 7);
}

SEALCAST_TARGET void ChaChaLanesAvx512(const std::uint32_t key_words[8], const std::uint32_t* rows, std::size_t groups,
                                       std::uint8_t* target) {
  // x[j] holds word j of the state of all 16 lanes.
  const __m512i constant0 = _mm512_set1_epi32(0x61707865);
  const __m512i constant1 = _mm512_set1_epi32(0x3320646e);
  const __m512i constant2 = _mm512_set1_epi32(0x79622d32);
  const __m512i constant3 = _mm512_set1_epi32(0x6b206574);
  __m512i key[8];
  for (int word = 0; word < 8; word++) key[word] = _mm512_set1_epi32(static_cast<int>(key_words[word]));
  for (std::size_t group = 0; group < groups; group++) {
    const std::uint32_t* group_rows = rows + group * kChaChaGroupRowWords;
    const __m512i row3[4] = {_mm512_loadu_si512(group_rows), _mm512_loadu_si512(group_rows + 16),
                             _mm512_loadu_si512(group_rows + 32), _mm512_loadu_si512(group_rows + 48)};
    __m512i x[16] = {constant0, constant1, constant2, constant3, key[0], key[1], key[2],  key[3],
                     key[4],    key[5],    key[6],    key[7],    row3[0], row3[1], row3[2], row3[3]};
    for (int round = 0; round < 10; round++) {
      QuarterRound(x[0], x[4], x[8], x[12]);
      QuarterRound(x[1], x[5], x[9], x[13]);
      QuarterRound(x[2], x[6], x[10], x[14]);
      QuarterRound(x[3], x[7], x[11], x[15]);
      QuarterRound(x[0], x[5], x[10], x[15]);
      QuarterRound(x[1], x[6], x[11], x[12]);
      QuarterRound(x[2], x[7], x[8], x[13]);
      QuarterRound(x[3], x[4], x[9], x[14]);
    }
    x[0] = _mm512_add_epi32(x[0], constant0);
    x[1] = _mm512_add_epi32(x[1], constant1);
    x[2] = _mm512_add_epi32(x[2], constant2);
    x[3] = _mm512_add_epi32(x[3], constant3);
    for (int word = 0; word < 8; word++) x[4 + word] = _mm512_add_epi32(x[4 + word], key[word]);
    for (int word = 0; word < 4; word++) x[12 + word] = _mm512_add_epi32(x[12 + word], row3[word]);
    // Transpose 16 x 16 words: first, within each 128-bit chunk, so that vector 4g + r holds
    // words 4g..4g+3 of block 4c + r in its chunk c; then across chunks.
    __m512i words[16];
    for (int quad = 0; quad < 4; quad++) {
      const __m512i* in = x + 4 * quad;
      const __m512i low01 = _mm512_unpacklo_epi32(in[0], in[1]);
      const __m512i high01 = _mm512_unpackhi_epi32(in[0], in[1]);
      const __m512i low23 = _mm512_unpacklo_epi32(in[2], in[3]);
      const __m512i high23 = _mm512_unpackhi_epi32(in[2], in[3]);
      words[4 * quad + 0] = _mm512_unpacklo_epi64(low01, low23);
      words[4 * quad + 1] = _mm512_unpackhi_epi64(low01, low23);
      words[4 * quad + 2] = _mm512_unpacklo_epi64(high01, high23);
      words[4 * quad + 3] = _mm512_unpackhi_epi64(high01, high23);
    }
    std::uint8_t* group_target = target + group * kChaChaGroupBytes;
    for (int r = 0; r < 4; r++) {
      __m512i blocks[4];
      TransposeChunks(words[r], words[4 + r], words[8 + r], words[12 + r], blocks);
      for (int chunk = 0; chunk < 4; chunk++) {
        _mm512_storeu_si512(group_target + (4 * chunk + r) * kChaChaBlockBytes, blocks[chunk]);
      }
    }
  }
}

SEALCAST_TARGET void XorKeystreamAvx512(std::uint8_t* target, const std::uint8_t* source, const std::uint8_t* keystream,
                                        std::size_t bytes) {
  std::size_t at = 0;
  for (; at + 64 <= bytes; at += 64) {
    const __m512i data = _mm512_loadu_si512(source + at);
    _mm512_storeu_si512(target + at, _mm512_xor_si512(data, _mm512_loadu_si512(keystream + at)));
  }
  for (; at < bytes; at++) target[at] = static_cast<std::uint8_t>(source[at] ^ keystream[at]);
}

SEALCAST_AVX512_END

}  // namespace

void ChaChaLanes(const std::uint32_t key_words[8], const std::uint32_t* rows, std::size_t groups, std::uint8_t* target) {
  ChaChaLanesAvx512(key_words, rows, groups, target);
}

void XorKeystream(std::uint8_t* target, const std::uint8_t* source, const std::uint8_t* keystream, std::size_t bytes) {
  XorKeystreamAvx512(target, source, keystream, bytes);
}

#else

bool ChaChaLanesSupported() { return false; }

void ChaChaLanes(const std::uint32_t*, const std::uint32_t*, std::size_t, std::uint8_t*) {}

void XorKeystream(std::uint8_t* target, const std::uint8_t* source, const std::uint8_t* keystream, std::size_t bytes) {
  for (std::size_t at = 0; at < bytes; at++) target[at] = static_cast<std::uint8_t>(source[at] ^ keystream[at]);
}

#endif

}  // namespace sealcast
