// The Node-API layer over control_listener.h. A ControlListener watches its epoll descriptor
// with a libuv poll handle on the environment's own loop; when anything is ready, one Poll()
// fills the caller's event slab and one JS call hands the whole batch over. The caller answers
// with flush(): one native call for all of its sends and closes.
//
// The JS object stays alive while it listens (a strong reference), so a listener nobody holds
// still serves until close().

#include "control_binding.h"

#include <uv.h>

#include <cstring>
#include <memory>
#include <string>

#include "control_listener.h"
#include "napi_args.h"

namespace sealcast_napi {

namespace {

using sealcast::ControlListener;
using sealcast::ListenerOutcome;
using sealcast::ListenerStatus;

void ThrowListenerOutcome(Napi::Env env, const ListenerOutcome& outcome) {
  if (outcome.status == ListenerStatus::kBadArgument) {
    Napi::RangeError::New(env, outcome.message).ThrowAsJavaScriptException();
    return;
  }
  std::string text = outcome.message;
  if (outcome.status == ListenerStatus::kSystem) text += std::string(": ") + std::strerror(outcome.error_number);
  Napi::Error error = Napi::Error::New(env, text);
  error.Set("code", Napi::String::New(env, outcome.status == ListenerStatus::kClosed ? "E_CLOSED" : "E_IO"));
  if (outcome.status == ListenerStatus::kSystem) error.Set("errno", Napi::Number::New(env, outcome.error_number));
  error.ThrowAsJavaScriptException();
}

class ControlListenerWrap : public Napi::ObjectWrap<ControlListenerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ControlListener",
                       {
                           InstanceMethod<&ControlListenerWrap::Flush>("flush"),
                           InstanceMethod<&ControlListenerWrap::RemoteAddress>("remoteAddress"),
                           InstanceMethod<&ControlListenerWrap::Close>("close"),
                           InstanceAccessor<&ControlListenerWrap::Port>("port"),
                           InstanceAccessor<&ControlListenerWrap::ConnectionsInUse>("connectionsInUse"),
                           InstanceAccessor<&ControlListenerWrap::Refused>("refused"),
                           StaticMethod<&ControlListenerWrap::MinimumSlabBytes>("minimumSlabBytes"),
                       });
  }

  // ControlListener.minimumSlabBytes(frameBytesMax): the smallest event slab a listener with
  // that frame limit takes (every frame must fit an empty slab).
  static Napi::Value MinimumSlabBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double frame_bytes_max = 0;
    if (!ReadInteger(env, info[0], "frameBytesMax", 1, static_cast<double>(sealcast::kFrameBytesLimit), &frame_bytes_max)) {
      return env.Undefined();
    }
    return Napi::Number::New(env, static_cast<double>(ControlListener::MinimumSlabBytes(static_cast<std::size_t>(frame_bytes_max))));
  }

  // new ControlListener(family, address, port, backlog, connectionsMax, frameBytesMax,
  //                     pendingBytesMax, eventSlab, onEvents, coalesceMs)
  // family 4 or 6; address the 4 or 16 bytes of a numeric address (Uint8Array); onEvents(count,
  // bytes) is called with the records Poll() wrote to eventSlab. After a wake-up that found
  // events, the listener waits coalesceMs (0 to 100) before it looks again, so that under load
  // one wake-up carries the work of many connections.
  explicit ControlListenerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ControlListenerWrap>(info) {
    Napi::Env env = info.Env();
    double family = 0, port = 0, backlog = 0, connections_max = 0, frame_bytes_max = 0, pending_bytes_max = 0;
    ArrayView<std::uint8_t> address, slab;
    if (!ReadInteger(env, info[0], "family", 4, 6, &family)) return;
    if (family != 4 && family != 6) {
      Napi::RangeError::New(env, "family must be 4 or 6").ThrowAsJavaScriptException();
      return;
    }
    if (!ReadTypedArray(env, info[1], napi_uint8_array, "Uint8Array", "address", &address)) return;
    if (address.length != (family == 4 ? 4u : 16u)) {
      Napi::RangeError::New(env, "address must hold 4 bytes for IPv4 and 16 for IPv6").ThrowAsJavaScriptException();
      return;
    }
    if (!ReadInteger(env, info[2], "port", 0, 65535, &port)) return;
    if (!ReadInteger(env, info[3], "backlog", 1, 65535, &backlog)) return;
    if (!ReadInteger(env, info[4], "connectionsMax", 1, static_cast<double>(sealcast::kConnectionsMax), &connections_max)) return;
    if (!ReadInteger(env, info[5], "frameBytesMax", 1, static_cast<double>(sealcast::kFrameBytesLimit), &frame_bytes_max)) return;
    if (!ReadInteger(env, info[6], "pendingBytesMax", 1, 4294967295.0, &pending_bytes_max)) return;
    if (!ReadTypedArray(env, info[7], napi_uint8_array, "Uint8Array", "eventSlab", &slab)) return;
    if (slab.length < ControlListener::MinimumSlabBytes(static_cast<std::size_t>(frame_bytes_max))) {
      Napi::RangeError::New(env, "eventSlab must hold at least minimumSlabBytes(frameBytesMax) bytes").ThrowAsJavaScriptException();
      return;
    }
    if (!info[8].IsFunction()) {
      Napi::TypeError::New(env, "onEvents must be a function").ThrowAsJavaScriptException();
      return;
    }
    double coalesce_ms = 0;
    if (!ReadInteger(env, info[9], "coalesceMs", 0, 100, &coalesce_ms)) return;
    coalesce_ms_ = static_cast<std::uint64_t>(coalesce_ms);
    sealcast::ListenerConfig config;
    config.ipv6 = family == 6;
    std::memcpy(config.address, address.data, address.length);
    config.port = static_cast<std::uint16_t>(port);
    config.backlog = static_cast<int>(backlog);
    config.connections_max = static_cast<std::size_t>(connections_max);
    config.frame_bytes_max = static_cast<std::size_t>(frame_bytes_max);
    config.pending_bytes_max = static_cast<std::size_t>(pending_bytes_max);
    const ListenerOutcome opened = core_.Open(config);
    if (opened.status != ListenerStatus::kOk) {
      core_.Close();
      ThrowListenerOutcome(env, opened);
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      core_.Close();
      Napi::Error::New(env, "no event loop to watch the listener on").ThrowAsJavaScriptException();
      return;
    }
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, core_.epoll_fd()) != 0) {
      delete poll_;
      poll_ = nullptr;
      core_.Close();
      Napi::Error::New(env, "cannot watch the listener's epoll descriptor").ThrowAsJavaScriptException();
      return;
    }
    poll_->data = this;
    timer_ = new uv_timer_t;
    uv_timer_init(loop, timer_);
    timer_->data = this;
    slab_ = slab.data;
    slab_bytes_ = slab.length;
    slab_ref_ = Napi::Persistent(info[7].As<Napi::Object>());
    on_events_ = Napi::Persistent(info[8].As<Napi::Function>());
    async_context_ = std::make_unique<Napi::AsyncContext>(env, "sealcast:ControlListener", Value());
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    Ref();
    // A worker thread that ends with the listener open must not leave libuv handles on its loop.
    napi_add_env_cleanup_hook(env, OnEnvironmentTeardown, this);
    cleanup_hook_ = true;
  }

  ~ControlListenerWrap() override { Shut(); }

 private:
  // Two modes. Idle: the poll handle wakes the loop when anything is ready. Busy (coalescing on):
  // after a wake-up that found work, the poll handle is stopped and a timer looks again after
  // coalesce_ms, and again, for as long as each look finds work; the first look that finds
  // nothing goes back to the poll handle. Under load the listener's epoll descriptor thus stays
  // out of libuv's epoll set: re-adding a nested epoll descriptor costs the kernel a loop check
  // over every connection in it, and while it is nested every new connection's registration
  // takes the kernel's slow path too.
  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<ControlListenerWrap*>(handle->data);
    if (self == nullptr || status < 0 || self->core_.closed()) return;
    if (self->Service() > 0 && self->coalesce_ms_ > 0 && self->poll_ != nullptr && self->timer_ != nullptr) {
      uv_poll_stop(self->poll_);
      uv_timer_start(self->timer_, OnCoalesced, self->coalesce_ms_, 0);
    }
  }

  static void OnCoalesced(uv_timer_t* handle) {
    auto* self = static_cast<ControlListenerWrap*>(handle->data);
    if (self == nullptr || self->poll_ == nullptr || self->core_.closed()) return;
    if (self->Service() > 0) {
      if (self->timer_ != nullptr) uv_timer_start(self->timer_, OnCoalesced, self->coalesce_ms_, 0);
    } else if (self->poll_ != nullptr) {
      uv_poll_start(self->poll_, UV_READABLE, OnReadable);
    }
  }

  // One Poll() and, when it found anything, one call into JS. Returns the events found.
  std::size_t Service() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    const ListenerOutcome outcome = core_.Poll(slab_, slab_bytes_);
    if (outcome.status != ListenerStatus::kOk) {
      // epoll itself failed: nothing more can be heard. The owner learns it as a count of -1.
      StopPolling();
      Deliver(env, -1, 0);
      return 0;
    }
    if (outcome.count > 0) Deliver(env, static_cast<double>(outcome.count), static_cast<double>(outcome.bytes));
    return outcome.count;
  }

  void Deliver(Napi::Env env, double count, double bytes) {
    // MakeCallback runs the microtasks and nextTicks the JS side queued, as for any I/O event.
    on_events_.MakeCallback(Value(), {Napi::Number::New(env, count), Napi::Number::New(env, bytes)}, *async_context_);
    if (env.IsExceptionPending()) {
      Napi::Error error = env.GetAndClearPendingException();
      napi_fatal_exception(env, error.Value());
    }
  }

  // flush(slab, count, dropped): carries out `count` send records from `slab` and returns how
  // many (id, reason) pairs it wrote to `dropped` (a Uint32Array).
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ArrayView<std::uint8_t> slab;
    ArrayView<std::uint32_t> dropped;
    double count = 0;
    if (!ReadTypedArray(env, info[0], napi_uint8_array, "Uint8Array", "slab", &slab)) return env.Undefined();
    if (!ReadInteger(env, info[1], "count", 0, 4294967295.0, &count)) return env.Undefined();
    if (!ReadTypedArray(env, info[2], napi_uint32_array, "Uint32Array", "dropped", &dropped)) return env.Undefined();
    const ListenerOutcome outcome =
        core_.Flush(slab.data, slab.length, static_cast<std::size_t>(count), dropped.data, dropped.length);
    if (outcome.status != ListenerStatus::kOk) {
      ThrowListenerOutcome(env, outcome);
      return env.Undefined();
    }
    return Napi::Number::New(env, static_cast<double>(outcome.count));
  }

  Napi::Value RemoteAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double id = 0;
    if (!ReadInteger(env, info[0], "id", 0, 4294967295.0, &id)) return env.Undefined();
    const std::string text = core_.RemoteAddress(static_cast<std::uint32_t>(id));
    if (text.empty()) return env.Undefined();
    return Napi::String::New(env, text);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!core_.closed()) {
      Shut();
      on_events_.Reset();
      slab_ref_.Reset();
      slab_ = nullptr;
      slab_bytes_ = 0;
      Unref();
    }
    return info.Env().Undefined();
  }

  // Stops watching, closes every descriptor, and drops the teardown hook.
  void Shut() {
    StopPolling();
    core_.Close();
    if (cleanup_hook_) {
      napi_remove_env_cleanup_hook(Env(), OnEnvironmentTeardown, this);
      cleanup_hook_ = false;
    }
  }

  static void OnEnvironmentTeardown(void* data) {
    auto* self = static_cast<ControlListenerWrap*>(data);
    self->cleanup_hook_ = false;
    self->StopPolling();
    self->core_.Close();
  }

  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_.port()); }
  Napi::Value ConnectionsInUse(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(core_.connections_in_use()));
  }
  Napi::Value Refused(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(core_.refused()));
  }

  void StopPolling() {
    if (timer_ != nullptr) {
      uv_timer_stop(timer_);
      timer_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
      timer_ = nullptr;
    }
    if (poll_ == nullptr) return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    poll_ = nullptr;
  }

  ControlListener core_;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  bool cleanup_hook_ = false;
  std::uint64_t coalesce_ms_ = 0;
  std::uint8_t* slab_ = nullptr;
  std::size_t slab_bytes_ = 0;
  Napi::ObjectReference slab_ref_;
  Napi::FunctionReference on_events_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
};

}  // namespace

