// The batch AEAD core over the OpenSSL that Node ships. Nothing here allocates per packet or
// per batch: the two cipher contexts are created once per key, and every slot is processed
// in the caller's memory (in place, or opened into a target the caller gives).

#include "aead.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "chacha_lanes.h"
#include "poly1305_lanes.h"
#include "wipe.h"

// OpenSSL's internal ChaCha20 and Poly1305 primitives (crypto/include/internal/chacha.h and
// crypto/poly1305/poly1305.h; these signatures have not changed since OpenSSL 1.1.0). They are
// not public API, but Node exports every symbol of the OpenSSL it bundles. The references are
// weak, so where they are not exported they resolve to null and the EVP engine is used.
#if defined(__linux__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SEALCAST_CHACHA_PRIMITIVES 1
extern "C" {
struct poly1305_context;
void ChaCha20_ctr32(unsigned char* out, const unsigned char* in, std::size_t length, const unsigned int key[8],
                    const unsigned int counter[4]) __attribute__((weak));
std::size_t Poly1305_ctx_size(void) __attribute__((weak));
void Poly1305_Init(poly1305_context* context, const unsigned char key[32]) __attribute__((weak));
void Poly1305_Update(poly1305_context* context, const unsigned char* in, std::size_t length) __attribute__((weak));
void Poly1305_Final(poly1305_context* context, unsigned char mac[16]) __attribute__((weak));
}
#else
#define SEALCAST_CHACHA_PRIMITIVES 0
#endif

