// Batched UDP I/O (see udp.h). Linux has had sendmmsg since 3.0 and recvmmsg since 2.6.33;
// other platforms get kUnsupported and the JS layer keeps node:dgram.

#include "udp.h"

#include <cerrno>
#include <cstring>

#if defined(__linux__)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#endif

namespace sealcast {

namespace {

UdpOutcome BadArgument(const char* message) {
  UdpOutcome outcome;
  outcome.status = UdpStatus::kBadArgument;
  outcome.message = message;
  return outcome;
}

UdpOutcome Sent(std::size_t count) {
  UdpOutcome outcome;
  outcome.count = count;
  return outcome;
}

UdpOutcome SystemError(int error_number) {
  UdpOutcome outcome;
  outcome.status = UdpStatus::kSystem;
  outcome.error_number = error_number;
  return outcome;
}

// A full socket buffer or a signal is not a failure: the caller retries after a short wait.
bool IsTransient(int error_number) {
  return error_number == EAGAIN || error_number == EWOULDBLOCK || error_number == ENOBUFS || error_number == EINTR;
}

}  // namespace

#if defined(__linux__)

bool UdpBatchSupported() { return true; }

UdpOutcome UdpCheckSocket(int fd) {
  if (fd < 0) return BadArgument("fd must be a non-negative integer");
  int type = 0;
  socklen_t type_bytes = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_bytes) != 0) return SystemError(errno);
  if (type != SOCK_DGRAM) {
    UdpOutcome outcome;
    outcome.status = UdpStatus::kNotUdp;
    outcome.message = "fd is not a datagram socket";
    return outcome;
  }
  return Sent(0);
}

UdpOutcome UdpSendSlots(int fd, const UdpSendBatch& batch) {
  if (fd < 0) return BadArgument("fd must be a non-negative integer");
  if (batch.slab == nullptr && batch.slab_bytes != 0) return BadArgument("slab is missing");
  if (batch.layout == nullptr && batch.layout_words != 0) return BadArgument("layout is missing");
  if (batch.count > kUdpBatchMax) return BadArgument("count exceeds the batch maximum");
  const std::size_t slots = batch.layout_words / 3;
  if (batch.first > slots || batch.count > slots - batch.first) return BadArgument("first + count exceeds the layout's slots");
  if ((batch.group_address >> 28) != 0xE) return BadArgument("the destination is not an IPv4 multicast group");
  if (batch.port == 0) return BadArgument("port must be between 1 and 65535");
  if (batch.count == 0) return Sent(0);

  sockaddr_in destination{};
  destination.sin_family = AF_INET;
  destination.sin_port = htons(batch.port);
  destination.sin_addr.s_addr = htonl(batch.group_address);

  mmsghdr messages[kUdpBatchMax];
  iovec vectors[kUdpBatchMax];
  // Per message: how many datagrams it carries, and room for its UDP_SEGMENT control message.
  std::uint16_t datagrams_in[kUdpBatchMax];
  alignas(cmsghdr) char controls[kUdpBatchMax][CMSG_SPACE(sizeof(std::uint16_t))];
  std::size_t message_count = 0;
  std::size_t index = 0;
  while (index < batch.count) {
    const std::uint32_t* words = batch.layout + (batch.first + index) * 3;
    const std::size_t offset = words[0];
    // Each term is below 2^32, so the sum cannot overflow a 64-bit size_t.
    const std::size_t bytes = static_cast<std::size_t>(words[1]) + words[2] + batch.tag_bytes;
    if (bytes == 0 || bytes > kUdpDatagramBytesMax) return BadArgument("a datagram is empty or longer than 65507 bytes");
    if (offset > batch.slab_bytes || bytes > batch.slab_bytes - offset) return BadArgument("a datagram lies outside the slab");
    std::size_t run = 1;
    std::size_t run_bytes = bytes;
    if (batch.segment) {
      // Extend the run while the next datagram starts where this run ends, is no larger than
      // the first (only the last of a GSO send may be shorter) and the whole stays one IPv4
      // datagram's worth.
      while (run < kUdpSegmentsMax && index + run < batch.count) {
        const std::uint32_t* next = batch.layout + (batch.first + index + run) * 3;
        const std::size_t next_bytes = static_cast<std::size_t>(next[1]) + next[2] + batch.tag_bytes;
        if (next[0] != offset + run_bytes || next_bytes == 0 || next_bytes > bytes) break;
        if (run_bytes + next_bytes > kUdpDatagramBytesMax || next_bytes > batch.slab_bytes - next[0]) break;
        run_bytes += next_bytes;
        run++;
        if (next_bytes < bytes) break;
      }
    }
    vectors[message_count].iov_base = const_cast<std::uint8_t*>(batch.slab + offset);
    vectors[message_count].iov_len = run_bytes;
    msghdr& header = messages[message_count].msg_hdr;
    header = msghdr{};
    header.msg_name = &destination;
    header.msg_namelen = sizeof(destination);
    header.msg_iov = &vectors[message_count];
    header.msg_iovlen = 1;
    if (run > 1) {
      header.msg_control = controls[message_count];
      header.msg_controllen = sizeof(controls[message_count]);
      cmsghdr* control = CMSG_FIRSTHDR(&header);
      control->cmsg_level = SOL_UDP;
      control->cmsg_type = UDP_SEGMENT;
      control->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const std::uint16_t segment_bytes = static_cast<std::uint16_t>(bytes);
      std::memcpy(CMSG_DATA(control), &segment_bytes, sizeof(segment_bytes));
    }
    messages[message_count].msg_len = 0;
    datagrams_in[message_count] = static_cast<std::uint16_t>(run);
    message_count++;
    index += run;
  }
  const int sent = sendmmsg(fd, messages, static_cast<unsigned int>(message_count), MSG_DONTWAIT);
  if (sent >= 0) {
    std::size_t datagrams = 0;
    for (int message = 0; message < sent; message++) datagrams += datagrams_in[message];
    return Sent(datagrams);
  }
  const int error_number = errno;
  if (IsTransient(error_number)) return Sent(0);
  return SystemError(error_number);
}

