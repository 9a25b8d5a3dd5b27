// The control plane's TCP transport (see control_listener.h).

#include "control_listener.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#if defined(__linux__)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#endif

namespace sealcast {

namespace {

// Slot and generation share a connection id: the low 20 bits name the slot, the high 12 bits
// count its reuse, so an id kept after its connection closed does not reach the next one.
constexpr std::uint32_t kSlotBits = 20;
constexpr std::uint32_t kSlotMask = (1u << kSlotBits) - 1;
constexpr std::uint32_t kGenerationMask = (1u << (32 - kSlotBits)) - 1;
static_assert(kConnectionsMax == (1u << kSlotBits), "ids hold a slot in kSlotBits bits");

// epoll data tags of the two descriptors that are not connections.
constexpr std::uint64_t kListenTag = ~std::uint64_t{0};
constexpr std::uint64_t kTimerTag = ~std::uint64_t{0} - 1;

// One read takes at most this much, so that one chatty connection cannot starve the others.
constexpr std::size_t kReadBytesMax = 64 * 1024;
// The most reads of one connection per wake-up.
constexpr int kReadsPerEventMax = 4;
// While connections are ending, or accepting is paused for lack of descriptors, a timer ticks.
constexpr long kTimerTickMs = 100;
constexpr int kKeepAliveIdleSeconds = 30;

// A frame of payload length L takes L + 4 input bytes and L + kEventHeaderBytes slab bytes; the
// worst ratio (L = 1) is 13 slab bytes per 5 input bytes.
constexpr std::size_t kSlabBytesPerInput = 13;
constexpr std::size_t kInputBytesPerSlab = 5;

ListenerOutcome Bad(const char* message) {
  ListenerOutcome outcome;
  outcome.status = ListenerStatus::kBadArgument;
  outcome.message = message;
  return outcome;
}

ListenerOutcome Closed() {
  ListenerOutcome outcome;
  outcome.status = ListenerStatus::kClosed;
  outcome.message = "the listener is closed";
  return outcome;
}

ListenerOutcome System(int error_number, const char* what) {
  ListenerOutcome outcome;
  outcome.status = ListenerStatus::kSystem;
  outcome.error_number = error_number;
  outcome.message = what;
  return outcome;
}

void PutWord(std::uint8_t* target, std::uint32_t value) {
  target[0] = static_cast<std::uint8_t>(value);
  target[1] = static_cast<std::uint8_t>(value >> 8);
  target[2] = static_cast<std::uint8_t>(value >> 16);
  target[3] = static_cast<std::uint8_t>(value >> 24);
}

std::uint32_t GetWord(const std::uint8_t* source) {
  return static_cast<std::uint32_t>(source[0]) | (static_cast<std::uint32_t>(source[1]) << 8) |
         (static_cast<std::uint32_t>(source[2]) << 16) | (static_cast<std::uint32_t>(source[3]) << 24);
}

std::uint32_t GetBigEndianWord(const std::uint8_t* source) {
  return (static_cast<std::uint32_t>(source[0]) << 24) | (static_cast<std::uint32_t>(source[1]) << 16) |
         (static_cast<std::uint32_t>(source[2]) << 8) | static_cast<std::uint32_t>(source[3]);
}

// Appends one event record; the caller has checked that it fits.
void PutEvent(std::uint8_t* slab, std::size_t* used, EventKind kind, std::uint32_t id, std::uint32_t length,
              const std::uint8_t* payload, std::size_t payload_bytes) {
  std::uint8_t* record = slab + *used;
  record[0] = kind;
  record[1] = record[2] = record[3] = 0;
  PutWord(record + 4, id);
  PutWord(record + 8, length);
  if (payload_bytes > 0) std::memcpy(record + kEventHeaderBytes, payload, payload_bytes);
  *used += kEventHeaderBytes + payload_bytes;
}

}  // namespace

#if defined(__linux__)

namespace {

std::uint64_t NowMs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000000u;
}

}  // namespace

bool ControlListenerSupported() { return true; }

ControlListener::~ControlListener() { Close(); }