namespace sealcast {

// One slot as the lanes engine planned it: its bounds, where its lanes start, and how many of
// its payload bytes (the head) OpenSSL's ChaCha20 computes; the rest (the tail) and block 0
// come from the slot's lanes.
struct LaneSlot {
  std::size_t index;
  std::size_t offset;
  std::size_t aad_bytes;
  std::size_t payload_bytes;
  std::size_t lane_start;
  std::size_t head_bytes;
};

// The most lanes one plan computes (16 groups: 16 KiB of keystream, which stays in the L1
// cache until it is used).
constexpr std::size_t kPlanGroupsMax = 16;
constexpr std::size_t kPlanLanesMax = kPlanGroupsMax * kChaChaLanes;
// A slot takes 1 + (its blocks past the last whole group of 16) <= 16 lanes; the plan loops rely
// on every plan taking at least one slot.
static_assert(kPlanLanesMax >= kChaChaLanes, "a plan must hold any one slot's lanes");

struct ChaChaPrimitivesState {
  // The key as the eight little-endian words ChaCha20_ctr32 takes.
  unsigned int key_words[8];
  // Poly1305_ctx_size() bytes; the one-time key it holds is cleansed by Poly1305_Final.
  unsigned char* poly_memory;
  // 64 + kPayloadBytesMax bytes, for running block 0 and the payload through one ChaCha20 call.
  unsigned char* scratch;
  // The lanes engine (Engine::kLanes) when set; its working memory is allocated only then.
  bool lanes;
  std::uint32_t* lane_rows;       // kPlanGroupsMax * kChaChaGroupRowWords words
  std::uint8_t* lane_keystream;   // kPlanGroupsMax * kChaChaGroupBytes bytes
  LaneSlot* lane_slots;           // kPlanLanesMax slots
  PolyMessage* lane_messages;     // kPlanLanesMax messages, one per planned slot
  std::uint8_t* lane_tags;        // kPlanLanesMax expected tags (opening)
};

namespace {

const EVP_CIPHER* CipherFor(Suite suite) {
  switch (suite) {
    case Suite::kChaCha20Poly1305:
      return EVP_chacha20_poly1305();
    case Suite::kAes256Gcm:
      return EVP_aes_256_gcm();
    case Suite::kAes128Gcm:
      return EVP_aes_128_gcm();
    case Suite::kAes192Gcm:
      return EVP_aes_192_gcm();
  }
  return nullptr;
}

std::string SlotPrefix(std::size_t slot) { return "layout slot " + std::to_string(slot) + ": "; }

// The bounds of one slot, read once from the layout so that every later use sees the same
// values even if the layout memory is shared with another thread.
struct Slot {
  std::size_t offset;
  std::size_t aad_bytes;
  std::size_t payload_bytes;
  std::size_t end;  // One past the tag.
};

Slot ReadSlot(const std::uint32_t* layout, std::size_t slot) {
  const std::uint32_t* words = layout + slot * kLayoutWords;
  Slot result;
  result.offset = words[0];
  result.aad_bytes = words[1];
  result.payload_bytes = words[2];
  // Each term is below 2^32, so the sum cannot overflow a 64-bit size_t.
  result.end = result.offset + result.aad_bytes + result.payload_bytes + kTagBytes;
  return result;
}

// The cheap per-slot re-check made while processing: the slot lies after the previous one,
// inside the slab, and within the size limits.
bool SlotInBounds(const Slot& slot, std::size_t previous_end, std::size_t slab_bytes) {
  return slot.offset >= previous_end && slot.end <= slab_bytes && slot.aad_bytes <= kAadBytesMax &&
         slot.payload_bytes <= kPayloadBytesMax;
}

Outcome ChangedUnderfoot(std::size_t slot) {
  return Outcome::Fail(ErrorKind::kRange,
                       SlotPrefix(slot) + "the layout changed while the batch was processed (shared memory?)");
}

#if SEALCAST_CHACHA_PRIMITIVES
constexpr unsigned char kZeros[64] = {0};
constexpr std::size_t kPolyAlignment = 64;
// Poly1305's one-time key: the first 32 bytes of ChaCha20 block 0 (RFC 8439, 2.6).
constexpr std::size_t kOneTimeKeyBytes = 32;
constexpr std::size_t kScratchBytes = kChaChaBlockBytes + kPayloadBytesMax;

void FreePrimitives(ChaChaPrimitivesState* state) {
  if (state == nullptr) return;
  OPENSSL_cleanse(state->key_words, sizeof(state->key_words));
  if (state->lane_keystream != nullptr) {
    OPENSSL_cleanse(state->lane_keystream, kPlanGroupsMax * kChaChaGroupBytes);
    std::free(state->lane_keystream);
  }
  if (state->lane_tags != nullptr) {
    OPENSSL_cleanse(state->lane_tags, kPlanLanesMax * kTagBytes);
    std::free(state->lane_tags);
  }
  std::free(state->lane_rows);
  std::free(state->lane_slots);
  std::free(state->lane_messages);
  if (state->poly_memory != nullptr) {
    OPENSSL_cleanse(state->poly_memory, Poly1305_ctx_size());
    std::free(state->poly_memory);
  }
  if (state->scratch != nullptr) {
    OPENSSL_cleanse(state->scratch, kScratchBytes);
    std::free(state->scratch);
  }
  delete state;
}

// Computes the RFC 8439 tag of one slot: Poly1305 keyed with `one_time_key` (the first 32
// bytes of ChaCha20 block 0) over AAD | pad | ciphertext | pad | AAD length | ciphertext length.
// The ciphertext is the one in the slot, directly after the AAD.
//
// Each Poly1305_Update costs a fixed setup, so the message goes in as few calls as possible:
// a short AAD is padded in a stack buffer, an AAD of whole blocks runs straight on into the
// ciphertext (they are adjacent in the slot), and the ciphertext's last partial block, its
// padding and the lengths go in one final call.
void PolyTag(const ChaChaPrimitivesState& state, const unsigned char* one_time_key, const std::uint8_t* aad,
             std::size_t aad_bytes, std::size_t ciphertext_bytes, std::uint8_t tag[kTagBytes]) {
  auto* poly = reinterpret_cast<poly1305_context*>(state.poly_memory);
  const std::uint8_t* ciphertext = aad + aad_bytes;
  Poly1305_Init(poly, one_time_key);
  const std::size_t ciphertext_whole = ciphertext_bytes & ~static_cast<std::size_t>(15);
  const std::size_t ciphertext_tail = ciphertext_bytes - ciphertext_whole;
  constexpr std::size_t kShortAadBytes = 64;
  if (aad_bytes % 16 == 0) {
    Poly1305_Update(poly, aad, aad_bytes + ciphertext_whole);
  } else {
    if (aad_bytes <= kShortAadBytes) {
      unsigned char padded[kShortAadBytes] = {0};
      std::memcpy(padded, aad, aad_bytes);
      Poly1305_Update(poly, padded, (aad_bytes + 15) & ~static_cast<std::size_t>(15));
    } else {
      Poly1305_Update(poly, aad, aad_bytes);
      Poly1305_Update(poly, kZeros, 16 - aad_bytes % 16);
    }
    Poly1305_Update(poly, ciphertext, ciphertext_whole);
  }
  // The last partial ciphertext block, zero padding, then both lengths as 64-bit
  // little-endian words (the host is little-endian; see the #if above).
  unsigned char last[32] = {0};
  std::memcpy(last, ciphertext + ciphertext_whole, ciphertext_tail);
  const std::size_t lengths_at = ciphertext_tail == 0 ? 0 : 16;
  const std::uint64_t lengths[2] = {aad_bytes, ciphertext_bytes};
  std::memcpy(last + lengths_at, lengths, sizeof(lengths));
  Poly1305_Update(poly, last, lengths_at + 16);
  Poly1305_Final(poly, tag);
}

// ChaCha20_ctr32 increments only the 32-bit block counter; a slot's payload is far too small
// to wrap it.
static_assert(kPayloadBytesMax / 64 + 2 < 0xffffffffu, "a payload must not wrap the ChaCha20 block counter");

// Whether block 0 (the one-time key) and the payload should go through ChaCha20 in one call.
// Implementations compute several blocks in parallel (4, 8 or 16), so one more block is free
// unless the payload fills its last group exactly, while a separate call for block 0 alone
// costs a whole group (about 100 ns here). The one call needs the payload copied next to block
// 0 in the scratch buffer and back, which costs less than that group only for small payloads:
// measured at 1400 bytes it gains about 9 %; beyond about 4 KiB the copies cost more.
constexpr std::size_t kOneCallPayloadBytesMax = 4096;

bool OneCallPays(std::size_t payload_bytes) {
  const std::size_t blocks = (payload_bytes + kChaChaBlockBytes - 1) / kChaChaBlockBytes;
  return payload_bytes > 0 && payload_bytes <= kOneCallPayloadBytesMax && blocks % 16 != 0;
}

void InitialCounter(const std::uint8_t* nonce, unsigned int counter[4]) {
  counter[0] = 0;
  std::memcpy(&counter[1], nonce, kNonceBytes);
}

// Runs block 0 and the payload through ChaCha20 in one call, in the scratch buffer: on return
// scratch[0, 32) is the one-time key (block 0's first half) and scratch[64, 64 + bytes) the
// transformed payload. The payload itself is not touched. The call's input must be 64 bytes
// followed by the payload; when the slab holds 64 bytes before the payload (every slot but one
// at the slab's start), those bytes serve, and the one-time key is recovered by XORing them out
// again, which saves copying the payload in.
void ChaChaIntoScratch(const ChaChaPrimitivesState& state, const std::uint8_t* nonce, const std::uint8_t* slab,
                       const std::uint8_t* payload, std::size_t bytes) {
  unsigned int counter[4];
  InitialCounter(nonce, counter);
  if (static_cast<std::size_t>(payload - slab) >= kChaChaBlockBytes) {
    const std::uint8_t* prefix = payload - kChaChaBlockBytes;
    ChaCha20_ctr32(state.scratch, prefix, kChaChaBlockBytes + bytes, state.key_words, counter);
    // Only the one-time key (the first 32 bytes of block 0) is used; the rest of the block is
    // cleansed with it. Word by word, since this runs once per packet.
    for (std::size_t at = 0; at < kOneTimeKeyBytes; at += sizeof(std::uint64_t)) {
      std::uint64_t word, mask;
      std::memcpy(&word, state.scratch + at, sizeof(word));
      std::memcpy(&mask, prefix + at, sizeof(mask));
      word ^= mask;
      std::memcpy(state.scratch + at, &word, sizeof(word));
    }
    return;
  }
  std::memset(state.scratch, 0, kChaChaBlockBytes);
  std::memcpy(state.scratch + kChaChaBlockBytes, payload, bytes);
  ChaCha20_ctr32(state.scratch, state.scratch, kChaChaBlockBytes + bytes, state.key_words, counter);
}

// Computes block 0 alone into `block`.
void ChaChaBlockZero(const ChaChaPrimitivesState& state, const std::uint8_t* nonce, unsigned char block[64]) {
  unsigned int counter[4];
  InitialCounter(nonce, counter);
  ChaCha20_ctr32(block, kZeros, kChaChaBlockBytes, state.key_words, counter);
}

// Encrypts or decrypts `bytes` from `source` into `target` (which may be `source`) from block 1 on.
void ChaChaPayload(const ChaChaPrimitivesState& state, const std::uint8_t* nonce, const std::uint8_t* source,
                   std::uint8_t* target, std::size_t bytes) {
  if (bytes == 0) return;
  unsigned int counter[4];
  InitialCounter(nonce, counter);
  counter[0] = 1;
  ChaCha20_ctr32(target, source, bytes, state.key_words, counter);
}

// Seals one slot: encrypts the payload in place and writes the tag after it.
void SealSlotPrimitives(const ChaChaPrimitivesState& state, const std::uint8_t* nonce, const std::uint8_t* aad,
                        std::size_t aad_bytes, std::uint8_t* payload, std::size_t payload_bytes) {
  if (OneCallPays(payload_bytes)) {
    ChaChaIntoScratch(state, nonce, payload, payload, payload_bytes);
    std::memcpy(payload, state.scratch + kChaChaBlockBytes, payload_bytes);
    PolyTag(state, state.scratch, aad, aad_bytes, payload_bytes, payload + payload_bytes);
    OPENSSL_cleanse(state.scratch, kChaChaBlockBytes);
  } else {
    unsigned char block_zero[kChaChaBlockBytes];
    ChaChaBlockZero(state, nonce, block_zero);
    ChaChaPayload(state, nonce, payload, payload, payload_bytes);
    PolyTag(state, block_zero, aad, aad_bytes, payload_bytes, payload + payload_bytes);
    OPENSSL_cleanse(block_zero, sizeof(block_zero));
  }
}

// Opens one slot: verifies the tag (in constant time) over the ciphertext in the slab, and only
// then writes the plaintext to `target`: the payload itself (in place) or memory outside the
// slab, in which case the slot is left as it was. Returns whether the tag verified; if not,
// `target` is zeroed, so that a failed slot reads the same on every engine.
bool OpenSlotPrimitives(const ChaChaPrimitivesState& state, const std::uint8_t* nonce, const std::uint8_t* slab,
                        const std::uint8_t* aad, std::size_t aad_bytes, const std::uint8_t* payload,
                        std::size_t payload_bytes, std::uint8_t* target) {
  const std::uint8_t* tag = payload + payload_bytes;
  std::uint8_t expected[kTagBytes];
  bool authentic;
  if (OneCallPays(payload_bytes)) {
    // The plaintext lands in the scratch buffer and reaches the target only once authenticated.
    ChaChaIntoScratch(state, nonce, slab, payload, payload_bytes);
    PolyTag(state, state.scratch, aad, aad_bytes, payload_bytes, expected);
    authentic = CRYPTO_memcmp(expected, tag, kTagBytes) == 0;
    if (authentic) {
      std::memcpy(target, state.scratch + kChaChaBlockBytes, payload_bytes);
      OPENSSL_cleanse(state.scratch, kChaChaBlockBytes);
    } else {
      OPENSSL_cleanse(state.scratch, kChaChaBlockBytes + payload_bytes);
    }
  } else {
    unsigned char block_zero[kChaChaBlockBytes];
    ChaChaBlockZero(state, nonce, block_zero);
    PolyTag(state, block_zero, aad, aad_bytes, payload_bytes, expected);
    OPENSSL_cleanse(block_zero, sizeof(block_zero));
    authentic = CRYPTO_memcmp(expected, tag, kTagBytes) == 0;
    if (authentic) ChaChaPayload(state, nonce, payload, target, payload_bytes);
  }
  if (!authentic) OPENSSL_cleanse(target, payload_bytes);
  return authentic;
}

// The lanes engine. A slot's payload is split at the last whole group of 16 blocks: the head
// (blocks 1 to 16k) goes through OpenSSL's ChaCha20, which computes exactly those blocks; block
// 0 and the tail (at most 15 blocks) become lanes, packed with other slots' lanes into groups of
// 16 that ChaChaLanes computes together. A 1400-byte datagram then costs one OpenSSL group and
// 7 lanes, instead of the two OpenSSL groups (32 blocks) its 23 blocks take in one call.

// Lanes of one slot: block 0, then the tail's blocks.
std::size_t TailLanes(std::size_t payload_bytes, std::size_t* head_bytes) {
  const std::size_t payload_blocks = (payload_bytes + kChaChaBlockBytes - 1) / kChaChaBlockBytes;
  const std::size_t head_blocks = payload_blocks / kChaChaLanes * kChaChaLanes;
  *head_bytes = head_blocks * kChaChaBlockBytes < payload_bytes ? head_blocks * kChaChaBlockBytes : payload_bytes;
  return 1 + payload_blocks - head_blocks;
}

void SetLaneRow(std::uint32_t* rows, std::size_t lane, std::uint32_t counter, const std::uint8_t* nonce) {
  std::uint32_t* group_rows = rows + lane / kChaChaLanes * kChaChaGroupRowWords;
  const std::size_t column = lane % kChaChaLanes;
  std::uint32_t nonce_words[3];
  std::memcpy(nonce_words, nonce, kNonceBytes);
  group_rows[column] = counter;
  group_rows[kChaChaLanes + column] = nonce_words[0];
  group_rows[2 * kChaChaLanes + column] = nonce_words[1];
  group_rows[3 * kChaChaLanes + column] = nonce_words[2];
}

struct LanePlan {
  std::size_t slots = 0;  // planned: state.lane_slots[0, slots)
  std::size_t lanes = 0;
  bool out_of_bounds = false;  // the slot after the planned ones failed its bounds check
};

// Plans slots [first, end) until the lanes run out or a slot fails its bounds check, and
// computes the planned lanes' keystream into state.lane_keystream. With `previous_end`, slots
// must also follow one another (the batch paths); without, each is checked alone (a run).
LanePlan PlanLanes(const ChaChaPrimitivesState& state, const BatchView& batch, std::size_t first, std::size_t end,
                   std::size_t* previous_end) {
  LanePlan plan;
  for (std::size_t index = first; index < end; index++) {
    const Slot slot = ReadSlot(batch.layout, index);
    if (!SlotInBounds(slot, previous_end == nullptr ? 0 : *previous_end, batch.slab_bytes)) {
      plan.out_of_bounds = true;
      break;
    }
    std::size_t head_bytes;
    const std::size_t lanes = TailLanes(slot.payload_bytes, &head_bytes);
    if (plan.lanes + lanes > kPlanLanesMax) break;
    if (previous_end != nullptr) *previous_end = slot.end;
    const std::uint8_t* nonce = batch.nonces + index * kNonceBytes;
    const std::uint32_t head_blocks = static_cast<std::uint32_t>(head_bytes / kChaChaBlockBytes);
    SetLaneRow(state.lane_rows, plan.lanes, 0, nonce);
    for (std::size_t lane = 1; lane < lanes; lane++) {
      SetLaneRow(state.lane_rows, plan.lanes + lane, head_blocks + static_cast<std::uint32_t>(lane), nonce);
    }
    state.lane_slots[plan.slots] = {index, slot.offset, slot.aad_bytes, slot.payload_bytes, plan.lanes, head_bytes};
    plan.slots++;
    plan.lanes += lanes;
  }
  if (plan.lanes == 0) return plan;
  // The last group's unused lanes compute a block nobody reads; zero rows keep that deterministic.
  const std::size_t groups = (plan.lanes + kChaChaLanes - 1) / kChaChaLanes;
  for (std::size_t lane = plan.lanes; lane < groups * kChaChaLanes; lane++) {
    SetLaneRow(state.lane_rows, lane, 0, kZeros);
  }
  ChaChaLanes(state.key_words, state.lane_rows, groups, state.lane_keystream);
  return plan;
}

// Cleanses what a plan derived from the key: its keystream, and the tags it expected (a forged
// packet's expected tag is a valid tag for the forger's ciphertext).
void ForgetPlan(const ChaChaPrimitivesState& state, const LanePlan& plan) {
  const std::size_t groups = (plan.lanes + kChaChaLanes - 1) / kChaChaLanes;
  WipeSecret(state.lane_keystream, groups * kChaChaGroupBytes);
  WipeSecret(state.lane_tags, plan.slots * kTagBytes);
}

// Encrypts (or decrypts) a planned slot's payload from `source` into `target` (which may be
// `source`): the head through OpenSSL, the tail from the slot's lanes.
void ChaChaPlanned(const ChaChaPrimitivesState& state, const LaneSlot& slot, const std::uint8_t* nonce,
                   const std::uint8_t* source, std::uint8_t* target) {
  if (slot.head_bytes > 0) ChaChaPayload(state, nonce, source, target, slot.head_bytes);
  const std::uint8_t* tail_keystream = state.lane_keystream + (slot.lane_start + 1) * kChaChaBlockBytes;
  XorKeystream(target + slot.head_bytes, source + slot.head_bytes, tail_keystream, slot.payload_bytes - slot.head_bytes);
}

// Computes the tags of the planned slots, 16 at a time (PolyTagLanes), over the ciphertext each
// slot holds: into the slots themselves (sealing) or into state.lane_tags (opening).
void TagPlanned(const ChaChaPrimitivesState& state, const BatchView& batch, const LanePlan& plan, bool into_slots) {
  for (std::size_t planned = 0; planned < plan.slots; planned++) {
    const LaneSlot& slot = state.lane_slots[planned];
    std::uint8_t* aad = batch.slab + slot.offset;
    std::uint8_t* ciphertext = aad + slot.aad_bytes;
    state.lane_messages[planned] = {state.lane_keystream + slot.lane_start * kChaChaBlockBytes, aad, slot.aad_bytes,
                                    ciphertext, slot.payload_bytes,
                                    into_slots ? ciphertext + slot.payload_bytes : state.lane_tags + planned * kTagBytes};
  }
  PolyTagLanes(state.lane_messages, plan.slots);
}

// Whether planned slot `planned` (tagged by TagPlanned) authenticates; if so decrypts it into
// `target` (its payload, or memory outside the slab), otherwise zeroes the target.
bool OpenPlanned(const ChaChaPrimitivesState& state, const BatchView& batch, std::size_t planned, std::uint8_t* target) {
  const LaneSlot& slot = state.lane_slots[planned];
  const std::uint8_t* payload = batch.slab + slot.offset + slot.aad_bytes;
  const bool authentic = CRYPTO_memcmp(state.lane_tags + planned * kTagBytes, payload + slot.payload_bytes, kTagBytes) == 0;
  if (authentic) {
    ChaChaPlanned(state, slot, batch.nonces + slot.index * kNonceBytes, payload, target);
  } else {
    OPENSSL_cleanse(target, slot.payload_bytes);
  }
  return authentic;
}
#else
void FreePrimitives(ChaChaPrimitivesState* state) { delete state; }
#endif

Outcome OpenSslFailure(const char* what) {
  // Node reads the same per-thread error queue, so nothing of ours may be left on it.
  ERR_clear_error();
  return Outcome::Fail(ErrorKind::kInternal, std::string("OpenSSL failed to ") + what);
}

}  // namespace

bool RangesOverlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0) return false;
  auto a_start = reinterpret_cast<std::uintptr_t>(a);
  auto b_start = reinterpret_cast<std::uintptr_t>(b);
  return a_start < b_start + b_bytes && b_start < a_start + a_bytes;
}