UdpOutcome UdpEnableGro(int fd) {
  if (fd < 0) return BadArgument("fd must be a non-negative integer");
  const int on = 1;
  if (setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) == 0) return Sent(1);
  const int error_number = errno;
  // A kernel before 5.0 does not know the option: receives stay one datagram each.
  if (error_number == ENOPROTOOPT || error_number == EINVAL || error_number == EOPNOTSUPP) return Sent(0);
  return SystemError(error_number);
}

UdpOutcome UdpReceiveInto(int fd, const UdpReceiveSlots& slots) {
  if (fd < 0) return BadArgument("fd must be a non-negative integer");
  if (slots.slab == nullptr || slots.lengths == nullptr) return BadArgument("slab and lengths are required");
  if (slots.stride == 0 || slots.stride > kUdpSlotBytesMax) return BadArgument("stride must be between 1 and 65536");
  if (slots.count > kUdpBatchMax) return BadArgument("count exceeds the batch maximum");
  const std::size_t slab_slots = slots.slab_bytes / slots.stride;
  const std::size_t capacity = slab_slots < slots.lengths_count ? slab_slots : slots.lengths_count;
  if (slots.first > capacity || slots.count > capacity - slots.first) return BadArgument("first + count exceeds the slab's slots");
  if (slots.segments != nullptr && slots.first + slots.count > slots.segments_count) return BadArgument("first + count exceeds segments");
  if (slots.count == 0) return Sent(0);

  mmsghdr messages[kUdpBatchMax];
  iovec vectors[kUdpBatchMax];
  // Room for each message's UDP_GRO control message (its segment size).
  alignas(cmsghdr) char controls[kUdpBatchMax][CMSG_SPACE(sizeof(int))];
  for (std::size_t index = 0; index < slots.count; index++) {
    vectors[index].iov_base = slots.slab + (slots.first + index) * slots.stride;
    vectors[index].iov_len = slots.stride;
    msghdr& header = messages[index].msg_hdr;
    header = msghdr{};
    header.msg_iov = &vectors[index];
    header.msg_iovlen = 1;
    if (slots.segments != nullptr) {
      header.msg_control = controls[index];
      header.msg_controllen = sizeof(controls[index]);
    }
    messages[index].msg_len = 0;
  }
  const int received = recvmmsg(fd, messages, static_cast<unsigned int>(slots.count), MSG_DONTWAIT, nullptr);
  if (received < 0) {
    const int error_number = errno;
    if (IsTransient(error_number)) return Sent(0);
    return SystemError(error_number);
  }
  for (int index = 0; index < received; index++) {
    const bool truncated = (messages[index].msg_hdr.msg_flags & MSG_TRUNC) != 0 || messages[index].msg_len > slots.stride;
    slots.lengths[slots.first + index] =
        truncated ? static_cast<std::uint32_t>(slots.stride + 1) : static_cast<std::uint32_t>(messages[index].msg_len);
    if (slots.segments == nullptr) continue;
    std::uint32_t segment_bytes = 0;
    msghdr& header = messages[index].msg_hdr;
    for (cmsghdr* control = CMSG_FIRSTHDR(&header); control != nullptr; control = CMSG_NXTHDR(&header, control)) {
      if (control->cmsg_level != SOL_UDP || control->cmsg_type != UDP_GRO || control->cmsg_len < CMSG_LEN(sizeof(int))) continue;
      int size = 0;
      std::memcpy(&size, CMSG_DATA(control), sizeof(size));
      if (size > 0) segment_bytes = static_cast<std::uint32_t>(size);
    }
    // A segment size at or above the message's length means one datagram.
    if (truncated || segment_bytes >= messages[index].msg_len) segment_bytes = 0;
    slots.segments[slots.first + index] = segment_bytes;
  }
  return Sent(static_cast<std::size_t>(received));
}

#else

bool UdpBatchSupported() { return false; }

UdpOutcome Unsupported() {
  UdpOutcome outcome;
  outcome.status = UdpStatus::kUnsupported;
  outcome.message = "batched UDP I/O needs Linux (sendmmsg/recvmmsg)";
  return outcome;
}

UdpOutcome UdpCheckSocket(int) { return Unsupported(); }
UdpOutcome UdpSendSlots(int, const UdpSendBatch&) { return Unsupported(); }
UdpOutcome UdpReceiveInto(int, const UdpReceiveSlots&) { return Unsupported(); }
UdpOutcome UdpEnableGro(int) { return Unsupported(); }

#endif

}  // namespace sealcast
