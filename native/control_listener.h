// The control plane's TCP transport: one listening socket and its accepted connections, driven
// by one epoll set. It does the part of a control server that is the same for every message:
// accepting, reading, cutting length-prefixed frames (a 4-byte big-endian length, then the
// payload), queueing output a client is slow to take, and closing. What a frame means is the
// caller's business.
//
// Work crosses the boundary in batches, never per connection: Poll() turns everything that is
// ready into event records in a caller-owned slab, and Flush() takes a caller-owned slab of send
// and close records. Plain C++ with no Node-API types; every entry point checks its arguments and
// reports a bad call instead of touching memory outside the caller's arrays. Linux only (epoll,
// accept4, timerfd); elsewhere Open() reports kUnsupported and the JS layer keeps node:net.

#ifndef SEALCAST_NATIVE_CONTROL_LISTENER_H_
#define SEALCAST_NATIVE_CONTROL_LISTENER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace sealcast {

bool ControlListenerSupported();

// Event records written by Poll(), each kEventHeaderBytes followed by `length` payload bytes:
//   byte 0 kind, bytes 1-3 zero, bytes 4-7 connection id (u32 LE), bytes 8-11 length (u32 LE).
constexpr std::size_t kEventHeaderBytes = 12;
enum EventKind : std::uint8_t {
  kEventOpen = 1,        // a new connection; no payload
  kEventFrame = 2,       // one whole frame's payload
  kEventEnd = 3,         // the peer ended its side (EOF); input stops
  kEventError = 4,       // a socket error; `length` holds errno and there is no payload; input stops
  kEventFrameError = 5,  // a bad frame header; `length` holds the declared length (0 = empty); input stops
};

// Send records read by Flush(), each kSendHeaderBytes followed by `length` bytes to send:
//   bytes 0-3 connection id (u32 LE), bytes 4-7 flags (u32 LE), bytes 8-11 length (u32 LE).
// The bytes are sent as they are: the caller frames them.
constexpr std::size_t kSendHeaderBytes = 12;
// Every connection has TCP_NODELAY and keepalive (30 s idle) from the listening socket.
enum SendFlag : std::uint32_t {
  kSendEnd = 2,      // after everything queued is sent, end our side and close soon after
  kSendDestroy = 4,  // close at once, dropping queued output (what the kernel holds still goes)
};
constexpr std::uint32_t kSendFlagsAll = kSendEnd | kSendDestroy;

// Why Flush() closed a connection on its own (reported in its `dropped` pairs).
// The second word of a pair is kDropNotReading, or kDropWriteError | errno << 8.
enum DropReason : std::uint32_t {
  kDropNotReading = 1,  // its queued output grew past pending_bytes_max
  kDropWriteError = 2,  // a send failed
};

// A connection that was ended (kSendEnd) is closed this long after, if the peer has not closed
// its side first.
constexpr std::uint32_t kCloseFlushMs = 1000;
// The most connections one listener holds, and the most frame bytes it accepts.
constexpr std::size_t kConnectionsMax = 1 << 20;
constexpr std::size_t kFrameBytesLimit = 16 * 1024 * 1024;
// Accepts and epoll events handled per Poll(): bounds the work of one wake-up.
constexpr std::size_t kPollEventsMax = 256;

enum class ListenerStatus { kOk, kBadArgument, kSystem, kUnsupported, kClosed };

struct ListenerOutcome {
  ListenerStatus status = ListenerStatus::kOk;
  int error_number = 0;
  std::string message;
  std::size_t count = 0;  // Poll: events written; Flush: dropped pairs written
  std::size_t bytes = 0;  // Poll: slab bytes written
};

struct ListenerConfig {
  bool ipv6 = false;
  std::uint8_t address[16] = {};  // network byte order; the first 4 bytes for IPv4
  std::uint16_t port = 0;
  int backlog = 511;
  std::size_t connections_max = 0;
  std::size_t frame_bytes_max = 0;
  std::size_t pending_bytes_max = 0;
};

class ControlListener {
 public:
  ControlListener() = default;
  ~ControlListener();
  ControlListener(const ControlListener&) = delete;
  ControlListener& operator=(const ControlListener&) = delete;

