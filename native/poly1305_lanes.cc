#include "poly1305_lanes.h"

#include <cstring>

#include "avx512.h"
#include "wipe.h"

namespace sealcast {

#if SEALCAST_AVX512

bool PolyLanesSupported() {
  // __builtin_cpu_supports also checks that the OS saves the ZMM registers (XCR0).
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}

namespace {

SEALCAST_AVX512_BEGIN

#define SEALCAST_POLY_TARGET __attribute__((target("avx512f,avx512ifma")))

// The accumulator h and the key r of each lane, in radix 2^44: h = h0 + h1 2^44 + h2 2^88.
// Since 2^130 = 5 mod p (p = 2^130 - 5), a product's part at 2^132 and above folds back in
// multiplied by 20: s1 and s2 are r1 and r2 times 20.
struct Lanes {
  __m512i h0, h1, h2;
  __m512i r0, r1, r2;
  __m512i s1, s2;
};

constexpr std::uint64_t kMask44 = (std::uint64_t{1} << 44) - 1;
constexpr std::uint64_t kMask42 = (std::uint64_t{1} << 42) - 1;
constexpr std::size_t kBlockBytes = 16;

// Adds the low 52 bits of a * b to `low` and the rest to `high` (a and b below 2^52).
SEALCAST_POLY_TARGET inline void MultiplyAdd(__m512i& low, __m512i& high, __m512i a, __m512i b) {
  low = _mm512_madd52lo_epu64(low, a, b);
  high = _mm512_madd52hi_epu64(high, a, b);
}

// Where one group's lanes read their blocks in one Absorb pass: lane l reads counts[l] whole
// 16-byte blocks from the address bases[l].
struct LaneBlocks {
  std::uint64_t bases[kPolyLanes];
  std::uint64_t counts[kPolyLanes];
};

// Loads blocks first to first + 3 of every lane of a group (one masked 64-byte load per lane,
// which reads nothing past a lane's last block) and transposes them, so that low[k] and high[k]
// hold the low and high words of block first + k of every lane.
SEALCAST_POLY_TARGET __attribute__((always_inline)) inline void LoadFour(const LaneBlocks& blocks, std::uint64_t first,
                                                                         __m512i low[4], __m512i high[4]) {
  __m512i loaded[kPolyLanes];
  for (std::size_t lane = 0; lane < kPolyLanes; lane++) {
    const std::uint64_t left = blocks.counts[lane] > first ? blocks.counts[lane] - first : 0;
    const unsigned count = left < 4 ? static_cast<unsigned>(left) : 4;
    const __mmask8 words = static_cast<__mmask8>((1u << (2 * count)) - 1);
    loaded[lane] = _mm512_maskz_loadu_epi64(words, reinterpret_cast<const void*>(blocks.bases[lane] + first * kBlockBytes));
  }
  // loaded[l] holds lane l's blocks as 8 words (low, high of block 0, 1, 2, 3).
  __m512i pairs_low[4], pairs_high[4];
  for (int pair = 0; pair < 4; pair++) {
    pairs_low[pair] = _mm512_unpacklo_epi64(loaded[2 * pair], loaded[2 * pair + 1]);
    pairs_high[pair] = _mm512_unpackhi_epi64(loaded[2 * pair], loaded[2 * pair + 1]);
  }
  TransposeChunks(pairs_low[0], pairs_low[1], pairs_low[2], pairs_low[3], low);
  TransposeChunks(pairs_high[0], pairs_high[1], pairs_high[2], pairs_high[3], high);
}

// One Horner step, h = (h + block) r mod p (partly reduced), in the lanes set in `active`.
//
// Bounds (so that every multiplicand stays below 2^52, as IFMA needs): before a block, h0 and
// h1 are below 2^44 + 2^9 and h2 below 2^42; r0 and r1 below 2^44, r2 below 2^36 (clamped), so
// s1 < 2^49 and s2 < 2^41. Adding a block leaves h below (2^45, 2^45, 2^43). Each 104-bit
// product is split by IFMA into its low 52 bits and the rest; the sums of three stay far below
// 2^64, and the carries below bring h back within its bounds.
SEALCAST_POLY_TARGET __attribute__((always_inline)) inline void Step(Lanes& lanes, __m512i low, __m512i high,
                                                                     __mmask8 active) {
  const __m512i mask44 = _mm512_set1_epi64(static_cast<long long>(kMask44));
  const __m512i mask42 = _mm512_set1_epi64(static_cast<long long>(kMask42));
  const __m512i high_bit = _mm512_set1_epi64(std::int64_t{1} << 40);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i m0 = _mm512_and_si512(low, mask44);
  const __m512i m1 = _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64(low, 44), _mm512_slli_epi64(high, 20)), mask44);
  const __m512i m2 = _mm512_or_si512(_mm512_srli_epi64(high, 24), high_bit);
  const __m512i a0 = _mm512_add_epi64(lanes.h0, m0);
  const __m512i a1 = _mm512_add_epi64(lanes.h1, m1);
  const __m512i a2 = _mm512_add_epi64(lanes.h2, m2);
  // d0 = a0 r0 + a1 s2 + a2 s1, d1 = a0 r1 + a1 r0 + a2 s2, d2 = a0 r2 + a1 r1 + a2 r0.
  __m512i low0 = zero, high0 = zero, low1 = zero, high1 = zero, low2 = zero, high2 = zero;
  // Row by row of a, so that the three sums advance side by side.
  MultiplyAdd(low0, high0, a0, lanes.r0);
  MultiplyAdd(low1, high1, a0, lanes.r1);
  MultiplyAdd(low2, high2, a0, lanes.r2);
  MultiplyAdd(low0, high0, a1, lanes.s2);
  MultiplyAdd(low1, high1, a1, lanes.r0);
  MultiplyAdd(low2, high2, a1, lanes.r1);
  MultiplyAdd(low0, high0, a2, lanes.s1);
  MultiplyAdd(low1, high1, a2, lanes.s2);
  MultiplyAdd(low2, high2, a2, lanes.r0);
  // A high part counts 2^52: 2^8 units of the next limb up (2^10 above limb 2, which holds
  // 42 bits); what leaves limb 2 counts 2^130 and comes back into limb 0 times 5.
  __m512i next0 = _mm512_and_si512(low0, mask44);
  __m512i carry = _mm512_add_epi64(_mm512_srli_epi64(low0, 44), _mm512_slli_epi64(high0, 8));
  const __m512i sum1 = _mm512_add_epi64(low1, carry);
  __m512i next1 = _mm512_and_si512(sum1, mask44);
  carry = _mm512_add_epi64(_mm512_srli_epi64(sum1, 44), _mm512_slli_epi64(high1, 8));
  const __m512i sum2 = _mm512_add_epi64(low2, carry);
  const __m512i next2 = _mm512_and_si512(sum2, mask42);
  carry = _mm512_add_epi64(_mm512_srli_epi64(sum2, 42), _mm512_slli_epi64(high2, 10));
  next0 = _mm512_add_epi64(next0, _mm512_add_epi64(carry, _mm512_slli_epi64(carry, 2)));
  next1 = _mm512_add_epi64(next1, _mm512_srli_epi64(next0, 44));
  next0 = _mm512_and_si512(next0, mask44);
  lanes.h0 = _mm512_mask_mov_epi64(lanes.h0, active, next0);
  lanes.h1 = _mm512_mask_mov_epi64(lanes.h1, active, next1);
  lanes.h2 = _mm512_mask_mov_epi64(lanes.h2, active, next2);
}

