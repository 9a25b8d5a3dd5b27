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
  // First the headers alone decide how far the run goes, then that run is opened in one call,
  // which lets an engine work on its packets together (see Engine::kLanes).
  InOrderOutcome outcome;
  double next = run.next_offset;
  std::size_t room = run.target_end - run.target_start;
  std::size_t end = run.first;
  for (; end < batch.count; end++) {
    const std::uint32_t* words = batch.layout + end * kLayoutWords;
    const std::size_t offset = words[0];
    const std::size_t payload_bytes = words[2];
    // The scan laid out the slot; one whose AAD is not a header, or that does not fit the slab,
    // is a caller's bug, never read past.
    if (words[1] != kPacketHeaderBytes || offset > batch.slab_bytes ||
        batch.slab_bytes - offset < kPacketHeaderBytes + payload_bytes + kTagBytes) {
      return Refused("the layout does not describe a packet inside the slab");
    }
    if (!ContinuesStream(batch.slab + offset, payload_bytes, run.data_type, next)) {
      outcome.stop = InOrderStop::kJudgement;
      break;
    }
    if (payload_bytes > room) {
      outcome.stop = InOrderStop::kTargetFull;
      outcome.need_bytes = payload_bytes;
      break;
    }
    room -= payload_bytes;
    next += static_cast<double>(payload_bytes);
  }
  RunOutcome opened;
  const Outcome result = context.OpenRunInto(batch, run.first, end, run.target + run.target_start,
                                             run.target_end - run.target_start, run.status, &opened);
  if (!result.ok()) return Refused(result.message);
  if (opened.auth_failed) {
    outcome.stop = InOrderStop::kAuthFailed;
    outcome.need_bytes = 0;
  }
  outcome.packets = opened.slots;
  outcome.bytes = opened.bytes;
  return outcome;
}

}  // namespace sealcast
