#include "open_in_order.h"

#include <utility>

#include "packet_scan.h"

namespace sealcast {

namespace {

InOrderOutcome Refused(std::string message) {
  InOrderOutcome outcome;
  outcome.ok = false;
  outcome.message = std::move(message);
  return outcome;
}

}  // namespace

InOrderOutcome OpenInOrder(AeadContext& context, const InOrderOpen& run) {
  const BatchView& batch = run.batch;
  if (batch.slab == nullptr || batch.layout == nullptr || run.status == nullptr || run.target == nullptr) {
    return Refused("slab, layout, status and target are required");
  }
  if (run.first > batch.count || batch.count > run.status_count) return Refused("first must lie within the batch");
  if (run.target_start > run.target_end || run.target_end > run.target_bytes) {
    return Refused("targetStart and targetEnd must lie within target");
  }
  if (!(run.next_offset >= 0) || run.next_offset > 9007199254740991.0) {
    return Refused("nextOffset must be a safe non-negative integer");
  }
  // The target is written while the slab, layout, nonces and status are read.
  if (RangesOverlap(run.target, run.target_bytes, batch.slab, batch.slab_bytes) ||
      RangesOverlap(run.target, run.target_bytes, batch.layout, batch.layout_words * sizeof(std::uint32_t)) ||
      RangesOverlap(run.target, run.target_bytes, batch.nonces, batch.nonce_bytes) ||
      RangesOverlap(run.target, run.target_bytes, run.status, run.status_count)) {
    return Refused("target must not overlap the batch or its status");
  }
  InOrderOutcome outcome;
  double next = run.next_offset;
  std::size_t cursor = run.target_start;
  for (std::size_t slot = run.first; slot < batch.count; slot++) {
    const std::uint32_t* words = batch.layout + slot * kLayoutWords;
    const std::size_t offset = words[0];
    const std::size_t payload_bytes = words[2];
    // The scan laid out the slot; one whose AAD is not a header, or that does not fit the slab,
    // is a caller's bug, never read past.
    if (words[1] != kPacketHeaderBytes || offset > batch.slab_bytes ||
        batch.slab_bytes - offset < kPacketHeaderBytes + payload_bytes + kTagBytes) {
      return Refused("the layout does not describe a packet inside the slab");
    }
    const std::uint8_t* header = batch.slab + offset;
    if (!ContinuesStream(header, payload_bytes, run.data_type, next)) {
      outcome.stop = InOrderStop::kJudgement;
      break;
    }
    if (payload_bytes > run.target_end - cursor) {
      outcome.stop = InOrderStop::kTargetFull;
      outcome.need_bytes = payload_bytes;
      break;
    }
    std::uint8_t status = kStatusAuthFailed;
    const Outcome opened = context.OpenSlotInto(batch, slot, run.target + cursor, run.target_end - cursor, &status);
    if (!opened.ok()) return Refused(opened.message);
    run.status[slot] = status;
    if (status != kStatusOk) {
      outcome.stop = InOrderStop::kAuthFailed;
      break;
    }
    cursor += payload_bytes;
    next += static_cast<double>(payload_bytes);
    outcome.packets++;
  }
  outcome.bytes = cursor - run.target_start;
  return outcome;
}

}  // namespace sealcast