// Absorbs whole 16-byte blocks into kGroups groups of 8 lanes. Every block of the AEAD's
// Poly1305 input is whole (the parts are padded), so each gets the 2^128 bit. One lane's steps
// depend on each other, and a step takes longer to finish than to issue; two groups' steps,
// interleaved, keep the multipliers busy while the other group's step completes.
template <int kGroups>
SEALCAST_POLY_TARGET void Absorb(Lanes (&groups)[kGroups], const LaneBlocks (&blocks)[kGroups], std::uint64_t steps) {
  __m512i count_vector[kGroups];
  Lanes lanes[kGroups];
  for (int group = 0; group < kGroups; group++) {
    count_vector[group] = _mm512_loadu_si512(blocks[group].counts);
    lanes[group] = groups[group];
  }
  for (std::uint64_t first = 0; first < steps; first += 4) {
    __m512i low[kGroups][4], high[kGroups][4];
    for (int group = 0; group < kGroups; group++) LoadFour(blocks[group], first, low[group], high[group]);
    for (std::uint64_t block = 0; block < 4 && first + block < steps; block++) {
      const __m512i step = _mm512_set1_epi64(static_cast<long long>(first + block));
      for (int group = 0; group < kGroups; group++) {
        Step(lanes[group], low[group][block], high[group][block], _mm512_cmpgt_epu64_mask(count_vector[group], step));
      }
    }
  }
  for (int group = 0; group < kGroups; group++) groups[group] = lanes[group];
}

