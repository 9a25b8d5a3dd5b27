// Header scan for the receive path: one call checks the headers of a whole drain of datagrams
// and lays out the AEAD batch for them, so the receiver's JavaScript touches a few numbers per
// datagram instead of decoding each header itself.
//
// It reads headers only. Nothing it reports is trusted: the header is the AEAD's AAD, so every
// field is authenticated later by the open, and a scan result only decides which key and nonce
// to try or whether to drop a datagram early. The wire format is defined in
// src/packet/format.ts and docs/wire-format.md; the constants below must match it, which a
// parity test checks against the TypeScript decoder.

#ifndef SEALCAST_NATIVE_PACKET_SCAN_H_
#define SEALCAST_NATIVE_PACKET_SCAN_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace sealcast {

constexpr std::size_t kPacketHeaderBytes = 36;
constexpr std::uint16_t kPacketMagic = 0x5343;  // "SC"
constexpr std::uint8_t kPacketVersion = 1;
constexpr std::size_t kPacketSessionIdBytes = 8;
constexpr std::size_t kPacketDatagramBytesMax = 65507;

// Byte offsets inside the header (big-endian fields). Epoch and sequence lie back to back and
// are, in this order, exactly the 12-byte AEAD nonce.
constexpr std::size_t kHeaderFieldVersion = 2;
constexpr std::size_t kHeaderFieldType = 3;
constexpr std::size_t kHeaderFieldSuite = 4;
constexpr std::size_t kHeaderFieldFlags = 5;
constexpr std::size_t kHeaderFieldPayloadBytes = 6;
constexpr std::size_t kHeaderFieldSessionId = 8;
constexpr std::size_t kHeaderFieldEpoch = 16;
constexpr std::size_t kHeaderFieldSequence = 20;
constexpr std::size_t kHeaderFieldStreamOffset = 28;

// What the scan found for one datagram; the order matches DecodeFailure in format.ts plus the
// session check, and the values are exported to JavaScript.
enum ScanStatus : std::uint8_t {
  kScanOk = 0,
  kScanShort = 1,
  kScanMagic = 2,
  kScanVersion = 3,
  kScanType = 4,
  kScanSuite = 5,
  kScanFlags = 6,
  kScanLength = 7,
  kScanRange = 8,
  kScanOtherSession = 9,
  kScanTruncated = 10,
};

// Numbers reported per datagram, in this order, as doubles (u64 fields are reported only when
// they are safe integers, below 2^53; otherwise the status is kScanRange).
enum ScanField : std::size_t {
  kScanFieldStatus = 0,
  kScanFieldType = 1,
  kScanFieldSuite = 2,
  kScanFieldEpoch = 3,
  kScanFieldSequence = 4,
  kScanFieldStreamOffset = 5,
  kScanFieldPayloadBytes = 6,
  kScanFieldCount = 7,
};

struct ScanSlots {
  // Receive slots as the batched receive filled them: slot i starts at i * stride and holds
  // lengths[i] bytes; a length above stride means the kernel truncated the datagram.
  const std::uint8_t* slab;
  std::size_t slab_bytes;
  std::size_t stride;
  const std::uint32_t* lengths;
  std::size_t lengths_count;
  std::size_t first;
  std::size_t count;
  // The session the receiver settled on, or nullptr while it has none (any session passes).
  const std::uint8_t* session;
  // Bit t set: packet type t is known. Bit s set: wire suite id s is known. Passed in so the
  // wire's type and suite tables stay defined once, in format.ts.
  std::uint32_t known_types;
  std::uint32_t known_suites;
  std::size_t tag_bytes;
  // Nullable: per slot, the size of the datagrams a receive-side GRO message holds back to back
  // (0: the slot holds one datagram). Each such datagram gets an entry of its own.
  const std::uint32_t* segments;
  std::size_t segments_count;
  // Outputs, one entry per datagram, from entry `first` on (without segments, entry i is slot
  // i): kScanFieldCount doubles, 3 layout words (offset in the slab, AAD bytes, payload bytes:
  // the AEAD batch layout) and a 12-byte nonce. The status is written for every entry; the other
  // fields, the layout and the nonce only for kScanOk. Datagrams beyond the outputs' capacity
  // get no entry and are counted in `overflow`.
  double* fields;
  std::size_t fields_count;
  std::uint32_t* layout;
  std::size_t layout_words;
  std::uint8_t* nonces;
  std::size_t nonce_bytes;
};

struct ScanOutcome {
  bool ok = true;
  std::size_t accepted = 0;  // entries with kScanOk
  std::size_t entries = 0;   // entries written, from `first` on
  std::size_t overflow = 0;  // datagrams that found no entry
  std::string message;       // why the call was refused (ok == false)
};

ScanOutcome ScanPackets(const ScanSlots& slots);

// A big-endian u64 header field (e.g. the stream offset) as a double when it is a safe integer
// (below 2^53), or -1. Inline: the receive path reads one per packet.
inline double ReadSafeU64(const std::uint8_t* bytes) {
  std::uint64_t value = 0;
  for (std::size_t at = 0; at < 8; at++) value = (value << 8) | bytes[at];
  return value > 9007199254740991ull ? -1.0 : static_cast<double>(value);
}

// Whether the packet whose header is at `header` is a non-empty DATA packet (`data_type`, the
// wire value) that starts at stream offset `next`: what both in-order paths (GatherInOrder and
// OpenInOrder) take without asking the receiver.
inline bool ContinuesStream(const std::uint8_t* header, std::size_t payload_bytes, std::uint8_t data_type, double next) {
  return header[kHeaderFieldType] == data_type && payload_bytes > 0 && ReadSafeU64(header + kHeaderFieldStreamOffset) == next;
}

// The receive path's in-order gather: after a batch was opened, copies the payloads of the
// opened packets that continue the stream, one after another, into the output's chunk, so that
// the common case (the next packet is the next one in the stream) costs no JavaScript per packet.
// It stops at the first packet that needs the receiver's judgement: one that did not open, is not
// DATA, is empty, does not start at the next stream offset, or does not fit in the target. The
// headers it reads were authenticated by the open (they are the AAD) of every packet it copies.
struct GatherRun {
  const std::uint8_t* slab;
  std::size_t slab_bytes;
  // The opened batch: 3 layout words per packet (offset, AAD bytes, payload bytes) and the open's
  // status per packet.
  const std::uint32_t* layout;
  std::size_t layout_words;
  const std::uint8_t* status;
  std::size_t status_count;
  std::size_t first;
  std::size_t count;
  std::uint8_t status_ok;
  // The DATA type's wire value, passed in so that the type table stays defined in format.ts.
  std::uint8_t data_type;
  // The stream offset the next packet must start at (a safe integer).
  double next_offset;
  std::uint8_t* target;
  std::size_t target_bytes;
  std::size_t target_start;
  std::size_t target_end;
};

struct GatherOutcome {
  bool ok = true;
  std::size_t packets = 0;  // packets copied, from `first` on
  std::size_t bytes = 0;    // payload bytes copied to target[target_start..]
  std::string message;      // why the call was refused (ok == false)
};

GatherOutcome GatherInOrder(const GatherRun& run);

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_PACKET_SCAN_H_