ListenerOutcome ControlListener::Open(const ListenerConfig& config) {
  if (listen_fd_ >= 0 || closed_) return Bad("the listener was opened before");
  if (config.connections_max < 1 || config.connections_max > kConnectionsMax) {
    return Bad("connections_max must be between 1 and 2^20");
  }
  if (config.frame_bytes_max < 1 || config.frame_bytes_max > kFrameBytesLimit) {
    return Bad("frame_bytes_max must be between 1 and 16 MiB");
  }
  if (config.pending_bytes_max < 1) return Bad("pending_bytes_max must be positive");
  if (config.backlog < 1 || config.backlog > 65535) return Bad("backlog must be between 1 and 65535");
  config_ = config;

  const int family = config.ipv6 ? AF_INET6 : AF_INET;
  listen_fd_ = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return System(errno, "socket");
  const int on = 1;
  if (setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) return System(errno, "setsockopt SO_REUSEADDR");
  // Set once here, these reach every accepted connection (Linux copies them to each one it
  // accepts), which saves three system calls per connection: no Nagle delay for small messages,
  // and keepalive so that a registered client that vanishes without a word is noticed.
  const int idle = kKeepAliveIdleSeconds;
  if (setsockopt(listen_fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) return System(errno, "setsockopt TCP_NODELAY");
  if (setsockopt(listen_fd_, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) return System(errno, "setsockopt SO_KEEPALIVE");
  if (setsockopt(listen_fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0) return System(errno, "setsockopt TCP_KEEPIDLE");
  sockaddr_storage address{};
  socklen_t address_bytes = 0;
  if (config.ipv6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(config.port);
    std::memcpy(&v6->sin6_addr, config.address, 16);
    address_bytes = sizeof(sockaddr_in6);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(config.port);
    std::memcpy(&v4->sin_addr, config.address, 4);
    address_bytes = sizeof(sockaddr_in);
  }
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), address_bytes) != 0) return System(errno, "bind");
  if (listen(listen_fd_, config.backlog) != 0) return System(errno, "listen");
  address_bytes = sizeof address;
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &address_bytes) != 0) return System(errno, "getsockname");
  port_ = ntohs(config.ipv6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                            : reinterpret_cast<sockaddr_in*>(&address)->sin_port);

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return System(errno, "epoll_create1");
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) return System(errno, "timerfd_create");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kListenTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &event) != 0) return System(errno, "epoll_ctl listen");
  event.data.u64 = kTimerTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &event) != 0) return System(errno, "epoll_ctl timer");
  // Slots are made as connections arrive (up to connections_max), not all at once.
  connections_.reserve(std::min<std::size_t>(config.connections_max, 1024));
  scratch_.resize(kReadBytesMax);
  return ListenerOutcome{};
}

std::uint32_t ControlListener::IdOf(std::size_t slot) const {
  return ((connections_[slot].generation & kGenerationMask) << kSlotBits) | static_cast<std::uint32_t>(slot);
}

ControlListener::Connection* ControlListener::Find(std::uint32_t id) {
  const std::size_t slot = id & kSlotMask;
  if (slot >= connections_.size()) return nullptr;
  Connection& connection = connections_[slot];
  if (connection.state == State::kFree || (connection.generation & kGenerationMask) != (id >> kSlotBits)) return nullptr;
  return &connection;
}

const ControlListener::Connection* ControlListener::Find(std::uint32_t id) const {
  return const_cast<ControlListener*>(this)->Find(id);
}

void ControlListener::SetEvents(std::size_t slot, std::uint32_t events) {
  Connection& connection = connections_[slot];
  if (connection.epoll_events == events) return;
  epoll_event event{};
  event.events = events;
  event.data.u64 = (static_cast<std::uint64_t>(connection.generation) << 32) | slot;
  // A descriptor with no wanted events is taken out of the set: epoll reports hang-ups and
  // errors whatever the mask, which would wake the loop again and again for a connection that
  // is only waiting for its owner to close it.
  int op = EPOLL_CTL_MOD;
  if (events == 0) op = EPOLL_CTL_DEL;
  else if (connection.epoll_events == 0) op = EPOLL_CTL_ADD;
  if (epoll_ctl(epoll_fd_, op, connection.fd, &event) == 0) connection.epoll_events = events;
}