std::uint64_t Load64(const std::uint8_t* bytes) {
  std::uint64_t value;
  std::memcpy(&value, bytes, sizeof(value));  // The host is little-endian (x86-64).
  return value;
}

// Reduces h fully mod p, adds s, and writes the low 128 bits: the tag. Constant time.
void FinishTag(std::uint64_t h0, std::uint64_t h1, std::uint64_t h2, const std::uint8_t* s, std::uint8_t* tag) {
  h1 += h0 >> 44;
  h0 &= kMask44;
  h2 += h1 >> 44;
  h1 &= kMask44;
  h0 += (h2 >> 42) * 5;
  h2 &= kMask42;
  h1 += h0 >> 44;
  h0 &= kMask44;
  h2 += h1 >> 44;
  h1 &= kMask44;
  // Now h < 2^130 + 2^10 < 2p: subtract p once if h >= p, that is if h + 5 reaches 2^130.
  std::uint64_t g0 = h0 + 5;
  std::uint64_t g1 = h1 + (g0 >> 44);
  g0 &= kMask44;
  const std::uint64_t g2 = h2 + (g1 >> 44) - (std::uint64_t{1} << 42);
  g1 &= kMask44;
  const std::uint64_t use_g = (g2 >> 63) - 1;  // all ones when g2 did not go below zero
  h0 = (h0 & ~use_g) | (g0 & use_g);
  h1 = (h1 & ~use_g) | (g1 & use_g);
  h2 = (h2 & ~use_g) | (g2 & use_g);
  std::uint64_t low = h0 | (h1 << 44);
  std::uint64_t high = (h1 >> 20) | (h2 << 24);
  const std::uint64_t s_low = Load64(s);
  low += s_low;
  high += Load64(s + 8) + (low < s_low ? 1 : 0);
  std::memcpy(tag, &low, sizeof(low));
  std::memcpy(tag + 8, &high, sizeof(high));
}

SEALCAST_POLY_TARGET __m512i LoadAddresses(const std::uint64_t addresses[kPolyLanes]) {
  return _mm512_loadu_si512(addresses);
}

std::uint64_t AddressOf(const void* pointer) { return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(pointer)); }

// Sets up one group's lanes for up to 8 messages (lanes past `count` are masked off everywhere):
// the clamped r of each one-time key, and where each lane reads in each of the four passes.
// `padded` receives each lane's padded last AAD block, padded last ciphertext block and lengths.
SEALCAST_POLY_TARGET void PrepareGroup(const PolyMessage* messages, std::size_t count, std::uint8_t (*padded)[3 * kBlockBytes],
                                       Lanes& lanes, LaneBlocks passes[4], std::uint64_t steps[4]) {
  std::uint64_t key_at[kPolyLanes];
  for (std::size_t lane = 0; lane < kPolyLanes; lane++) {
    const PolyMessage& message = messages[lane < count ? lane : 0];
    std::uint8_t* pad = padded[lane];
    std::memset(pad, 0, sizeof(padded[lane]));
    const std::size_t aad_whole = message.aad_bytes / kBlockBytes * kBlockBytes;
    const std::size_t ciphertext_whole = message.ciphertext_bytes / kBlockBytes * kBlockBytes;
    const std::size_t aad_tail = message.aad_bytes - aad_whole;
    const std::size_t ciphertext_tail = message.ciphertext_bytes - ciphertext_whole;
    std::memcpy(pad, message.aad + aad_whole, aad_tail);
    std::memcpy(pad + kBlockBytes, message.ciphertext + ciphertext_whole, ciphertext_tail);
    const std::uint64_t lengths[2] = {message.aad_bytes, message.ciphertext_bytes};
    std::memcpy(pad + 2 * kBlockBytes, lengths, sizeof(lengths));
    const bool live = lane < count;
    key_at[lane] = AddressOf(message.one_time_key);
    passes[0].bases[lane] = AddressOf(message.aad);
    passes[1].bases[lane] = AddressOf(pad);
    passes[2].bases[lane] = AddressOf(message.ciphertext);
    passes[3].bases[lane] = AddressOf(pad + (ciphertext_tail > 0 ? kBlockBytes : 2 * kBlockBytes));
    passes[0].counts[lane] = live ? aad_whole / kBlockBytes : 0;
    passes[1].counts[lane] = live && aad_tail > 0 ? 1 : 0;
    passes[2].counts[lane] = live ? ciphertext_whole / kBlockBytes : 0;
    passes[3].counts[lane] = live ? (ciphertext_tail > 0 ? 2 : 1) : 0;
    for (int pass = 0; pass < 4; pass++) steps[pass] = passes[pass].counts[lane] > steps[pass] ? passes[pass].counts[lane] : steps[pass];
  }
  // r from each one-time key, clamped (RFC 8439, 2.5), in radix 2^44.
  const __m512i keys = LoadAddresses(key_at);
  const __m512i r_low = _mm512_and_si512(_mm512_i64gather_epi64(keys, nullptr, 1), _mm512_set1_epi64(0x0ffffffc0fffffffLL));
  const __m512i r_high = _mm512_and_si512(_mm512_i64gather_epi64(_mm512_add_epi64(keys, _mm512_set1_epi64(8)), nullptr, 1),
                                          _mm512_set1_epi64(0x0ffffffc0ffffffcLL));
  const __m512i mask44 = _mm512_set1_epi64(static_cast<long long>(kMask44));
  lanes.r0 = _mm512_and_si512(r_low, mask44);
  lanes.r1 = _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64(r_low, 44), _mm512_slli_epi64(r_high, 20)), mask44);
  lanes.r2 = _mm512_srli_epi64(r_high, 24);
  lanes.s1 = _mm512_add_epi64(_mm512_slli_epi64(lanes.r1, 4), _mm512_slli_epi64(lanes.r1, 2));
  lanes.s2 = _mm512_add_epi64(_mm512_slli_epi64(lanes.r2, 4), _mm512_slli_epi64(lanes.r2, 2));
  lanes.h0 = lanes.h1 = lanes.h2 = _mm512_setzero_si512();
}

