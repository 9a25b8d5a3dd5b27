// The thin Node-API layer over aead.h. It turns JS values into raw views, asserts every fact
// the TypeScript wrapper already validated (defence in depth: a bad call must throw, never
// corrupt memory), and makes exactly one call into the core per batch.
//
// The addon is context-aware (Napi::Addon): everything it exports is created per environment
// and there are no mutable globals, so the main thread and every worker thread can load it.

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "aead.h"
#include "control_binding.h"
#include "control_crypto.h"
#include "napi_args.h"
#include "open_in_order.h"
#include "packet_scan.h"
#include "udp.h"
#include "udp_watch.h"

#include <cstring>

namespace {

using sealcast::AeadContext;
using sealcast::BatchView;
using sealcast::ErrorKind;
using sealcast::Outcome;
using sealcast_napi::ArrayView;
using sealcast_napi::ReadInteger;
using sealcast_napi::ReadTypedArray;

// Reads a non-negative integer count no larger than 2^32 - 1.
bool ReadCount(Napi::Env env, Napi::Value value, std::size_t* out) {
  if (!value.IsNumber()) {
    Napi::TypeError::New(env, "count must be an integer").ThrowAsJavaScriptException();
    return false;
  }
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0 && number <= 4294967295.0) || number != static_cast<double>(static_cast<std::uint64_t>(number))) {
    Napi::RangeError::New(env, "count must be an integer between 0 and 4294967295").ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<std::size_t>(number);
  return true;
}

void ThrowOutcome(Napi::Env env, const Outcome& outcome) {
  switch (outcome.kind) {
    case ErrorKind::kType:
      Napi::TypeError::New(env, outcome.message).ThrowAsJavaScriptException();
      return;
    case ErrorKind::kRange:
      Napi::RangeError::New(env, outcome.message).ThrowAsJavaScriptException();
      return;
    case ErrorKind::kInternal:
    case ErrorKind::kNone: {
      Napi::Error error = Napi::Error::New(env, outcome.message);
      error.Set("code", Napi::String::New(env, "E_INTERNAL"));
      error.ThrowAsJavaScriptException();
      return;
    }
  }
}

// Reads (slab, layout, nonces, count) from the first four arguments and checks them, together
// with the status array when `status` is non-null.
bool ReadBatch(const Napi::CallbackInfo& info, BatchView* batch, ArrayView<std::uint8_t>* status) {
  Napi::Env env = info.Env();
  ArrayView<std::uint8_t> slab;
  ArrayView<std::uint32_t> layout;
  ArrayView<std::uint8_t> nonces;
  if (!ReadTypedArray(env, info[0], napi_uint8_array, "Uint8Array", "slab", &slab)) return false;
  if (!ReadTypedArray(env, info[1], napi_uint32_array, "Uint32Array", "layout", &layout)) return false;
  if (!ReadTypedArray(env, info[2], napi_uint8_array, "Uint8Array", "nonces", &nonces)) return false;
  std::size_t count = 0;
  if (!ReadCount(env, info[3], &count)) return false;
  if (status != nullptr && !ReadTypedArray(env, info[4], napi_uint8_array, "Uint8Array", "status", status)) {
    return false;
  }
  *batch = BatchView{slab.data, slab.length, layout.data, layout.length, nonces.data, nonces.length, count};
  const Outcome checked = status != nullptr ? sealcast::CheckBatch(*batch, status->data, status->length, true)
                                            : sealcast::CheckBatch(*batch, nullptr, 0, false);
  if (!checked.ok()) {
    ThrowOutcome(env, checked);
    return false;
  }
  return true;
}