void ControlListener::UpdateTimer() {
  const bool wanted = !ending_deadlines_.empty() || listen_paused_;
  if (wanted == timer_armed_) return;
  itimerspec spec{};
  if (wanted) {
    spec.it_interval.tv_nsec = kTimerTickMs * 1000000L;
    spec.it_value.tv_nsec = kTimerTickMs * 1000000L;
  }
  if (timerfd_settime(timer_fd_, 0, &spec, nullptr) == 0) timer_armed_ = wanted;
}

void ControlListener::OnTimer(std::uint64_t now_ms) {
  std::uint64_t expirations = 0;
  while (read(timer_fd_, &expirations, sizeof expirations) > 0) {
  }
  while (!ending_deadlines_.empty() && ending_deadlines_.front().at_ms <= now_ms) {
    const Deadline deadline = ending_deadlines_.front();
    ending_deadlines_.pop_front();
    Connection& connection = connections_[deadline.slot];
    if (connection.state == State::kEnding && connection.generation == deadline.generation) Release(deadline.slot);
  }
  if (listen_paused_) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kListenTag;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &event) == 0) listen_paused_ = false;
  }
  UpdateTimer();
}

void ControlListener::Release(std::size_t slot) {
  Connection& connection = connections_[slot];
  if (connection.state == State::kFree) return;
  // Closing the descriptor also takes it out of the epoll set.
  close(connection.fd);
  connection.fd = -1;
  connection.state = State::kFree;
  connection.generation++;
  connection.epoll_events = 0;
  connection.input_open = false;
  connection.end_queued = false;
  connection.peer_ended = false;
  // Small buffers are kept for the slot's next connection; a large one goes back to the heap.
  connection.input.clear();
  connection.output.clear();
  connection.output_sent = 0;
  if (connection.input.capacity() > kReadBytesMax) std::vector<std::uint8_t>().swap(connection.input);
  if (connection.output.capacity() > kReadBytesMax) std::vector<std::uint8_t>().swap(connection.output);
  free_slots_.push_back(slot);
  in_use_--;
}

void ControlListener::BeginEnding(std::size_t slot, std::uint64_t now_ms) {
  Connection& connection = connections_[slot];
  // The peer has ended too and everything it sent was read: closing now loses nothing, since the
  // kernel still delivers what it holds.
  if (connection.peer_ended) {
    Release(slot);
    return;
  }
  shutdown(connection.fd, SHUT_WR);
  connection.state = State::kEnding;
  connection.input_open = false;
  connection.deadline_ms = now_ms + kCloseFlushMs;
  // Whatever the peer still sends is read and dropped until it ends too: closing with unread
  // input would reset the connection and could destroy the last message before it is read.
  SetEvents(slot, EPOLLIN);
  ending_deadlines_.push_back(Deadline{slot, connection.generation, connection.deadline_ms});
  UpdateTimer();
}

int ControlListener::WriteQueued(std::size_t slot, std::uint64_t now_ms) {
  Connection& connection = connections_[slot];
  while (connection.output_sent < connection.output.size()) {
    const ssize_t sent = send(connection.fd, connection.output.data() + connection.output_sent,
                              connection.output.size() - connection.output_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return errno;
    }
    connection.output_sent += static_cast<std::size_t>(sent);
  }
  connection.output.clear();
  connection.output_sent = 0;
  if (connection.end_queued && connection.state == State::kOpen) {
    connection.end_queued = false;
    BeginEnding(slot, now_ms);
    return 0;
  }
  if (connection.state == State::kOpen) SetEvents(slot, connection.input_open ? static_cast<std::uint32_t>(EPOLLIN) : 0u);
  return 0;
}

void ControlListener::Accept(std::uint8_t* slab, std::size_t slab_bytes, std::size_t* used, std::size_t* events) {
  // Only as many as the slab can report: the rest wait in the backlog for the next call.
  for (std::size_t accepted = 0; accepted < kPollEventsMax && slab_bytes - *used >= kEventHeaderBytes;) {
    sockaddr_storage peer{};
    socklen_t peer_bytes = sizeof peer;
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_bytes, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the pending connection stays in the backlog, and the
        // listening socket would report it again at once. Stop watching it for one tick.
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr) == 0) listen_paused_ = true;
        UpdateTimer();
      }
      return;
    }
    accepted++;
    if (in_use_ >= config_.connections_max) {
      close(fd);
      refused_++;
      continue;
    }
    std::size_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = connections_.size();
      connections_.emplace_back();
    }
    Connection& connection = connections_[slot];
    connection.fd = fd;
    connection.state = State::kOpen;
    connection.input_open = true;
    connection.epoll_events = 0;
    std::memcpy(connection.peer, &peer, std::min<std::size_t>(peer_bytes, sizeof connection.peer));
    in_use_++;
    SetEvents(slot, EPOLLIN);
    if (connection.epoll_events == 0) {
      // It cannot be watched (the kernel is out of memory): it would never be heard from.
      Release(slot);
      continue;
    }
    PutEvent(slab, used, kEventOpen, IdOf(slot), 0, nullptr, 0);
    (*events)++;
  }
}