const SuiteInfo* FindSuite(const std::string& name) {
  for (const SuiteInfo& info : kSuites) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

const char* OpenSslVersion() { return OpenSSL_version(OPENSSL_VERSION); }

Outcome CheckBatch(const BatchView& batch, const std::uint8_t* status, std::size_t status_bytes, bool with_status) {
  const std::size_t layout_slots = batch.layout_words / kLayoutWords;
  if (batch.count > layout_slots) {
    return Outcome::Fail(ErrorKind::kRange, "count " + std::to_string(batch.count) + " exceeds the layout's " +
                                                std::to_string(layout_slots) + " slots");
  }
  const std::size_t nonce_slots = batch.nonce_bytes / kNonceBytes;
  if (batch.count > nonce_slots) {
    return Outcome::Fail(ErrorKind::kRange, "count " + std::to_string(batch.count) + " exceeds the " +
                                                std::to_string(nonce_slots) + " nonces of " +
                                                std::to_string(batch.nonce_bytes) + " nonce bytes");
  }
  if (with_status && status_bytes < batch.count) {
    return Outcome::Fail(ErrorKind::kRange, "status holds " + std::to_string(status_bytes) +
                                                " bytes but the batch has " + std::to_string(batch.count) + " slots");
  }
  const std::size_t layout_bytes = batch.layout_words * sizeof(std::uint32_t);
  if (RangesOverlap(batch.slab, batch.slab_bytes, batch.layout, layout_bytes)) {
    return Outcome::Fail(ErrorKind::kRange, "layout must not overlap slab");
  }
  if (RangesOverlap(batch.slab, batch.slab_bytes, batch.nonces, batch.nonce_bytes)) {
    return Outcome::Fail(ErrorKind::kRange, "nonces must not overlap slab");
  }
  if (with_status) {
    if (RangesOverlap(batch.slab, batch.slab_bytes, status, status_bytes)) {
      return Outcome::Fail(ErrorKind::kRange, "status must not overlap slab");
    }
    if (RangesOverlap(batch.nonces, batch.nonce_bytes, status, status_bytes)) {
      return Outcome::Fail(ErrorKind::kRange, "status must not overlap nonces");
    }
    if (RangesOverlap(batch.layout, layout_bytes, status, status_bytes)) {
      return Outcome::Fail(ErrorKind::kRange, "status must not overlap layout");
    }
  }
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count; index++) {
    const Slot slot = ReadSlot(batch.layout, index);
    if (slot.aad_bytes > kAadBytesMax) {
      return Outcome::Fail(ErrorKind::kRange, SlotPrefix(index) + "AAD of " + std::to_string(slot.aad_bytes) +
                                                  " bytes exceeds " + std::to_string(kAadBytesMax));
    }
    if (slot.payload_bytes > kPayloadBytesMax) {
      return Outcome::Fail(ErrorKind::kRange, SlotPrefix(index) + "payload of " +
                                                  std::to_string(slot.payload_bytes) + " bytes exceeds " +
                                                  std::to_string(kPayloadBytesMax));
    }
    if (slot.offset < previous_end) {
      return Outcome::Fail(ErrorKind::kRange, SlotPrefix(index) + "offset " + std::to_string(slot.offset) +
                                                  " overlaps the previous slot, which ends at " +
                                                  std::to_string(previous_end));
    }
    if (slot.end > batch.slab_bytes) {
      return Outcome::Fail(ErrorKind::kRange, SlotPrefix(index) + "slot ends at byte " + std::to_string(slot.end) +
                                                  ", beyond the slab's " + std::to_string(batch.slab_bytes) +
                                                  " bytes");
    }
    previous_end = slot.end;
  }
  return Outcome::Ok();
}

