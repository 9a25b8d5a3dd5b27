// UdpReadWatch: a libuv poll handle on a UDP socket that node:dgram created, so that the batched
// receive path is woken when datagrams are queued and reads them all itself with recvmmsg.
//
// node:dgram's own reading would otherwise be the wake-up: for every wake-up it allocates and
// zero-fills a 64 KiB buffer for one datagram (fresh pages, a page fault each, in a VM), calls
// recvmsg for that one datagram and copies it into the receive slab. The watch reads nothing;
// the caller stops node:dgram's reading first, so the datagrams are left for recvmmsg.
//
// The watch polls its own duplicate of the descriptor. libuv keeps one watcher per descriptor
// number in a loop, and node:dgram's handle still owns the original (it may send on it, and it
// closes it), so sharing that number would have each overwrite the other's registration. The
// duplicate refers to the same socket; close() releases it, and must come before the socket is
// closed, or the socket would live on through the duplicate.
//
// The JS object stays alive while it watches (a strong reference), so a watch nobody holds
// still calls back until close().

#include "udp_watch.h"

#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#if defined(__linux__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include "napi_args.h"
#include "udp.h"

namespace sealcast_napi {

namespace {

Napi::Error IoError(Napi::Env env, const std::string& message, int error_number) {
  Napi::Error error = Napi::Error::New(env, error_number != 0 ? message + ": " + std::strerror(error_number) : message);
  error.Set("code", Napi::String::New(env, "E_IO"));
  if (error_number != 0) error.Set("errno", Napi::Number::New(env, error_number));
  return error;
}

class UdpReadWatchWrap : public Napi::ObjectWrap<UdpReadWatchWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpReadWatch",
                       {
                           InstanceMethod<&UdpReadWatchWrap::Close>("close"),
                           InstanceAccessor<&UdpReadWatchWrap::Closed>("closed"),
                       });
  }

  // new UdpReadWatch(fd, onReadable): calls onReadable(0) whenever the datagram socket `fd` has
  // something to read, for as long as it has (the poll is level-triggered: a wake-up that left
  // datagrams queued is followed by another on the next turn of the loop), and onReadable(-errno)
  // once if polling fails, after which the watch is stopped.
  explicit UdpReadWatchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpReadWatchWrap>(info) {
    Napi::Env env = info.Env();
#if defined(__linux__)
    double fd = 0;
    if (!ReadInteger(env, info[0], "fd", 0, 2147483647.0, &fd)) return;
    if (!info[1].IsFunction()) {
      Napi::TypeError::New(env, "onReadable must be a function").ThrowAsJavaScriptException();
      return;
    }
    const sealcast::UdpOutcome checked = sealcast::UdpCheckSocket(static_cast<int>(fd));
    if (checked.status == sealcast::UdpStatus::kNotUdp) {
      Napi::TypeError::New(env, checked.message).ThrowAsJavaScriptException();
      return;
    }
    if (checked.status != sealcast::UdpStatus::kOk) {
      IoError(env, "cannot watch descriptor " + std::to_string(static_cast<int>(fd)), checked.error_number).ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      IoError(env, "no event loop to watch the socket on", 0).ThrowAsJavaScriptException();
      return;
    }
    watched_fd_ = fcntl(static_cast<int>(fd), F_DUPFD_CLOEXEC, 0);
    if (watched_fd_ < 0) {
      IoError(env, "cannot duplicate the socket's descriptor", errno).ThrowAsJavaScriptException();
      return;
    }
    poll_ = new uv_poll_t;
    const int initialized = uv_poll_init(loop, poll_, watched_fd_);
    if (initialized != 0) {
      delete poll_;
      poll_ = nullptr;
      CloseDescriptor();
      IoError(env, std::string("cannot watch the socket: ") + uv_strerror(initialized), 0).ThrowAsJavaScriptException();
      return;
    }
    poll_->data = this;
    on_readable_ = Napi::Persistent(info[1].As<Napi::Function>());
    async_context_ = std::make_unique<Napi::AsyncContext>(env, "sealcast:UdpReadWatch", Value());
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    Ref();
    // A worker thread that ends with the watch open must not leave a libuv handle on its loop.
    napi_add_env_cleanup_hook(env, OnEnvironmentTeardown, this);
    cleanup_hook_ = true;
#else
    Napi::Error error = Napi::Error::New(env, "watching a UDP socket needs Linux");
    error.Set("code", Napi::String::New(env, "E_IO"));
    error.ThrowAsJavaScriptException();
#endif
  }

  ~UdpReadWatchWrap() override { Shut(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<UdpReadWatchWrap*>(handle->data);
    if (self == nullptr || self->poll_ == nullptr) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    // A failed poll would fail again on every turn of the loop: report it once and stop.
    if (status < 0) self->StopPolling();
    // MakeCallback runs the microtasks and nextTicks the JS side queued, as for any I/O event.
    self->on_readable_.MakeCallback(self->Value(), {Napi::Number::New(env, status < 0 ? status : 0)}, *self->async_context_);
    if (env.IsExceptionPending()) {
      Napi::Error error = env.GetAndClearPendingException();
      napi_fatal_exception(env, error.Value());
    }
  }

  // close(): stops watching and releases the duplicate descriptor; later calls do nothing.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!closed_) {
      Shut();
      on_readable_.Reset();
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed_); }

  void Shut() {
    closed_ = true;
    StopPolling();
    CloseDescriptor();
    if (cleanup_hook_) {
      napi_remove_env_cleanup_hook(Env(), OnEnvironmentTeardown, this);
      cleanup_hook_ = false;
    }
  }

  static void OnEnvironmentTeardown(void* data) {
    auto* self = static_cast<UdpReadWatchWrap*>(data);
    self->cleanup_hook_ = false;
    self->StopPolling();
    self->CloseDescriptor();
  }

  void StopPolling() {
    if (poll_ == nullptr) return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    poll_ = nullptr;
  }

  // The poll handle is stopped first: libuv must not be left watching a closed descriptor.
  void CloseDescriptor() {
#if defined(__linux__)
    if (watched_fd_ >= 0) {
      ::close(watched_fd_);
      watched_fd_ = -1;
    }
#endif
  }

  int watched_fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  bool cleanup_hook_ = false;
  bool closed_ = false;
  Napi::FunctionReference on_readable_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
};

}  // namespace

Napi::Function DefineUdpReadWatch(Napi::Env env) { return UdpReadWatchWrap::Define(env); }

}  // namespace sealcast_napi