// One key schedule, exposed to JS as `new AeadKey(suite, key, engine?)`, where engine is
// "auto" (the default: the fastest engine that passes its self-check), "primitives" (OpenSSL's
// primitives without the lanes kernel) or "evp" (force EVP).
class AeadKeyWrap : public Napi::ObjectWrap<AeadKeyWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AeadKey",
                       {
                           InstanceMethod<&AeadKeyWrap::SealBatch>("sealBatch"),
                           InstanceMethod<&AeadKeyWrap::OpenBatch>("openBatch"),
                           InstanceMethod<&AeadKeyWrap::OpenInOrder>("openInOrder"),
                           InstanceMethod<&AeadKeyWrap::Destroy>("destroy"),
                           InstanceAccessor<&AeadKeyWrap::Destroyed>("destroyed"),
                           InstanceAccessor<&AeadKeyWrap::Suite>("suite"),
                           InstanceAccessor<&AeadKeyWrap::EngineName>("engine"),
                       });
  }

  explicit AeadKeyWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AeadKeyWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) {
      Napi::TypeError::New(env, "suite must be a string").ThrowAsJavaScriptException();
      return;
    }
    const std::string suite_name = info[0].As<Napi::String>().Utf8Value();
    const sealcast::SuiteInfo* suite = sealcast::FindSuite(suite_name);
    if (suite == nullptr) {
      Napi::TypeError::New(env, "unknown suite \"" + suite_name + "\"").ThrowAsJavaScriptException();
      return;
    }
    ArrayView<std::uint8_t> key;
    if (!ReadTypedArray(env, info[1], napi_uint8_array, "Uint8Array", "key", &key)) return;
    sealcast::EngineChoice choice = sealcast::EngineChoice::kFastest;
    if (!info[2].IsUndefined()) {
      const std::string engine = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : std::string();
      if (engine == "primitives") {
        choice = sealcast::EngineChoice::kPrimitives;
      } else if (engine == "evp") {
        choice = sealcast::EngineChoice::kEvp;
      } else if (engine != "auto") {
        Napi::TypeError::New(env, "engine must be \"auto\", \"primitives\" or \"evp\"").ThrowAsJavaScriptException();
        return;
      }
    }
    Outcome error;
    context_ = AeadContext::Create(*suite, key.data, key.length, choice, &error);
    if (context_ == nullptr) ThrowOutcome(env, error);
  }

  // The finalizer: when destroy() was never called, the unique_ptr frees the OpenSSL contexts
  // (which cleanses the key schedule) as the object is collected.
  ~AeadKeyWrap() override = default;

 private:
  bool RequireLive(Napi::Env env) {
    if (context_ != nullptr) return true;
    Napi::Error error = Napi::Error::New(env, "this AEAD key was destroyed");
    error.Set("code", Napi::String::New(env, "E_CLOSED"));
    error.ThrowAsJavaScriptException();
    return false;
  }

  // sealBatch(slab, layout, nonces, count): undefined
  Napi::Value SealBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!RequireLive(env)) return env.Undefined();
    BatchView batch;
    if (!ReadBatch(info, &batch, nullptr)) return env.Undefined();
    const Outcome sealed = context_->SealBatch(batch);
    if (!sealed.ok()) ThrowOutcome(env, sealed);
    return env.Undefined();
  }

  // openBatch(slab, layout, nonces, count, status): number of slots that authenticated
  Napi::Value OpenBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!RequireLive(env)) return env.Undefined();
    BatchView batch;
    ArrayView<std::uint8_t> status;
    if (!ReadBatch(info, &batch, &status)) return env.Undefined();
    std::size_t authenticated = 0;
    const Outcome opened = context_->OpenBatch(batch, status.data, &authenticated);
    if (!opened.ok()) {
      ThrowOutcome(env, opened);
      return env.Undefined();
    }
    return Napi::Number::New(env, static_cast<double>(authenticated));
  }

  // openInOrder(slab, layout, nonces, count, status, first, dataType, nextOffset, target,
  // targetStart, targetEnd, resultOut): opens the packets from `first` on that continue the
  // stream at nextOffset straight into target[targetStart, targetEnd) (see open_in_order.h);
  // returns how many it opened there and writes [packets, bytes, stop, needBytes] to resultOut
  // (stop: an IN_ORDER_STOP value).
  Napi::Value OpenInOrder(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!RequireLive(env)) return env.Undefined();
    sealcast::InOrderOpen run;
    ArrayView<std::uint8_t> status, target;
    ArrayView<double> result_out;
    double first = 0, data_type = 0, next_offset = 0, target_start = 0, target_end = 0;
    if (!ReadBatch(info, &run.batch, &status)) return env.Undefined();
    if (!ReadInteger(env, info[5], "first", 0, 4294967295.0, &first)) return env.Undefined();
    if (!ReadInteger(env, info[6], "dataType", 0, 255.0, &data_type)) return env.Undefined();
    if (!ReadInteger(env, info[7], "nextOffset", 0, 9007199254740991.0, &next_offset)) return env.Undefined();
    if (!ReadTypedArray(env, info[8], napi_uint8_array, "Uint8Array", "target", &target)) return env.Undefined();
    if (!ReadInteger(env, info[9], "targetStart", 0, 4294967295.0, &target_start)) return env.Undefined();
    if (!ReadInteger(env, info[10], "targetEnd", 0, 4294967295.0, &target_end)) return env.Undefined();
    if (!ReadTypedArray(env, info[11], napi_float64_array, "Float64Array", "resultOut", &result_out)) {
      return env.Undefined();
    }
    if (result_out.length < 4) {
      Napi::RangeError::New(env, "resultOut must hold at least 4 numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    run.status = status.data;
    run.status_count = status.length;
    run.first = static_cast<std::size_t>(first);
    run.data_type = static_cast<std::uint8_t>(data_type);
    run.next_offset = next_offset;
    run.target = target.data;
    run.target_bytes = target.length;
    run.target_start = static_cast<std::size_t>(target_start);
    run.target_end = static_cast<std::size_t>(target_end);
    const sealcast::InOrderOutcome outcome = sealcast::OpenInOrder(*context_, run);
    if (!outcome.ok) {
      Napi::RangeError::New(env, outcome.message).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    result_out.data[0] = static_cast<double>(outcome.packets);
    result_out.data[1] = static_cast<double>(outcome.bytes);
    result_out.data[2] = static_cast<double>(outcome.stop);
    result_out.data[3] = static_cast<double>(outcome.need_bytes);
    return Napi::Number::New(env, static_cast<double>(outcome.packets));
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    context_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Destroyed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), context_ == nullptr); }

  Napi::Value Suite(const Napi::CallbackInfo& info) {
    if (context_ == nullptr) return info.Env().Null();
    return Napi::String::New(info.Env(), context_->suite().name);
  }

  Napi::Value EngineName(const Napi::CallbackInfo& info) {
    if (context_ == nullptr) return info.Env().Null();
    switch (context_->engine()) {
      case sealcast::Engine::kLanes:
        return Napi::String::New(info.Env(), "lanes");
      case sealcast::Engine::kPrimitives:
        return Napi::String::New(info.Env(), "primitives");
      case sealcast::Engine::kEvp:
        break;
    }
    return Napi::String::New(info.Env(), "evp");
  }

  std::unique_ptr<AeadContext> context_;
};