bool ChaChaPrimitivesAvailable() {
#if SEALCAST_CHACHA_PRIMITIVES
  return ChaCha20_ctr32 != nullptr && Poly1305_ctx_size != nullptr && Poly1305_Init != nullptr &&
         Poly1305_Update != nullptr && Poly1305_Final != nullptr;
#else
  return false;
#endif
}

bool ChaChaLanesAvailable() { return ChaChaPrimitivesAvailable() && ChaChaLanesSupported() && PolyLanesSupported(); }

AeadContext::AeadContext(const SuiteInfo& suite) : suite_(suite), primitives_(nullptr, FreePrimitives) {}

AeadContext::~AeadContext() {
  // Freeing a context makes OpenSSL cleanse the key schedule it holds.
  EVP_CIPHER_CTX_free(seal_);
  EVP_CIPHER_CTX_free(open_);
}

std::unique_ptr<AeadContext> AeadContext::Create(const SuiteInfo& suite, const std::uint8_t* key,
                                                 std::size_t key_bytes, EngineChoice choice, Outcome* error) {
  if (key_bytes != suite.key_bytes) {
    *error = Outcome::Fail(ErrorKind::kRange, std::string("key must be ") + std::to_string(suite.key_bytes) +
                                                  " bytes for " + suite.name + ", got " + std::to_string(key_bytes));
    return nullptr;
  }
  const EVP_CIPHER* cipher = CipherFor(suite.suite);
  std::unique_ptr<AeadContext> context(new AeadContext(suite));
  context->seal_ = EVP_CIPHER_CTX_new();
  context->open_ = EVP_CIPHER_CTX_new();
  if (cipher == nullptr || context->seal_ == nullptr || context->open_ == nullptr) {
    *error = OpenSslFailure("allocate a cipher context");
    return nullptr;
  }
  // The key schedule is computed here, once; both ciphers use a 12-byte nonce and a 16-byte
  // tag by default, which is what sealcast's slots carry.
  if (EVP_EncryptInit_ex(context->seal_, cipher, nullptr, key, nullptr) != 1 ||
      EVP_DecryptInit_ex(context->open_, cipher, nullptr, key, nullptr) != 1) {
    *error = OpenSslFailure("set up the key");
    return nullptr;
  }
  if (EVP_CIPHER_CTX_get_iv_length(context->seal_) != static_cast<int>(kNonceBytes)) {
    *error = OpenSslFailure("use a 12-byte nonce");
    return nullptr;
  }
#if SEALCAST_CHACHA_PRIMITIVES
  if (choice != EngineChoice::kEvp && suite.suite == Suite::kChaCha20Poly1305 && ChaChaPrimitivesAvailable()) {
    const std::size_t poly_bytes = (Poly1305_ctx_size() + kPolyAlignment - 1) / kPolyAlignment * kPolyAlignment;
    auto* state = new ChaChaPrimitivesState();
    state->poly_memory = static_cast<unsigned char*>(std::aligned_alloc(kPolyAlignment, poly_bytes));
    state->scratch = static_cast<unsigned char*>(std::aligned_alloc(kPolyAlignment, kScratchBytes));
    std::memcpy(state->key_words, key, sizeof(state->key_words));
    context->primitives_.reset(state);
    // The primitives are not public API, and the lanes kernel is our own, so each is trusted
    // only after it reproduces EVP; the lanes engine falls back to the primitives alone.
    if (state->poly_memory == nullptr || state->scratch == nullptr || !context->PrimitivesAgreeWithEvp()) {
      context->primitives_.reset();
    } else if (choice == EngineChoice::kFastest && ChaChaLanesAvailable()) {
      state->lane_rows = static_cast<std::uint32_t*>(
          std::aligned_alloc(kPolyAlignment, kPlanGroupsMax * kChaChaGroupRowWords * sizeof(std::uint32_t)));
      state->lane_keystream = static_cast<std::uint8_t*>(std::aligned_alloc(kPolyAlignment, kPlanGroupsMax * kChaChaGroupBytes));
      state->lane_slots = static_cast<LaneSlot*>(std::malloc(kPlanLanesMax * sizeof(LaneSlot)));
      state->lane_messages = static_cast<PolyMessage*>(std::malloc(kPlanLanesMax * sizeof(PolyMessage)));
      state->lane_tags = static_cast<std::uint8_t*>(std::malloc(kPlanLanesMax * kTagBytes));
      state->lanes = state->lane_rows != nullptr && state->lane_keystream != nullptr && state->lane_slots != nullptr &&
                     state->lane_messages != nullptr && state->lane_tags != nullptr;
      if (state->lanes && !context->PrimitivesAgreeWithEvp()) state->lanes = false;
    }
  }
#else
  (void)choice;
#endif
  return context;
}