Napi::Function DefineControlListener(Napi::Env env) { return ControlListenerWrap::Define(env); }

Napi::Object ControlListenerConstants(Napi::Env env) {
  Napi::Object constants = Napi::Object::New(env);
  const auto set = [&](const char* name, double value) { constants.Set(name, Napi::Number::New(env, value)); };
  set("SUPPORTED", sealcast::ControlListenerSupported() ? 1 : 0);
  set("EVENT_HEADER_BYTES", sealcast::kEventHeaderBytes);
  set("EVENT_OPEN", sealcast::kEventOpen);
  set("EVENT_FRAME", sealcast::kEventFrame);
  set("EVENT_END", sealcast::kEventEnd);
  set("EVENT_ERROR", sealcast::kEventError);
  set("EVENT_FRAME_ERROR", sealcast::kEventFrameError);
  set("SEND_HEADER_BYTES", sealcast::kSendHeaderBytes);
  set("SEND_END", sealcast::kSendEnd);
  set("SEND_DESTROY", sealcast::kSendDestroy);
  set("DROP_NOT_READING", sealcast::kDropNotReading);
  set("DROP_WRITE_ERROR", sealcast::kDropWriteError);
  set("CLOSE_FLUSH_MS", sealcast::kCloseFlushMs);
  set("CONNECTIONS_MAX", static_cast<double>(sealcast::kConnectionsMax));
  set("FRAME_BYTES_LIMIT", static_cast<double>(sealcast::kFrameBytesLimit));
  return constants;
}

}  // namespace sealcast_napi