// Turns a UDP outcome into a JS exception: argument errors are TypeError/RangeError-like,
// system errors carry code "E_IO", the errno name's number and its text.
void ThrowUdpOutcome(Napi::Env env, const sealcast::UdpOutcome& outcome) {
  switch (outcome.status) {
    case sealcast::UdpStatus::kBadArgument:
      Napi::RangeError::New(env, outcome.message).ThrowAsJavaScriptException();
      return;
    case sealcast::UdpStatus::kNotUdp:
      Napi::TypeError::New(env, outcome.message).ThrowAsJavaScriptException();
      return;
    case sealcast::UdpStatus::kSystem: {
      Napi::Error error = Napi::Error::New(env, std::strerror(outcome.error_number));
      error.Set("code", Napi::String::New(env, "E_IO"));
      error.Set("errno", Napi::Number::New(env, outcome.error_number));
      error.ThrowAsJavaScriptException();
      return;
    }
    case sealcast::UdpStatus::kUnsupported:
    case sealcast::UdpStatus::kOk: {
      Napi::Error error = Napi::Error::New(env, outcome.message.empty() ? "batched UDP I/O is unavailable" : outcome.message);
      error.Set("code", Napi::String::New(env, "E_IO"));
      error.ThrowAsJavaScriptException();
      return;
    }
  }
}

// udpCheckSocket(fd): undefined; throws unless fd is an open datagram socket.
Napi::Value UdpCheckSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd = 0;
  if (!ReadInteger(env, info[0], "fd", 0, 2147483647.0, &fd)) return env.Undefined();
  const sealcast::UdpOutcome outcome = sealcast::UdpCheckSocket(static_cast<int>(fd));
  if (outcome.status != sealcast::UdpStatus::kOk) ThrowUdpOutcome(env, outcome);
  return env.Undefined();
}