bool AeadContext::PrimitivesAgreeWithEvp() {
  // One batch of slots whose sizes cover an empty payload, a partial block, one block, the
  // many-block code path (above 512 bytes), a payload of exactly 16 blocks, one just past it, a
  // 1400-byte datagram's, and one of two groups and more; the AAD is 13 bytes, so its padding is
  // exercised too. The first slot sits at the slab's start and the others after a gap, so that
  // block 0 is computed both ways (see OneCallPays). The lanes engine packs the slots' 33 ChaCha20
  // lanes into three groups of 16, the last one partly filled, and their 9 tags into a full group
  // of 8 Poly1305 lanes and a partial one.
  constexpr std::size_t kSampleSizes[] = {600, 0, 1, 64, 1024, 1025, 1348, 2100, 200};
  constexpr std::size_t kSlots = sizeof(kSampleSizes) / sizeof(kSampleSizes[0]);
  constexpr std::size_t kAadBytes = 13;
  constexpr std::size_t kGapBytes = 80;
  std::uint32_t layout[kSlots * kLayoutWords];
  std::uint8_t nonces[kSlots * kNonceBytes];
  std::size_t slab_bytes = 0;
  for (std::size_t slot = 0; slot < kSlots; slot++) {
    const std::size_t offset = slot == 0 ? 0 : slab_bytes + kGapBytes;
    layout[slot * kLayoutWords] = static_cast<std::uint32_t>(offset);
    layout[slot * kLayoutWords + 1] = kAadBytes;
    layout[slot * kLayoutWords + 2] = static_cast<std::uint32_t>(kSampleSizes[slot]);
    slab_bytes = offset + kAadBytes + kSampleSizes[slot] + kTagBytes;
    for (std::size_t i = 0; i < kNonceBytes; i++) nonces[slot * kNonceBytes + i] = static_cast<std::uint8_t>(0xa0 + slot * 16 + i);
  }
  std::vector<std::uint8_t> original(slab_bytes);
  for (std::size_t i = 0; i < slab_bytes; i++) original[i] = static_cast<std::uint8_t>(i * 7 + (i >> 8));
  std::vector<std::uint8_t> evp_slab(original);
  std::vector<std::uint8_t> own_slab(original);
  BatchView evp_batch{evp_slab.data(), slab_bytes, layout, kSlots * kLayoutWords, nonces, sizeof(nonces), kSlots};
  BatchView own_batch{own_slab.data(), slab_bytes, layout, kSlots * kLayoutWords, nonces, sizeof(nonces), kSlots};
  if (!SealBatchEvp(evp_batch).ok() || !SealBatchPrimitives(own_batch).ok() || evp_slab != own_slab) return false;
  std::uint8_t status[kSlots];
  // Each slot into a target alone, then all as one run into one target: the slab stays sealed.
  std::vector<std::uint8_t> target(slab_bytes);
  std::size_t target_at = 0;
  for (std::size_t slot = 0; slot < kSlots; slot++) {
    const std::size_t payload_at = layout[slot * kLayoutWords] + kAadBytes;
    if (!OpenSlotInto(own_batch, slot, target.data(), target.size(), &status[slot]).ok() || status[slot] != kStatusOk) return false;
    if (std::memcmp(target.data(), original.data() + payload_at, kSampleSizes[slot]) != 0) return false;
  }
  RunOutcome run;
  if (!OpenRunInto(own_batch, 0, kSlots, target.data(), target.size(), status, &run).ok() || run.slots != kSlots ||
      run.auth_failed) {
    return false;
  }
  for (std::size_t slot = 0; slot < kSlots; slot++) {
    const std::size_t payload_at = layout[slot * kLayoutWords] + kAadBytes;
    if (std::memcmp(target.data() + target_at, original.data() + payload_at, kSampleSizes[slot]) != 0) return false;
    target_at += kSampleSizes[slot];
  }
  if (run.bytes != target_at || evp_slab != own_slab) return false;
  // In place; then, with one tag forged, exactly that slot fails (and is zeroed).
  std::size_t authenticated = 0;
  if (!OpenBatchPrimitives(own_batch, status, &authenticated).ok() || authenticated != kSlots) return false;
  for (std::size_t slot = 0; slot < kSlots; slot++) {
    const std::size_t payload_at = layout[slot * kLayoutWords] + kAadBytes;
    if (std::memcmp(own_slab.data() + payload_at, original.data() + payload_at, kSampleSizes[slot]) != 0) return false;
  }
  constexpr std::size_t kForged = 6;
  const std::size_t forged_tag_at = layout[kForged * kLayoutWords] + kAadBytes + kSampleSizes[kForged];
  evp_slab[forged_tag_at] ^= 1;
  if (!OpenBatchPrimitives(evp_batch, status, &authenticated).ok() || authenticated != kSlots - 1) return false;
  for (std::size_t slot = 0; slot < kSlots; slot++) {
    if (status[slot] != (slot == kForged ? kStatusAuthFailed : kStatusOk)) return false;
  }
  return true;
}

