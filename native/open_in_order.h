// The receive path's in-order open: the packets of an opened-to-be batch that continue the
// stream are decrypted straight into the output's chunk, one after another, instead of in place
// and then copied there (GatherInOrder). In a steady stream that is every packet, so the
// receiver touches each payload byte once less, and its JavaScript not at all.
//
// Which packets qualify is read from their headers before they are opened; that is safe because
// the header is the AAD: a packet is written only once its tag verified, which authenticates the
// type and stream offset that sent it there, and a packet that fails ends the run without
// moving the output on (its bytes in the target are zeroed and lie beyond what the run
// reports, so they are overwritten before anything is written out).

#ifndef SEALCAST_NATIVE_OPEN_IN_ORDER_H_
#define SEALCAST_NATIVE_OPEN_IN_ORDER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "aead.h"

namespace sealcast {

struct InOrderOpen {
  // A batch that passed CheckBatch (with `status`), whose slots are [ header | payload | tag ]
  // as the receive scan laid them out.
  BatchView batch;
  std::uint8_t* status;
  std::size_t status_count;
  // The run starts at this slot.
  std::size_t first;
  // The DATA type's wire value, passed in so that the type table stays defined in format.ts.
  std::uint8_t data_type;
  // The stream offset the next packet must start at (a safe integer).
  double next_offset;
  // The output chunk: payloads go to target[target_start, target_end).
  std::uint8_t* target;
  std::size_t target_bytes;
  std::size_t target_start;
  std::size_t target_end;
};

// Why a run ended; exported to JavaScript as IN_ORDER_STOP.
enum class InOrderStop : std::uint8_t {
  // Every slot from `first` on went to the target.
  kBatchEnd = 0,
  // The next slot needs the receiver's judgement: it is not DATA, is empty, or does not start
  // at the next stream offset. It is untouched.
  kJudgement = 1,
  // The next slot continues the stream but does not fit in what is left of the target; it is
  // untouched, and `need_bytes` says how much room it needs.
  kTargetFull = 2,
  // The next slot continued the stream but did not authenticate: it was opened and has
  // kStatusAuthFailed, and nothing of it counts as written.
  kAuthFailed = 3,
};

struct InOrderOutcome {
  bool ok = true;
  // Packets opened into the target, from `first` on, and their payload bytes.
  std::size_t packets = 0;
  std::size_t bytes = 0;
  InOrderStop stop = InOrderStop::kBatchEnd;
  std::size_t need_bytes = 0;  // with kTargetFull: the payload bytes of the slot that did not fit
  std::string message;         // why the call was refused (ok == false)
};

// Opens slots from `first` on into the target while they continue the stream; see above.
InOrderOutcome OpenInOrder(AeadContext& context, const InOrderOpen& run);

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_OPEN_IN_ORDER_H_