bool ControlListener::ReadFrames(std::size_t slot, std::uint8_t* slab, std::size_t slab_bytes, std::size_t* used,
                                 std::size_t* events) {
  Connection& connection = connections_[slot];
  const std::uint32_t id = IdOf(slot);
  for (int reads = 0; reads < kReadsPerEventMax && connection.input_open; reads++) {
    const std::size_t room = slab_bytes - *used;
    if (room < 2 * kEventHeaderBytes) return false;
    // Bound the read so that every frame it completes, and one end or error record, fit the slab.
    const std::size_t input_room = (room - kEventHeaderBytes) * kInputBytesPerSlab / kSlabBytesPerInput;
    if (input_room <= connection.input.size()) return false;
    const std::size_t wanted = std::min(kReadBytesMax, input_room - connection.input.size());
    const ssize_t received = recv(connection.fd, scratch_.data(), wanted, MSG_DONTWAIT);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      PutEvent(slab, used, kEventError, id, static_cast<std::uint32_t>(errno), nullptr, 0);
      (*events)++;
      connection.input_open = false;
      SetEvents(slot, connection.output.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
      return true;
    }
    if (received == 0) {
      PutEvent(slab, used, kEventEnd, id, 0, nullptr, 0);
      (*events)++;
      connection.input_open = false;
      connection.peer_ended = true;
      SetEvents(slot, connection.output.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
      return true;
    }
    // Frames are cut from the held partial frame plus the new bytes, or from the new bytes alone.
    const std::uint8_t* bytes = scratch_.data();
    std::size_t length = static_cast<std::size_t>(received);
    if (!connection.input.empty()) {
      connection.input.insert(connection.input.end(), scratch_.data(), scratch_.data() + received);
      bytes = connection.input.data();
      length = connection.input.size();
    }
    std::size_t position = 0;
    while (length - position >= 4) {
      const std::uint32_t frame_bytes = GetBigEndianWord(bytes + position);
      if (frame_bytes == 0 || frame_bytes > config_.frame_bytes_max) {
        PutEvent(slab, used, kEventFrameError, id, frame_bytes, nullptr, 0);
        (*events)++;
        connection.input_open = false;
        connection.input.clear();
        SetEvents(slot, connection.output.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
        return true;
      }
      if (length - position - 4 < frame_bytes) break;
      PutEvent(slab, used, kEventFrame, id, frame_bytes, bytes + position + 4, frame_bytes);
      (*events)++;
      position += 4 + frame_bytes;
    }
    if (bytes == scratch_.data()) {
      connection.input.assign(scratch_.data() + position, scratch_.data() + length);
    } else {
      connection.input.erase(connection.input.begin(), connection.input.begin() + static_cast<std::ptrdiff_t>(position));
    }
    // A read that did not fill its buffer has emptied the socket: do not pay for another
    // system call only to hear EAGAIN.
    if (static_cast<std::size_t>(received) < wanted) return true;
  }
  return true;
}

ListenerOutcome ControlListener::Poll(std::uint8_t* slab, std::size_t slab_bytes) {
  const std::uint64_t now_ms = NowMs();
  if (closed_ || listen_fd_ < 0) return Closed();
  if (slab == nullptr || slab_bytes < MinimumSlabBytes(config_.frame_bytes_max)) {
    return Bad("the event slab is smaller than MinimumSlabBytes(frame_bytes_max)");
  }
  std::size_t used = 0;
  std::size_t count = 0;
  epoll_event events[kPollEventsMax];
  const int ready = epoll_wait(epoll_fd_, events, static_cast<int>(kPollEventsMax), 0);
  if (ready < 0) {
    if (errno == EINTR) {
      ListenerOutcome outcome;
      outcome.count = count;
      outcome.bytes = used;
      return outcome;
    }
    return System(errno, "epoll_wait");
  }
  bool listen_ready = false;
  for (int index = 0; index < ready; index++) {
    const std::uint64_t tag = events[index].data.u64;
    const std::uint32_t flags = events[index].events;
    if (tag == kListenTag) {
      // Accepted after the other events, so that a slot freed and reused within this call never
      // receives an event meant for its previous connection.
      listen_ready = true;
      continue;
    }
    if (tag == kTimerTag) {
      OnTimer(now_ms);
      continue;
    }
    const std::size_t slot = static_cast<std::size_t>(tag & 0xffffffffu);
    if (slot >= connections_.size()) continue;
    Connection& connection = connections_[slot];
    // The tag carries the generation too: an event of a connection closed since is dropped.
    if (connection.state == State::kFree || connection.generation != static_cast<std::uint32_t>(tag >> 32)) continue;
    if (connection.state == State::kEnding) {
      // Drain and drop what the peer still sends; its end (or an error) finishes the close.
      for (int reads = 0; reads < kReadsPerEventMax; reads++) {
        const ssize_t received = recv(connection.fd, scratch_.data(), scratch_.size(), MSG_DONTWAIT);
        if (received > 0) continue;
        if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (received < 0 && errno == EINTR) continue;
        Release(slot);
        break;
      }
      if (connection.state == State::kEnding && (flags & (EPOLLHUP | EPOLLERR)) != 0) Release(slot);
      continue;
    }
    if ((flags & EPOLLOUT) != 0 && !connection.output.empty()) {
      const int error_number = WriteQueued(slot, now_ms);
      if (error_number != 0) {
        // The owner is told once and closes it; a connection it has already given up on (its
        // input had ended, or it asked for an end after the queued output) is closed here.
        if (connection.input_open && !connection.end_queued && slab_bytes - used >= kEventHeaderBytes) {
          PutEvent(slab, &used, kEventError, IdOf(slot), static_cast<std::uint32_t>(error_number), nullptr, 0);
          count++;
          connection.input_open = false;
          connection.output.clear();
          connection.output_sent = 0;
          SetEvents(slot, 0);
        } else {
          Release(slot);
        }
        continue;
      }
      if (connection.state != State::kOpen) continue;
    }
    if (connection.input_open && (flags & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
      ReadFrames(slot, slab, slab_bytes, &used, &count);
    } else if (!connection.input_open && connection.output.empty()) {
      SetEvents(slot, 0);
    }
  }
  if (listen_ready) Accept(slab, slab_bytes, &used, &count);
  ListenerOutcome outcome;
  outcome.count = count;
  outcome.bytes = used;
  return outcome;
}

ListenerOutcome ControlListener::Flush(const std::uint8_t* slab, std::size_t slab_bytes, std::size_t count,
                                       std::uint32_t* dropped, std::size_t dropped_words) {
  const std::uint64_t now_ms = NowMs();
  if (closed_ || listen_fd_ < 0) return Closed();
  if (slab == nullptr && (slab_bytes > 0 || count > 0)) return Bad("slab is missing");
  if (dropped == nullptr && dropped_words > 0) return Bad("dropped is missing");
  // Every record is checked before any is carried out, so a bad batch changes nothing.
  std::size_t position = 0;
  for (std::size_t index = 0; index < count; index++) {
    if (slab_bytes - position < kSendHeaderBytes) return Bad("a send record runs past the end of the slab");
    const std::uint32_t flags = GetWord(slab + position + 4);
    const std::uint32_t length = GetWord(slab + position + 8);
    if ((flags & ~kSendFlagsAll) != 0) return Bad("a send record has unknown flags");
    if ((flags & kSendDestroy) != 0 && (flags != kSendDestroy || length != 0)) {
      return Bad("a destroy record carries no bytes and no other flag");
    }
    if (slab_bytes - position - kSendHeaderBytes < length) return Bad("a send record's bytes run past the end of the slab");
    position += kSendHeaderBytes + length;
  }
  std::size_t reported = 0;
  auto drop = [&](std::size_t slot, std::uint32_t id, std::uint32_t reason, std::uint32_t detail) {
    Release(slot);
    if (2 * reported + 1 < dropped_words) {
      dropped[2 * reported] = id;
      dropped[2 * reported + 1] = reason == kDropWriteError ? (kDropWriteError | (detail << 8)) : reason;
      reported++;
    }
  };
  position = 0;
  for (std::size_t index = 0; index < count; index++) {
    const std::uint32_t id = GetWord(slab + position);
    const std::uint32_t flags = GetWord(slab + position + 4);
    const std::uint32_t length = GetWord(slab + position + 8);
    const std::uint8_t* bytes = slab + position + kSendHeaderBytes;
    position += kSendHeaderBytes + length;
    Connection* connection = Find(id);
    if (connection == nullptr || connection->state != State::kOpen) continue;
    const std::size_t slot = id & kSlotMask;
    if ((flags & kSendDestroy) != 0) {
      Release(slot);
      continue;
    }
    if (length > 0) {
      std::size_t sent_now = 0;
      int failure = 0;
      while (connection->output.empty() && sent_now < length) {
        const ssize_t sent = send(connection->fd, bytes + sent_now, length - sent_now, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent >= 0) {
          sent_now += static_cast<std::size_t>(sent);
        } else if (errno != EINTR) {
          if (errno != EAGAIN && errno != EWOULDBLOCK) failure = errno;
          break;
        }
      }
      if (failure != 0) {
        drop(slot, id, kDropWriteError, static_cast<std::uint32_t>(failure));
        continue;
      }
      if (sent_now < length) {
        if (connection->output.size() - connection->output_sent + (length - sent_now) > config_.pending_bytes_max) {
          drop(slot, id, kDropNotReading, 0);
          continue;
        }
        connection->output.insert(connection->output.end(), bytes + sent_now, bytes + length);
        SetEvents(slot, EPOLLOUT | (connection->input_open ? static_cast<std::uint32_t>(EPOLLIN) : 0u));
      }
    }
    if ((flags & kSendEnd) != 0) {
      if (connection->output.empty()) BeginEnding(slot, now_ms);
      else connection->end_queued = true;
    }
  }
  ListenerOutcome outcome;
  outcome.count = reported;
  return outcome;
}

std::string ControlListener::RemoteAddress(std::uint32_t id) const {
  const Connection* connection = Find(id);
  if (connection == nullptr) return std::string();
  char text[INET6_ADDRSTRLEN] = {};
  sockaddr_storage peer{};
  std::memcpy(&peer, connection->peer, sizeof connection->peer);
  if (peer.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&peer);
    if (inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text) == nullptr) return std::string();
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (peer.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&peer);
    if (inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text) == nullptr) return std::string();
    return std::string("[") + text + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return std::string();
}

void ControlListener::Close() {
  if (closed_) return;
  closed_ = true;
  for (Connection& connection : connections_) {
    if (connection.state != State::kFree && connection.fd >= 0) close(connection.fd);
    connection.fd = -1;
    connection.state = State::kFree;
  }
  connections_.clear();
  free_slots_.clear();
  ending_deadlines_.clear();
  in_use_ = 0;
  if (listen_fd_ >= 0) close(listen_fd_);
  if (timer_fd_ >= 0) close(timer_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  listen_fd_ = timer_fd_ = epoll_fd_ = -1;
}

#else  // !__linux__

bool ControlListenerSupported() { return false; }
ControlListener::~ControlListener() {}
ListenerOutcome ControlListener::Open(const ListenerConfig&) {
  ListenerOutcome outcome;
  outcome.status = ListenerStatus::kUnsupported;
  outcome.message = "the native control transport needs Linux";
  return outcome;
}
ListenerOutcome ControlListener::Poll(std::uint8_t*, std::size_t) { return Open(ListenerConfig{}); }
ListenerOutcome ControlListener::Flush(const std::uint8_t*, std::size_t, std::size_t, std::uint32_t*, std::size_t) {
  return Open(ListenerConfig{});
}
std::string ControlListener::RemoteAddress(std::uint32_t) const { return std::string(); }
void ControlListener::Close() { closed_ = true; }

#endif

}  // namespace sealcast