Engine AeadContext::engine() const {
  if (primitives_ == nullptr) return Engine::kEvp;
  return primitives_->lanes ? Engine::kLanes : Engine::kPrimitives;
}

Outcome AeadContext::SealBatch(const BatchView& batch) {
  return primitives_ != nullptr ? SealBatchPrimitives(batch) : SealBatchEvp(batch);
}

Outcome AeadContext::OpenBatch(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated) {
  return primitives_ != nullptr ? OpenBatchPrimitives(batch, status, authenticated)
                                : OpenBatchEvp(batch, status, authenticated);
}

#if SEALCAST_CHACHA_PRIMITIVES
Outcome AeadContext::SealBatchPrimitives(const BatchView& batch) {
  const ChaChaPrimitivesState& state = *primitives_;
  if (state.lanes) return SealBatchLanes(batch);
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count; index++) {
    const Slot slot = ReadSlot(batch.layout, index);
    if (!SlotInBounds(slot, previous_end, batch.slab_bytes)) return ChangedUnderfoot(index);
    previous_end = slot.end;
    std::uint8_t* aad = batch.slab + slot.offset;
    std::uint8_t* payload = aad + slot.aad_bytes;
    SealSlotPrimitives(state, batch.nonces + index * kNonceBytes, aad, slot.aad_bytes, payload, slot.payload_bytes);
  }
  return Outcome::Ok();
}

