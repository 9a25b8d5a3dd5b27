#include "packet_scan.h"

#include <cstring>

namespace sealcast {

namespace {

constexpr std::size_t kNonceBytesScan = 12;
constexpr std::size_t kLayoutWordsScan = 3;

std::uint32_t ReadU32(const std::uint8_t* bytes) {
  return (static_cast<std::uint32_t>(bytes[0]) << 24) | (static_cast<std::uint32_t>(bytes[1]) << 16) |
         (static_cast<std::uint32_t>(bytes[2]) << 8) | static_cast<std::uint32_t>(bytes[3]);
}

ScanOutcome Refused(const char* message) {
  ScanOutcome outcome;
  outcome.ok = false;
  outcome.message = message;
  return outcome;
}

// Checks one datagram's header; on kScanOk fills the numbers the receiver needs.
ScanStatus ScanOne(const ScanSlots& slots, const std::uint8_t* datagram, std::uint32_t length, double* fields) {
  if (length > slots.stride) return kScanTruncated;
  if (length < kPacketHeaderBytes + slots.tag_bytes) return kScanShort;
  if (length > kPacketDatagramBytesMax) return kScanLength;
  if (((static_cast<std::uint16_t>(datagram[0]) << 8) | datagram[1]) != kPacketMagic) return kScanMagic;
  if (datagram[kHeaderFieldVersion] != kPacketVersion) return kScanVersion;
  const std::uint8_t type = datagram[kHeaderFieldType];
  if (type >= 32 || (slots.known_types & (1u << type)) == 0) return kScanType;
  const std::uint8_t suite = datagram[kHeaderFieldSuite];
  if (suite >= 32 || (slots.known_suites & (1u << suite)) == 0) return kScanSuite;
  if (datagram[kHeaderFieldFlags] != 0) return kScanFlags;
  const std::uint32_t payload_bytes = (static_cast<std::uint32_t>(datagram[kHeaderFieldPayloadBytes]) << 8) |
                                      datagram[kHeaderFieldPayloadBytes + 1];
  if (kPacketHeaderBytes + payload_bytes + slots.tag_bytes != length) return kScanLength;
  const double sequence = ReadSafeU64(datagram + kHeaderFieldSequence);
  const double stream_offset = ReadSafeU64(datagram + kHeaderFieldStreamOffset);
  if (sequence < 0 || stream_offset < 0) return kScanRange;
  if (slots.session != nullptr &&
      std::memcmp(datagram + kHeaderFieldSessionId, slots.session, kPacketSessionIdBytes) != 0) {
    return kScanOtherSession;
  }
  fields[kScanFieldType] = type;
  fields[kScanFieldSuite] = suite;
  fields[kScanFieldEpoch] = ReadU32(datagram + kHeaderFieldEpoch);
  fields[kScanFieldSequence] = sequence;
  fields[kScanFieldStreamOffset] = stream_offset;
  fields[kScanFieldPayloadBytes] = payload_bytes;
  return kScanOk;
}

}  // namespace

ScanOutcome ScanPackets(const ScanSlots& slots) {
  if (slots.slab == nullptr || slots.lengths == nullptr || slots.fields == nullptr || slots.layout == nullptr ||
      slots.nonces == nullptr) {
    return Refused("slab, lengths, fields, layout and nonces are required");
  }
  if (slots.stride == 0 || slots.stride > 65536) return Refused("stride must be between 1 and 65536");
  if (slots.tag_bytes == 0 || slots.tag_bytes > 64) return Refused("tagBytes must be between 1 and 64");
  const std::size_t end = slots.first + slots.count;
  if (end < slots.first) return Refused("first + count overflows");
  if (end > slots.slab_bytes / slots.stride) return Refused("first + count exceeds the slab's slots");
  if (end > slots.lengths_count) return Refused("first + count exceeds lengths");
  if (slots.segments != nullptr && end > slots.segments_count) return Refused("first + count exceeds segments");
  // Without segments every slot is one entry, so the outputs must hold them all; with segments
  // the entries beyond the outputs are counted as overflow instead.
  const std::size_t fields_capacity = slots.fields_count / kScanFieldCount;
  const std::size_t layout_capacity = slots.layout_words / kLayoutWordsScan;
  const std::size_t nonce_capacity = slots.nonce_bytes / kNonceBytesScan;
  const std::size_t bound = slots.segments == nullptr ? end : slots.first;
  if (bound > fields_capacity) return Refused("first + count exceeds fields");
  if (bound > layout_capacity) return Refused("first + count exceeds layout");
  if (bound > nonce_capacity) return Refused("first + count exceeds nonces");
  std::size_t capacity = fields_capacity < layout_capacity ? fields_capacity : layout_capacity;
  if (nonce_capacity < capacity) capacity = nonce_capacity;
  // Datagram offsets are written as u32 layout words.
  if (end > 0 && end * slots.stride - 1 > 0xffffffffu) return Refused("slot offsets exceed 32 bits");

  ScanOutcome outcome;
  std::size_t entry = slots.first;
  const auto scan_datagram = [&](std::size_t offset, std::uint32_t length) {
    if (entry >= capacity) {
      outcome.overflow++;
      return;
    }
    double* fields = slots.fields + entry * kScanFieldCount;
    const ScanStatus status = ScanOne(slots, slots.slab + offset, length, fields);
    fields[kScanFieldStatus] = status;
    if (status == kScanOk) {
      outcome.accepted++;
      std::uint32_t* words = slots.layout + entry * kLayoutWordsScan;
      words[0] = static_cast<std::uint32_t>(offset);
      words[1] = static_cast<std::uint32_t>(kPacketHeaderBytes);
      words[2] = static_cast<std::uint32_t>(fields[kScanFieldPayloadBytes]);
      std::memcpy(slots.nonces + entry * kNonceBytesScan, slots.slab + offset + kHeaderFieldEpoch, kNonceBytesScan);
    }
    entry++;
  };
  for (std::size_t slot = slots.first; slot < end; slot++) {
    const std::size_t offset = slot * slots.stride;
    const std::uint32_t length = slots.lengths[slot];
    const std::uint32_t segment_bytes = slots.segments == nullptr ? 0 : slots.segments[slot];
    // A truncated message, or one no longer than its segment size, is one datagram.
    if (segment_bytes == 0 || length > slots.stride || segment_bytes >= length) {
      scan_datagram(offset, length);
      continue;
    }
    for (std::uint32_t position = 0; position < length; position += segment_bytes) {
      const std::uint32_t remaining = length - position;
      scan_datagram(offset + position, remaining < segment_bytes ? remaining : segment_bytes);
    }
  }
  outcome.entries = entry - slots.first;
  return outcome;
}

GatherOutcome GatherInOrder(const GatherRun& run) {
  GatherOutcome refused;
  refused.ok = false;
  if (run.slab == nullptr || run.layout == nullptr || run.status == nullptr || run.target == nullptr) {
    refused.message = "slab, layout, status and target are required";
    return refused;
  }
  const std::size_t end = run.first + run.count;
  if (end < run.first || end > run.status_count || end > run.layout_words / kLayoutWordsScan) {
    refused.message = "first + count exceeds the batch";
    return refused;
  }
  if (run.target_start > run.target_end || run.target_end > run.target_bytes) {
    refused.message = "targetStart and targetEnd must lie within target";
    return refused;
  }
  if (!(run.next_offset >= 0) || run.next_offset > 9007199254740991.0) {
    refused.message = "nextOffset must be a safe non-negative integer";
    return refused;
  }
  GatherOutcome outcome;
  double next = run.next_offset;
  std::size_t cursor = run.target_start;
  for (std::size_t slot = run.first; slot < end; slot++) {
    if (run.status[slot] != run.status_ok) break;
    const std::uint32_t* words = run.layout + slot * kLayoutWordsScan;
    const std::size_t offset = words[0];
    const std::size_t payload_bytes = words[2];
    // The layout came from the scan and the open checked it; a layout that does not fit the
    // slab is a caller's bug, never read past.
    if (words[1] != kPacketHeaderBytes || offset > run.slab_bytes || run.slab_bytes - offset < kPacketHeaderBytes + payload_bytes) {
      refused.message = "the layout points outside the slab";
      return refused;
    }
    const std::uint8_t* header = run.slab + offset;
    if (!ContinuesStream(header, payload_bytes, run.data_type, next)) break;
    if (payload_bytes > run.target_end - cursor) break;
    std::memcpy(run.target + cursor, header + kPacketHeaderBytes, payload_bytes);
    cursor += payload_bytes;
    next += static_cast<double>(payload_bytes);
    outcome.packets++;
  }
  outcome.bytes = cursor - run.target_start;
  return outcome;
}

}  // namespace sealcast
