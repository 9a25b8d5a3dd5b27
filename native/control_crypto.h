// Batch primitives for the control plane's registrations: HMAC-SHA256 and SHA-256 over many
// (key, message) items, and ChaCha20-Poly1305 sealing of many slots each under its own key. The
// server calls each once per batch of registrations (HKDF for the per-client keys, Merkle leaves
// and levels, proof checks, key wraps), where node:crypto would build one JS object per item.
//
// Plain C++ over the OpenSSL that Node ships; no Node-API types. Items are given as a slab and a
// layout of (offset, length) word pairs; every item is checked to lie inside its slab before
// anything is computed, and outputs go to caller-owned arrays.

#ifndef SEALCAST_NATIVE_CONTROL_CRYPTO_H_
#define SEALCAST_NATIVE_CONTROL_CRYPTO_H_

#include <cstddef>
#include <cstdint>

#include "aead.h"

namespace sealcast {

constexpr std::size_t kDigestBytes = 32;
// The most items one call takes; bounds the work of one call.
constexpr std::size_t kControlBatchMax = 65536;

// `count` items; item i is slab[layout[2i], layout[2i] + layout[2i+1]).
struct ItemsView {
  const std::uint8_t* slab;
  std::size_t slab_bytes;
  const std::uint32_t* layout;
  std::size_t layout_words;
};

// target[32i, 32i + 32) = HMAC-SHA256(key item i, message item i), for i < count.
Outcome HmacSha256Batch(const ItemsView& keys, const ItemsView& messages, std::size_t count, std::uint8_t* target,
                        std::size_t target_bytes);

// target[32i, 32i + 32) = SHA-256(message item i), for i < count.
Outcome Sha256Batch(const ItemsView& messages, std::size_t count, std::uint8_t* target, std::size_t target_bytes);

// Seals every slot of `batch` in place with ChaCha20-Poly1305 under keys[32i, 32i + 32) (the
// AEAD batch layout of aead.h: [ AAD | payload | tag ]).
Outcome SealEachUnderOwnKey(const BatchView& batch, const std::uint8_t* keys, std::size_t key_bytes);

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_CONTROL_CRYPTO_H_