Outcome AeadContext::OpenBatchPrimitives(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated) {
  const ChaChaPrimitivesState& state = *primitives_;
  if (state.lanes) return OpenBatchLanes(batch, status, authenticated);
  std::size_t verified = 0;
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count; index++) {
    const Slot slot = ReadSlot(batch.layout, index);
    if (!SlotInBounds(slot, previous_end, batch.slab_bytes)) {
      std::memset(status + index, kStatusAuthFailed, batch.count - index);
      *authenticated = verified;
      return ChangedUnderfoot(index);
    }
    previous_end = slot.end;
    std::uint8_t* aad = batch.slab + slot.offset;
    std::uint8_t* payload = aad + slot.aad_bytes;
    if (OpenSlotPrimitives(state, batch.nonces + index * kNonceBytes, batch.slab, aad, slot.aad_bytes, payload,
                           slot.payload_bytes, payload)) {
      status[index] = kStatusOk;
      verified++;
    } else {
      status[index] = kStatusAuthFailed;
    }
  }
  *authenticated = verified;
  return Outcome::Ok();
}

Outcome AeadContext::SealBatchLanes(const BatchView& batch) {
  const ChaChaPrimitivesState& state = *primitives_;
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count;) {
    const LanePlan plan = PlanLanes(state, batch, index, batch.count, &previous_end);
    for (std::size_t planned = 0; planned < plan.slots; planned++) {
      const LaneSlot& slot = state.lane_slots[planned];
      std::uint8_t* payload = batch.slab + slot.offset + slot.aad_bytes;
      ChaChaPlanned(state, slot, batch.nonces + slot.index * kNonceBytes, payload, payload);
    }
    TagPlanned(state, batch, plan, true);
    ForgetPlan(state, plan);
    index += plan.slots;
    if (plan.out_of_bounds) return ChangedUnderfoot(index);
  }
  return Outcome::Ok();
}

Outcome AeadContext::OpenBatchLanes(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated) {
  const ChaChaPrimitivesState& state = *primitives_;
  std::size_t verified = 0;
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count;) {
    const LanePlan plan = PlanLanes(state, batch, index, batch.count, &previous_end);
    TagPlanned(state, batch, plan, false);
    for (std::size_t planned = 0; planned < plan.slots; planned++) {
      const LaneSlot& slot = state.lane_slots[planned];
      const bool authentic = OpenPlanned(state, batch, planned, batch.slab + slot.offset + slot.aad_bytes);
      status[slot.index] = authentic ? kStatusOk : kStatusAuthFailed;
      if (authentic) verified++;
    }
    ForgetPlan(state, plan);
    index += plan.slots;
    if (plan.out_of_bounds) {
      std::memset(status + index, kStatusAuthFailed, batch.count - index);
      *authenticated = verified;
      return ChangedUnderfoot(index);
    }
  }
  *authenticated = verified;
  return Outcome::Ok();
}

Outcome AeadContext::OpenRunLanes(const BatchView& batch, std::size_t first, std::size_t end, std::uint8_t* target,
                                  std::size_t target_bytes, std::uint8_t* status, RunOutcome* run) {
  const ChaChaPrimitivesState& state = *primitives_;
  for (std::size_t index = first; index < end;) {
    const LanePlan plan = PlanLanes(state, batch, index, end, nullptr);
    TagPlanned(state, batch, plan, false);
    for (std::size_t planned = 0; planned < plan.slots; planned++) {
      const LaneSlot& slot = state.lane_slots[planned];
      if (slot.payload_bytes > target_bytes - run->bytes) {
        ForgetPlan(state, plan);
        return Outcome::Fail(ErrorKind::kRange, SlotPrefix(slot.index) + "payload of " +
                                                    std::to_string(slot.payload_bytes) + " bytes exceeds the target's " +
                                                    std::to_string(target_bytes - run->bytes) + " bytes left");
      }
      const bool authentic = OpenPlanned(state, batch, planned, target + run->bytes);
      status[slot.index] = authentic ? kStatusOk : kStatusAuthFailed;
      if (!authentic) {
        ForgetPlan(state, plan);
        run->auth_failed = true;
        return Outcome::Ok();
      }
      run->slots++;
      run->bytes += slot.payload_bytes;
    }
    ForgetPlan(state, plan);
    index += plan.slots;
    if (plan.out_of_bounds) return ChangedUnderfoot(index);
  }
  return Outcome::Ok();
}
#else
Outcome AeadContext::SealBatchPrimitives(const BatchView& batch) { return SealBatchEvp(batch); }

Outcome AeadContext::OpenBatchPrimitives(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated) {
  return OpenBatchEvp(batch, status, authenticated);
}
#endif

Outcome AeadContext::SealBatchEvp(const BatchView& batch) {
  EVP_CIPHER_CTX* ctx = seal_;
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count; index++) {
    const Slot slot = ReadSlot(batch.layout, index);
    if (!SlotInBounds(slot, previous_end, batch.slab_bytes)) return ChangedUnderfoot(index);
    previous_end = slot.end;
    std::uint8_t* aad = batch.slab + slot.offset;
    std::uint8_t* payload = aad + slot.aad_bytes;
    std::uint8_t* tag = payload + slot.payload_bytes;
    const int aad_length = static_cast<int>(slot.aad_bytes);
    const int payload_length = static_cast<int>(slot.payload_bytes);
    int written = 0;
    if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, batch.nonces + index * kNonceBytes) != 1) {
      return OpenSslFailure("set a nonce");
    }
    if (aad_length > 0 && EVP_EncryptUpdate(ctx, nullptr, &written, aad, aad_length) != 1) {
      return OpenSslFailure("authenticate the AAD");
    }
    if (payload_length > 0 &&
        (EVP_EncryptUpdate(ctx, payload, &written, payload, payload_length) != 1 || written != payload_length)) {
      return OpenSslFailure("encrypt a payload");
    }
    // Both suites are stream modes, so Final writes no bytes; the pointer only has to be valid.
    if (EVP_EncryptFinal_ex(ctx, tag, &written) != 1 || written != 0) {
      return OpenSslFailure("finish a payload");
    }
    // Read straight as the parameter it is: the ctrl call translates into it on every packet.
    OSSL_PARAM tag_params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagBytes),
                               OSSL_PARAM_construct_end()};
    if (EVP_CIPHER_CTX_get_params(ctx, tag_params) != 1) {
      return OpenSslFailure("produce a tag");
    }
  }
  return Outcome::Ok();
}