// udpSend(fd, slab, layout, first, count, groupAddress, port, segment?): datagrams sent (0 when
// the socket buffer is full). groupAddress is the IPv4 address as an unsigned 32-bit number;
// segment (default false) sends runs of back-to-back equal datagrams as UDP GSO sends.
Napi::Value UdpSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd = 0, first = 0, count = 0, group = 0, port = 0;
  ArrayView<std::uint8_t> slab;
  ArrayView<std::uint32_t> layout;
  if (!ReadInteger(env, info[0], "fd", 0, 2147483647.0, &fd)) return env.Undefined();
  if (!ReadTypedArray(env, info[1], napi_uint8_array, "Uint8Array", "slab", &slab)) return env.Undefined();
  if (!ReadTypedArray(env, info[2], napi_uint32_array, "Uint32Array", "layout", &layout)) return env.Undefined();
  if (!ReadInteger(env, info[3], "first", 0, 4294967295.0, &first)) return env.Undefined();
  if (!ReadInteger(env, info[4], "count", 0, static_cast<double>(sealcast::kUdpBatchMax), &count)) return env.Undefined();
  if (!ReadInteger(env, info[5], "groupAddress", 0, 4294967295.0, &group)) return env.Undefined();
  if (!ReadInteger(env, info[6], "port", 1, 65535, &port)) return env.Undefined();
  if (!info[7].IsUndefined() && !info[7].IsBoolean()) {
    Napi::TypeError::New(env, "segment must be a boolean").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const bool segment = info[7].IsBoolean() && info[7].As<Napi::Boolean>().Value();
  const sealcast::UdpSendBatch batch{slab.data,
                                     slab.length,
                                     layout.data,
                                     layout.length,
                                     static_cast<std::size_t>(first),
                                     static_cast<std::size_t>(count),
                                     sealcast::kTagBytes,
                                     static_cast<std::uint32_t>(group),
                                     static_cast<std::uint16_t>(port),
                                     segment};
  const sealcast::UdpOutcome outcome = sealcast::UdpSendSlots(static_cast<int>(fd), batch);
  if (outcome.status != sealcast::UdpStatus::kOk) {
    ThrowUdpOutcome(env, outcome);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(outcome.count));
}

// udpEnableGro(fd): true when the socket now takes GRO messages whole, false when the kernel
// lacks receive-side GRO.
Napi::Value UdpEnableGro(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd = 0;
  if (!ReadInteger(env, info[0], "fd", 0, 2147483647.0, &fd)) return env.Undefined();
  const sealcast::UdpOutcome outcome = sealcast::UdpEnableGro(static_cast<int>(fd));
  if (outcome.status != sealcast::UdpStatus::kOk) {
    ThrowUdpOutcome(env, outcome);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, outcome.count == 1);
}

// udpReceive(fd, slab, stride, lengths, first, count, segments?): messages received (0 when none
// queued); with `segments` (a Uint32Array), each message's GRO segment size (0: one datagram).
Napi::Value UdpReceive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd = 0, stride = 0, first = 0, count = 0;
  ArrayView<std::uint8_t> slab;
  ArrayView<std::uint32_t> lengths;
  if (!ReadInteger(env, info[0], "fd", 0, 2147483647.0, &fd)) return env.Undefined();
  if (!ReadTypedArray(env, info[1], napi_uint8_array, "Uint8Array", "slab", &slab)) return env.Undefined();
  if (!ReadInteger(env, info[2], "stride", 1, static_cast<double>(sealcast::kUdpSlotBytesMax), &stride)) return env.Undefined();
  if (!ReadTypedArray(env, info[3], napi_uint32_array, "Uint32Array", "lengths", &lengths)) return env.Undefined();
  if (!ReadInteger(env, info[4], "first", 0, 4294967295.0, &first)) return env.Undefined();
  if (!ReadInteger(env, info[5], "count", 0, static_cast<double>(sealcast::kUdpBatchMax), &count)) return env.Undefined();
  ArrayView<std::uint32_t> segments;
  const bool has_segments = info.Length() > 6 && !info[6].IsNull() && !info[6].IsUndefined();
  if (has_segments && !ReadTypedArray(env, info[6], napi_uint32_array, "Uint32Array", "segments", &segments)) return env.Undefined();
  const sealcast::UdpReceiveSlots slots{slab.data,
                                        slab.length,
                                        static_cast<std::size_t>(stride),
                                        lengths.data,
                                        lengths.length,
                                        static_cast<std::size_t>(first),
                                        static_cast<std::size_t>(count),
                                        has_segments ? segments.data : nullptr,
                                        has_segments ? segments.length : 0};
  const sealcast::UdpOutcome outcome = sealcast::UdpReceiveInto(static_cast<int>(fd), slots);
  if (outcome.status != sealcast::UdpStatus::kOk) {
    ThrowUdpOutcome(env, outcome);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(outcome.count));
}