  // Creates, binds and listens; the epoll descriptor to watch for readiness is epoll_fd().
  ListenerOutcome Open(const ListenerConfig& config);
  int epoll_fd() const { return epoll_fd_; }
  std::uint16_t port() const { return port_; }
  // Connections holding a descriptor, ending ones included.
  std::size_t connections_in_use() const { return in_use_; }
  // Connections closed at once because every slot was in use.
  std::uint64_t refused() const { return refused_; }

  // Writes the events that are ready into slab[0, slab_bytes). Never blocks. A frame that does
  // not fit stays buffered (or in the kernel) for the next call; the slab must hold at least
  // MinimumSlabBytes(frame_bytes_max) bytes so that every frame fits an empty slab.
  ListenerOutcome Poll(std::uint8_t* slab, std::size_t slab_bytes);

  // Carries out the send records in slab[0, slab_bytes), `count` of them. Records for ids that
  // are no longer open are skipped. Connections it had to close are written to `dropped` as
  // (id, reason-or-errno) pairs: two words each, at most dropped_words / 2 of them (a connection
  // beyond that is still closed, only not reported; callers size it for every record).
  ListenerOutcome Flush(const std::uint8_t* slab, std::size_t slab_bytes, std::size_t count, std::uint32_t* dropped,
                        std::size_t dropped_words);

  // The peer of an open connection as "address:port" (IPv6 in brackets); empty when unknown.
  std::string RemoteAddress(std::uint32_t id) const;

  // Closes every descriptor. Safe to call twice.
  void Close();
  bool closed() const { return closed_; }

  static std::size_t MinimumSlabBytes(std::size_t frame_bytes_max) { return 3 * (frame_bytes_max + 4) + 64; }

 private:
  enum class State : std::uint8_t { kFree, kOpen, kEnding };
  struct Connection {
    int fd = -1;
    std::uint32_t generation = 0;
    State state = State::kFree;
    bool input_open = false;   // still reading frames (false after end, error or a bad frame)
    bool end_queued = false;   // kSendEnd arrived while output was still queued
    bool peer_ended = false;   // EOF was read: nothing more can arrive
    std::uint32_t epoll_events = 0;
    std::uint64_t deadline_ms = 0;
    std::vector<std::uint8_t> input;   // an incomplete frame: header and body so far
    std::vector<std::uint8_t> output;  // bytes the kernel did not take yet
    std::size_t output_sent = 0;       // of `output`, already sent
    std::uint8_t peer[28] = {};        // sockaddr_in or sockaddr_in6
  };

  std::uint32_t IdOf(std::size_t slot) const;
  Connection* Find(std::uint32_t id);
  const Connection* Find(std::uint32_t id) const;
  void Accept(std::uint8_t* slab, std::size_t slab_bytes, std::size_t* used, std::size_t* events);
  // Reads from one connection; returns false when the slab is too full to take more now.
  bool ReadFrames(std::size_t slot, std::uint8_t* slab, std::size_t slab_bytes, std::size_t* used,
                  std::size_t* events);
  // Sends what is queued; returns 0, or errno when the send failed.
  int WriteQueued(std::size_t slot, std::uint64_t now_ms);
  void BeginEnding(std::size_t slot, std::uint64_t now_ms);
  void Release(std::size_t slot);
  void SetEvents(std::size_t slot, std::uint32_t events);
  void UpdateTimer();
  void OnTimer(std::uint64_t now_ms);

  ListenerConfig config_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  bool timer_armed_ = false;
  bool closed_ = false;
  std::uint16_t port_ = 0;
  std::vector<Connection> connections_;
  std::vector<std::size_t> free_slots_;
  std::size_t in_use_ = 0;
  std::uint64_t refused_ = 0;
  struct Deadline {
    std::size_t slot;
    std::uint32_t generation;
    std::uint64_t at_ms;
  };
  // Ending connections in the order they began ending, which is deadline order.
  std::deque<Deadline> ending_deadlines_;
  bool listen_paused_ = false;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_CONTROL_LISTENER_H_
