// A ChaCha20 block function (RFC 8439, 2.3) that computes 16 blocks at once, each with its own
// nonce and block counter. OpenSSL's fastest ChaCha20 also computes 16 blocks at a time, but all
// of one message: a 1400-byte datagram needs 23 blocks (block 0 for the Poly1305 key and 22 of
// payload), so OpenSSL computes 32 and throws 9 away. With lanes of their own, the blocks that
// do not fill a group of 16 (block 0 and a payload's last few) are packed across the packets of
// a batch, and only whole groups of one packet's payload go through OpenSSL.
//
// The kernel uses AVX-512F; ChaChaLanesSupported() says whether this CPU has it.

#ifndef SEALCAST_NATIVE_CHACHA_LANES_H_
#define SEALCAST_NATIVE_CHACHA_LANES_H_

#include <cstddef>
#include <cstdint>

namespace sealcast {

constexpr std::size_t kChaChaLanes = 16;
constexpr std::size_t kChaChaBlockBytes = 64;
// The 32-bit words of one group's input rows: a block counter and three nonce words per lane,
// stored word by word across the lanes (all counters, then all first nonce words, ...).
constexpr std::size_t kChaChaGroupRowWords = 4 * kChaChaLanes;
constexpr std::size_t kChaChaGroupBytes = kChaChaLanes * kChaChaBlockBytes;

// True when the CPU (and the operating system) can run ChaChaLanes.
bool ChaChaLanesSupported();

// Computes `groups` groups of 16 ChaCha20 blocks under the key `key_words` (eight little-endian
// words). Lane l of group g takes its counter from rows[g * 64 + l] and its nonce words from
// rows[g * 64 + 16 + l], rows[g * 64 + 32 + l] and rows[g * 64 + 48 + l]; its 64-byte block goes
// to target[(g * 16 + l) * 64]. Only call it when ChaChaLanesSupported().
void ChaChaLanes(const std::uint32_t key_words[8], const std::uint32_t* rows, std::size_t groups,
                 std::uint8_t* target);

// target[i] = source[i] ^ keystream[i] for i < bytes; target may be source. On x86-64 it uses
// AVX-512F too: only call it when ChaChaLanesSupported().
void XorKeystream(std::uint8_t* target, const std::uint8_t* source, const std::uint8_t* keystream,
                  std::size_t bytes);

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_CHACHA_LANES_H_