// scanPackets(slab, stride, lengths, first, count, session, knownTypes, knownSuites, fields,
// layout, nonces, segments?, countsOut?): checks the headers of the datagrams in receive slots
// [first, first + count) and returns how many passed; see packet_scan.h. `session` is an 8-byte
// Uint8Array or null; `segments` (Uint32Array or null) gives each slot's GRO segment size;
// `countsOut` (Float64Array of 3) receives the datagrams passed, the entries written and the
// datagrams that found no entry.
Napi::Value ScanPackets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double stride = 0, first = 0, count = 0, known_types = 0, known_suites = 0;
  ArrayView<std::uint8_t> slab, session, nonces;
  ArrayView<std::uint32_t> lengths, layout;
  ArrayView<double> fields;
  if (!ReadTypedArray(env, info[0], napi_uint8_array, "Uint8Array", "slab", &slab)) return env.Undefined();
  if (!ReadInteger(env, info[1], "stride", 1, 65536.0, &stride)) return env.Undefined();
  if (!ReadTypedArray(env, info[2], napi_uint32_array, "Uint32Array", "lengths", &lengths)) return env.Undefined();
  if (!ReadInteger(env, info[3], "first", 0, 4294967295.0, &first)) return env.Undefined();
  if (!ReadInteger(env, info[4], "count", 0, 4294967295.0, &count)) return env.Undefined();
  const bool any_session = info[5].IsNull() || info[5].IsUndefined();
  if (!any_session) {
    if (!ReadTypedArray(env, info[5], napi_uint8_array, "Uint8Array", "session", &session)) return env.Undefined();
    if (session.length != sealcast::kPacketSessionIdBytes) {
      Napi::RangeError::New(env, "session must be 8 bytes").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  if (!ReadInteger(env, info[6], "knownTypes", 0, 4294967295.0, &known_types)) return env.Undefined();
  if (!ReadInteger(env, info[7], "knownSuites", 0, 4294967295.0, &known_suites)) return env.Undefined();
  if (!ReadTypedArray(env, info[8], napi_float64_array, "Float64Array", "fields", &fields)) return env.Undefined();
  if (!ReadTypedArray(env, info[9], napi_uint32_array, "Uint32Array", "layout", &layout)) return env.Undefined();
  if (!ReadTypedArray(env, info[10], napi_uint8_array, "Uint8Array", "nonces", &nonces)) return env.Undefined();
  ArrayView<std::uint32_t> segments;
  ArrayView<double> counts_out;
  const bool has_segments = info.Length() > 11 && !info[11].IsNull() && !info[11].IsUndefined();
  if (has_segments && !ReadTypedArray(env, info[11], napi_uint32_array, "Uint32Array", "segments", &segments)) return env.Undefined();
  const bool has_counts = info.Length() > 12 && !info[12].IsNull() && !info[12].IsUndefined();
  if (has_counts) {
    if (!ReadTypedArray(env, info[12], napi_float64_array, "Float64Array", "countsOut", &counts_out)) return env.Undefined();
    if (counts_out.length < 3) {
      Napi::RangeError::New(env, "countsOut must hold 3 numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  const sealcast::ScanSlots slots{slab.data,
                                  slab.length,
                                  static_cast<std::size_t>(stride),
                                  lengths.data,
                                  lengths.length,
                                  static_cast<std::size_t>(first),
                                  static_cast<std::size_t>(count),
                                  any_session ? nullptr : session.data,
                                  static_cast<std::uint32_t>(known_types),
                                  static_cast<std::uint32_t>(known_suites),
                                  sealcast::kTagBytes,
                                  has_segments ? segments.data : nullptr,
                                  has_segments ? segments.length : 0,
                                  fields.data,
                                  fields.length,
                                  layout.data,
                                  layout.length,
                                  nonces.data,
                                  nonces.length};
  const sealcast::ScanOutcome outcome = sealcast::ScanPackets(slots);
  if (!outcome.ok) {
    Napi::RangeError::New(env, outcome.message).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (has_counts) {
    counts_out.data[0] = static_cast<double>(outcome.accepted);
    counts_out.data[1] = static_cast<double>(outcome.entries);
    counts_out.data[2] = static_cast<double>(outcome.overflow);
  }
  return Napi::Number::New(env, static_cast<double>(outcome.accepted));
}

// gatherInOrder(slab, layout, status, first, count, statusOk, dataType, nextOffset, target,
// targetStart, targetEnd, bytesOut): copies the opened packets from `first` on that continue the
// stream at nextOffset into target[targetStart, targetEnd); returns how many it copied and
// writes the bytes copied to bytesOut[0]. See packet_scan.h.
Napi::Value GatherInOrder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double first = 0, count = 0, status_ok = 0, data_type = 0, next_offset = 0, target_start = 0, target_end = 0;
  ArrayView<std::uint8_t> slab, status, target;
  ArrayView<std::uint32_t> layout;
  ArrayView<double> bytes_out;
  if (!ReadTypedArray(env, info[0], napi_uint8_array, "Uint8Array", "slab", &slab)) return env.Undefined();
  if (!ReadTypedArray(env, info[1], napi_uint32_array, "Uint32Array", "layout", &layout)) return env.Undefined();
  if (!ReadTypedArray(env, info[2], napi_uint8_array, "Uint8Array", "status", &status)) return env.Undefined();
  if (!ReadInteger(env, info[3], "first", 0, 4294967295.0, &first)) return env.Undefined();
  if (!ReadInteger(env, info[4], "count", 0, 4294967295.0, &count)) return env.Undefined();
  if (!ReadInteger(env, info[5], "statusOk", 0, 255.0, &status_ok)) return env.Undefined();
  if (!ReadInteger(env, info[6], "dataType", 0, 255.0, &data_type)) return env.Undefined();
  if (!ReadInteger(env, info[7], "nextOffset", 0, 9007199254740991.0, &next_offset)) return env.Undefined();
  if (!ReadTypedArray(env, info[8], napi_uint8_array, "Uint8Array", "target", &target)) return env.Undefined();
  if (!ReadInteger(env, info[9], "targetStart", 0, 4294967295.0, &target_start)) return env.Undefined();
  if (!ReadInteger(env, info[10], "targetEnd", 0, 4294967295.0, &target_end)) return env.Undefined();
  if (!ReadTypedArray(env, info[11], napi_float64_array, "Float64Array", "bytesOut", &bytes_out)) return env.Undefined();
  if (bytes_out.length < 1) {
    Napi::RangeError::New(env, "bytesOut must hold at least 1 number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const sealcast::GatherRun run{slab.data,
                                slab.length,
                                layout.data,
                                layout.length,
                                status.data,
                                status.length,
                                static_cast<std::size_t>(first),
                                static_cast<std::size_t>(count),
                                static_cast<std::uint8_t>(status_ok),
                                static_cast<std::uint8_t>(data_type),
                                next_offset,
                                target.data,
                                target.length,
                                static_cast<std::size_t>(target_start),
                                static_cast<std::size_t>(target_end)};
  const sealcast::GatherOutcome outcome = sealcast::GatherInOrder(run);
  if (!outcome.ok) {
    Napi::RangeError::New(env, outcome.message).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bytes_out.data[0] = static_cast<double>(outcome.bytes);
  return Napi::Number::New(env, static_cast<double>(outcome.packets));
}

// hmacSha256Batch(keySlab, keyLayout, messageSlab, messageLayout, count, target): target gets
// HMAC-SHA256(key i, message i) at 32 * i; items are (offset, length) word pairs.
Napi::Value HmacSha256Batch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArrayView<std::uint8_t> key_slab, message_slab, target;
  ArrayView<std::uint32_t> key_layout, message_layout;
  std::size_t count = 0;
  if (!ReadTypedArray(env, info[0], napi_uint8_array, "Uint8Array", "keySlab", &key_slab)) return env.Undefined();
  if (!ReadTypedArray(env, info[1], napi_uint32_array, "Uint32Array", "keyLayout", &key_layout)) return env.Undefined();
  if (!ReadTypedArray(env, info[2], napi_uint8_array, "Uint8Array", "messageSlab", &message_slab)) return env.Undefined();
  if (!ReadTypedArray(env, info[3], napi_uint32_array, "Uint32Array", "messageLayout", &message_layout)) return env.Undefined();
  if (!ReadCount(env, info[4], &count)) return env.Undefined();
  if (!ReadTypedArray(env, info[5], napi_uint8_array, "Uint8Array", "target", &target)) return env.Undefined();
  const Outcome outcome = sealcast::HmacSha256Batch({key_slab.data, key_slab.length, key_layout.data, key_layout.length},
                                                    {message_slab.data, message_slab.length, message_layout.data, message_layout.length},
                                                    count, target.data, target.length);
  if (!outcome.ok()) ThrowOutcome(env, outcome);
  return env.Undefined();
}

// sha256Batch(messageSlab, messageLayout, count, target): target gets SHA-256(message i) at 32 * i.
Napi::Value Sha256Batch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArrayView<std::uint8_t> message_slab, target;
  ArrayView<std::uint32_t> message_layout;
  std::size_t count = 0;
  if (!ReadTypedArray(env, info[0], napi_uint8_array, "Uint8Array", "messageSlab", &message_slab)) return env.Undefined();
  if (!ReadTypedArray(env, info[1], napi_uint32_array, "Uint32Array", "messageLayout", &message_layout)) return env.Undefined();
  if (!ReadCount(env, info[2], &count)) return env.Undefined();
  if (!ReadTypedArray(env, info[3], napi_uint8_array, "Uint8Array", "target", &target)) return env.Undefined();
  const Outcome outcome = sealcast::Sha256Batch({message_slab.data, message_slab.length, message_layout.data, message_layout.length},
                                                count, target.data, target.length);
  if (!outcome.ok()) ThrowOutcome(env, outcome);
  return env.Undefined();
}

// sealEachUnderOwnKey(slab, layout, nonces, count, keys): seals slot i in place with
// ChaCha20-Poly1305 under keys[32 * i, 32 * i + 32).
Napi::Value SealEachUnderOwnKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchView batch;
  if (!ReadBatch(info, &batch, nullptr)) return env.Undefined();
  ArrayView<std::uint8_t> keys;
  if (!ReadTypedArray(env, info[4], napi_uint8_array, "Uint8Array", "keys", &keys)) return env.Undefined();
  const Outcome outcome = sealcast::SealEachUnderOwnKey(batch, keys.data, keys.length);
  if (!outcome.ok()) ThrowOutcome(env, outcome);
  return env.Undefined();
}

// The scan's status codes by name, for the TypeScript side.
Napi::Object ScanStatuses(Napi::Env env) {
  Napi::Object statuses = Napi::Object::New(env);
  statuses.Set("ok", Napi::Number::New(env, sealcast::kScanOk));
  statuses.Set("short", Napi::Number::New(env, sealcast::kScanShort));
  statuses.Set("magic", Napi::Number::New(env, sealcast::kScanMagic));
  statuses.Set("version", Napi::Number::New(env, sealcast::kScanVersion));
  statuses.Set("type", Napi::Number::New(env, sealcast::kScanType));
  statuses.Set("suite", Napi::Number::New(env, sealcast::kScanSuite));
  statuses.Set("flags", Napi::Number::New(env, sealcast::kScanFlags));
  statuses.Set("length", Napi::Number::New(env, sealcast::kScanLength));
  statuses.Set("range", Napi::Number::New(env, sealcast::kScanRange));
  statuses.Set("otherSession", Napi::Number::New(env, sealcast::kScanOtherSession));
  statuses.Set("truncated", Napi::Number::New(env, sealcast::kScanTruncated));
  return statuses;
}

Napi::Object InOrderStops(Napi::Env env) {
  using sealcast::InOrderStop;
  Napi::Object stops = Napi::Object::New(env);
  stops.Set("batchEnd", Napi::Number::New(env, static_cast<double>(InOrderStop::kBatchEnd)));
  stops.Set("judgement", Napi::Number::New(env, static_cast<double>(InOrderStop::kJudgement)));
  stops.Set("targetFull", Napi::Number::New(env, static_cast<double>(InOrderStop::kTargetFull)));
  stops.Set("authFailed", Napi::Number::New(env, static_cast<double>(InOrderStop::kAuthFailed)));
  return stops;
}

class SealcastAddon : public Napi::Addon<SealcastAddon> {
 public:
  SealcastAddon(Napi::Env env, Napi::Object exports) {
    Napi::Array suites = Napi::Array::New(env, sealcast::kSuiteCount);
    for (std::size_t index = 0; index < sealcast::kSuiteCount; index++) {
      suites.Set(static_cast<std::uint32_t>(index), Napi::String::New(env, sealcast::kSuites[index].name));
    }
    Napi::Object suite_key_bytes = Napi::Object::New(env);
    for (const sealcast::SuiteInfo& suite : sealcast::kSuites) {
      suite_key_bytes.Set(suite.name, Napi::Number::New(env, static_cast<double>(suite.key_bytes)));
    }
    DefineAddon(exports, {
                             InstanceValue("KEY_BYTES", Number(env, sealcast::kKeyBytes), napi_enumerable),
                             InstanceValue("NONCE_BYTES", Number(env, sealcast::kNonceBytes), napi_enumerable),
                             InstanceValue("TAG_BYTES", Number(env, sealcast::kTagBytes), napi_enumerable),
                             InstanceValue("LAYOUT_WORDS", Number(env, sealcast::kLayoutWords), napi_enumerable),
                             InstanceValue("PAYLOAD_BYTES_MAX", Number(env, sealcast::kPayloadBytesMax),
                                           napi_enumerable),
                             InstanceValue("AAD_BYTES_MAX", Number(env, sealcast::kAadBytesMax), napi_enumerable),
                             InstanceValue("STATUS_OK", Number(env, sealcast::kStatusOk), napi_enumerable),
                             InstanceValue("STATUS_AUTH_FAILED", Number(env, sealcast::kStatusAuthFailed),
                                           napi_enumerable),
                             InstanceValue("SUITES", suites, napi_enumerable),
                             InstanceValue("SUITE_KEY_BYTES", suite_key_bytes, napi_enumerable),
                             InstanceValue("CHACHA_PRIMITIVES_AVAILABLE",
                                           Napi::Boolean::New(env, sealcast::ChaChaPrimitivesAvailable()),
                                           napi_enumerable),
                             InstanceValue("CHACHA_LANES_AVAILABLE",
                                           Napi::Boolean::New(env, sealcast::ChaChaLanesAvailable()),
                                           napi_enumerable),
                             InstanceValue("OPENSSL_VERSION", Napi::String::New(env, sealcast::OpenSslVersion()),
                                           napi_enumerable),
                             InstanceValue("AeadKey", AeadKeyWrap::Define(env), napi_enumerable),
                             InstanceValue("UDP_BATCH_SUPPORTED", Napi::Boolean::New(env, sealcast::UdpBatchSupported()),
                                           napi_enumerable),
                             InstanceValue("UDP_BATCH_MAX", Number(env, sealcast::kUdpBatchMax), napi_enumerable),
                             InstanceValue("udpCheckSocket", Napi::Function::New<UdpCheckSocket>(env, "udpCheckSocket"),
                                           napi_enumerable),
                             InstanceValue("udpSend", Napi::Function::New<UdpSend>(env, "udpSend"), napi_enumerable),
                             InstanceValue("udpReceive", Napi::Function::New<UdpReceive>(env, "udpReceive"),
                                           napi_enumerable),
                             InstanceValue("udpEnableGro", Napi::Function::New<UdpEnableGro>(env, "udpEnableGro"),
                                           napi_enumerable),
                             InstanceValue("UdpReadWatch", sealcast_napi::DefineUdpReadWatch(env), napi_enumerable),
                             InstanceValue("PACKET_HEADER_BYTES", Number(env, sealcast::kPacketHeaderBytes), napi_enumerable),
                             InstanceValue("PACKET_MAGIC", Number(env, sealcast::kPacketMagic), napi_enumerable),
                             InstanceValue("PACKET_VERSION", Number(env, sealcast::kPacketVersion), napi_enumerable),
                             InstanceValue("SCAN_FIELDS", Number(env, sealcast::kScanFieldCount), napi_enumerable),
                             InstanceValue("SCAN_STATUS", ScanStatuses(env), napi_enumerable),
                             InstanceValue("scanPackets", Napi::Function::New<ScanPackets>(env, "scanPackets"),
                                           napi_enumerable),
                             InstanceValue("gatherInOrder", Napi::Function::New<GatherInOrder>(env, "gatherInOrder"),
                                           napi_enumerable),
                             InstanceValue("IN_ORDER_STOP", InOrderStops(env), napi_enumerable),
                             InstanceValue("ControlListener", sealcast_napi::DefineControlListener(env), napi_enumerable),
                             InstanceValue("hmacSha256Batch", Napi::Function::New<HmacSha256Batch>(env, "hmacSha256Batch"),
                                           napi_enumerable),
                             InstanceValue("sha256Batch", Napi::Function::New<Sha256Batch>(env, "sha256Batch"), napi_enumerable),
                             InstanceValue("sealEachUnderOwnKey",
                                           Napi::Function::New<SealEachUnderOwnKey>(env, "sealEachUnderOwnKey"), napi_enumerable),
                             InstanceValue("CONTROL_BATCH_MAX", Number(env, sealcast::kControlBatchMax), napi_enumerable),
                             InstanceValue("CONTROL_LISTENER", sealcast_napi::ControlListenerConstants(env),
                                           napi_enumerable),
                         });
  }

 private:
  static Napi::Number Number(Napi::Env env, std::size_t value) {
    return Napi::Number::New(env, static_cast<double>(value));
  }
};

}  // namespace

NODE_API_ADDON(SealcastAddon)
