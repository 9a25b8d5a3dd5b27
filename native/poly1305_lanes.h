// The Poly1305 tags of ChaCha20-Poly1305 (RFC 8439, 2.8), computed for 8 packets at once, one
// packet per 64-bit lane of an AVX-512 register, with the 52-bit multiply-add instructions
// (AVX512-IFMA), and two such groups of 8 side by side. OpenSSL's Poly1305 is fastest on long
// messages: for each message it first computes powers of its key, which a 1400-byte packet does
// not amortize, and every call costs a fixed setup. Packets side by side need neither: each lane
// runs the plain Horner evaluation h = (h + block) * r on its own packet.
//
// PolyLanesSupported() says whether this CPU can run it.

#ifndef SEALCAST_NATIVE_POLY1305_LANES_H_
#define SEALCAST_NATIVE_POLY1305_LANES_H_

#include <cstddef>
#include <cstdint>

namespace sealcast {

constexpr std::size_t kPolyLanes = 8;

// One AEAD message: the tag covers AAD | zero pad | ciphertext | zero pad | the two lengths.
struct PolyMessage {
  const std::uint8_t* one_time_key;  // 32 bytes: r, then s
  const std::uint8_t* aad;
  std::size_t aad_bytes;
  const std::uint8_t* ciphertext;
  std::size_t ciphertext_bytes;
  std::uint8_t* tag;  // 16 bytes are written here
};

// True when the CPU (and the operating system) can run PolyTagLanes: AVX-512F and AVX512-IFMA.
bool PolyLanesSupported();

// Writes the tag of each of `count` messages. Only call it when PolyLanesSupported(). It keeps
// the key material it derives in registers and on its stack, and cleanses the stack copies.
void PolyTagLanes(const PolyMessage* messages, std::size_t count);

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_POLY1305_LANES_H_