bool AeadContext::OpenSlotEvp(const std::uint8_t* nonce, const std::uint8_t* aad, std::size_t aad_bytes,
                              const std::uint8_t* payload, std::size_t payload_bytes, std::uint8_t* target) {
  EVP_CIPHER_CTX* ctx = open_;
  // OpenSSL takes the expected tag through a non-const pointer but only reads it.
  auto* tag = const_cast<std::uint8_t*>(payload + payload_bytes);
  const int aad_length = static_cast<int>(aad_bytes);
  const int payload_length = static_cast<int>(payload_bytes);
  int written = 0;
  // The nonce and the expected tag go in with one call: setting the tag through
  // EVP_CIPHER_CTX_ctrl costs a translation into the same parameter on every packet.
  const OSSL_PARAM tag_params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagBytes),
                                   OSSL_PARAM_construct_end()};
  bool ok = EVP_DecryptInit_ex2(ctx, nullptr, nullptr, nonce, tag_params) == 1;
  if (ok && aad_length > 0) ok = EVP_DecryptUpdate(ctx, nullptr, &written, aad, aad_length) == 1;
  if (ok && payload_length > 0) {
    ok = EVP_DecryptUpdate(ctx, target, &written, payload, payload_length) == 1 && written == payload_length;
  }
  // Final compares the tag; OpenSSL has already written the plaintext to the target by then, so
  // on failure the target is wiped: unauthenticated plaintext must never be exposed.
  if (ok) ok = EVP_DecryptFinal_ex(ctx, target, &written) == 1 && written == 0;
  if (!ok) OPENSSL_cleanse(target, payload_bytes);
  return ok;
}

Outcome AeadContext::OpenBatchEvp(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated) {
  std::size_t verified = 0;
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count; index++) {
    const Slot slot = ReadSlot(batch.layout, index);
    if (!SlotInBounds(slot, previous_end, batch.slab_bytes)) {
      // Slots not yet processed must not look authenticated to a caller that ignores the throw.
      std::memset(status + index, kStatusAuthFailed, batch.count - index);
      *authenticated = verified;
      return ChangedUnderfoot(index);
    }
    previous_end = slot.end;
    std::uint8_t* aad = batch.slab + slot.offset;
    std::uint8_t* payload = aad + slot.aad_bytes;
    if (OpenSlotEvp(batch.nonces + index * kNonceBytes, aad, slot.aad_bytes, payload, slot.payload_bytes, payload)) {
      status[index] = kStatusOk;
      verified++;
    } else {
      status[index] = kStatusAuthFailed;
    }
  }
  // A tag mismatch may leave entries on the thread's OpenSSL error queue, which Node shares.
  if (verified != batch.count) ERR_clear_error();
  *authenticated = verified;
  return Outcome::Ok();
}

Outcome AeadContext::OpenSlotInto(const BatchView& batch, std::size_t index, std::uint8_t* target,
                                  std::size_t target_bytes, std::uint8_t* status) {
  if (index >= batch.count) return Outcome::Fail(ErrorKind::kRange, SlotPrefix(index) + "beyond the batch");
  const Slot slot = ReadSlot(batch.layout, index);
  if (!SlotInBounds(slot, 0, batch.slab_bytes)) return ChangedUnderfoot(index);
  if (slot.payload_bytes > target_bytes) {
    return Outcome::Fail(ErrorKind::kRange, SlotPrefix(index) + "payload of " + std::to_string(slot.payload_bytes) +
                                                " bytes exceeds the target's " + std::to_string(target_bytes));
  }
  if (RangesOverlap(batch.slab, batch.slab_bytes, target, slot.payload_bytes)) {
    return Outcome::Fail(ErrorKind::kRange, "the target must not overlap the slab");
  }
  const std::uint8_t* aad = batch.slab + slot.offset;
  const std::uint8_t* payload = aad + slot.aad_bytes;
  const std::uint8_t* nonce = batch.nonces + index * kNonceBytes;
  bool authentic;
#if SEALCAST_CHACHA_PRIMITIVES
  if (primitives_ != nullptr) {
    authentic = OpenSlotPrimitives(*primitives_, nonce, batch.slab, aad, slot.aad_bytes, payload, slot.payload_bytes, target);
  } else {
    authentic = OpenSlotEvp(nonce, aad, slot.aad_bytes, payload, slot.payload_bytes, target);
    if (!authentic) ERR_clear_error();
  }
#else
  authentic = OpenSlotEvp(nonce, aad, slot.aad_bytes, payload, slot.payload_bytes, target);
  if (!authentic) ERR_clear_error();
#endif
  *status = authentic ? kStatusOk : kStatusAuthFailed;
  return Outcome::Ok();
}

Outcome AeadContext::OpenRunInto(const BatchView& batch, std::size_t first, std::size_t end, std::uint8_t* target,
                                 std::size_t target_bytes, std::uint8_t* status, RunOutcome* run) {
  *run = RunOutcome();
  if (first > end || end > batch.count) return Outcome::Fail(ErrorKind::kRange, "the run must lie within the batch");
  if (RangesOverlap(batch.slab, batch.slab_bytes, target, target_bytes)) {
    return Outcome::Fail(ErrorKind::kRange, "the target must not overlap the slab");
  }
#if SEALCAST_CHACHA_PRIMITIVES
  if (primitives_ != nullptr && primitives_->lanes) return OpenRunLanes(batch, first, end, target, target_bytes, status, run);
#endif
  for (std::size_t index = first; index < end; index++) {
    // Read once: OpenSlotInto reads the layout again, and a shared layout could change between.
    const std::size_t payload_bytes = ReadSlot(batch.layout, index).payload_bytes;
    if (payload_bytes > target_bytes - run->bytes) return ChangedUnderfoot(index);
    const Outcome opened = OpenSlotInto(batch, index, target + run->bytes, target_bytes - run->bytes, status + index);
    if (!opened.ok()) return opened;
    if (status[index] != kStatusOk) {
      run->auth_failed = true;
      break;
    }
    run->slots++;
    run->bytes += payload_bytes;
  }
  return Outcome::Ok();
}

}  // namespace sealcast