// Up to 8 kGroups messages, one per lane, 8 lanes per group; lanes past `count` are masked off.
template <int kGroups>
SEALCAST_POLY_TARGET void TagGroups(const PolyMessage* messages, std::size_t count) {
  alignas(64) std::uint8_t padded[kGroups][kPolyLanes][3 * kBlockBytes];
  Lanes lanes[kGroups];
  LaneBlocks passes[4][kGroups];
  std::uint64_t steps[4] = {0, 0, 0, 0};
  for (int group = 0; group < kGroups; group++) {
    const std::size_t first = static_cast<std::size_t>(group) * kPolyLanes;
    const std::size_t in_group = count > first ? count - first : 0;
    LaneBlocks group_passes[4];
    PrepareGroup(messages + first, in_group < kPolyLanes ? in_group : kPolyLanes, padded[group], lanes[group], group_passes, steps);
    for (int pass = 0; pass < 4; pass++) passes[pass][group] = group_passes[pass];
  }
  for (int pass = 0; pass < 4; pass++) Absorb<kGroups>(lanes, passes[pass], steps[pass]);
  alignas(64) std::uint64_t h[kGroups][3][kPolyLanes];
  for (int group = 0; group < kGroups; group++) {
    _mm512_store_si512(h[group][0], lanes[group].h0);
    _mm512_store_si512(h[group][1], lanes[group].h1);
    _mm512_store_si512(h[group][2], lanes[group].h2);
  }
  for (std::size_t message = 0; message < count; message++) {
    const std::size_t group = message / kPolyLanes, lane = message % kPolyLanes;
    FinishTag(h[group][0][lane], h[group][1][lane], h[group][2][lane], messages[message].one_time_key + 16, messages[message].tag);
  }
  WipeSecret(h, sizeof(h));
}

SEALCAST_AVX512_END

}  // namespace

void PolyTagLanes(const PolyMessage* messages, std::size_t count) {
  // Two groups (16 messages) at a time, so that their steps interleave; a last group of 8 or
  // fewer runs alone rather than beside an empty one.
  constexpr std::size_t kPairLanes = 2 * kPolyLanes;
  std::size_t first = 0;
  for (; first + kPolyLanes < count; first += kPairLanes) {
    TagGroups<2>(messages + first, count - first < kPairLanes ? count - first : kPairLanes);
  }
  if (first < count) TagGroups<1>(messages + first, count - first);
}

#else

bool PolyLanesSupported() { return false; }

void PolyTagLanes(const PolyMessage*, std::size_t) {}

#endif

}  // namespace sealcast
