// Batched UDP I/O for the data plane: one sendmmsg per chunk of a sealed slab and one recvmmsg
// per drain of a receive slab, on a socket that node:dgram created, bound and configured.
//
// Plain C++ with no Node-API types. Every function checks its arguments itself (the JS layer
// validated them already) and reports a bad call as an outcome instead of touching memory
// outside the caller's arrays. The socket is only borrowed: nothing here opens, closes or
// configures it, so multicast interface, TTL and membership stay exactly as node:dgram set them.

#ifndef SEALCAST_NATIVE_UDP_H_
#define SEALCAST_NATIVE_UDP_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace sealcast {

// The most datagrams one call sends or receives. It bounds the message arrays, which live on
// the calling thread's stack (about 80 bytes a message), and stays below the kernel's
// UIO_MAXIOV (1024), the most sendmmsg/recvmmsg handle in one call.
constexpr std::size_t kUdpBatchMax = 256;

// Largest UDP payload over IPv4.
constexpr std::size_t kUdpDatagramBytesMax = 65507;
// Largest receive slot: 64 KiB holds any IPv4 UDP datagram, so nothing is ever truncated.
constexpr std::size_t kUdpSlotBytesMax = 65536;

// Batched I/O exists on Linux only; elsewhere every call reports kUnsupported.
bool UdpBatchSupported();

enum class UdpStatus {
  kOk,           // `count` datagrams were moved (possibly 0 when the socket was not ready)
  kBadArgument,  // the call broke a precondition; `message` says which
  kNotUdp,       // the descriptor is not a datagram socket
  kSystem,       // the system call failed; `error_number` is errno
  kUnsupported,  // no sendmmsg/recvmmsg on this platform
};

struct UdpOutcome {
  UdpStatus status = UdpStatus::kOk;
  std::size_t count = 0;
  int error_number = 0;
  std::string message;
};

// Checks that `fd` is an open datagram socket (SO_TYPE == SOCK_DGRAM).
UdpOutcome UdpCheckSocket(int fd);

// The datagrams of a sealed slab to send: slot i of [first, first + count) is the slab bytes
// [layout[3i], layout[3i] + layout[3i+1] + layout[3i+2] + tag_bytes), i.e. header (AAD),
// payload and tag, the layout the AEAD batch calls use.
struct UdpSendBatch {
  const std::uint8_t* slab;
  std::size_t slab_bytes;
  const std::uint32_t* layout;
  std::size_t layout_words;
  std::size_t first;
  std::size_t count;
  std::size_t tag_bytes;
  // Destination, host byte order. It must be an IPv4 multicast group (224.0.0.0/4): this path
  // exists to reach the group the socket was set up for and nothing else.
  std::uint32_t group_address;
  std::uint16_t port;
  // Hand runs of equal-sized datagrams that lie back to back in the slab to the kernel as one
  // UDP GSO send (UDP_SEGMENT): the stack then handles a run of up to kUdpSegmentsMax
  // datagrams once, and the datagrams on the wire are the same as without it.
  bool segment;
};

// At most this many datagrams per GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or more).
constexpr std::size_t kUdpSegmentsMax = 64;

// Sends up to min(count, kUdpBatchMax) datagrams with one sendmmsg(MSG_DONTWAIT). `count` in
// the outcome is in datagrams also when runs went as GSO sends (a run is sent whole or not at
// all). A kernel or device that refuses GSO fails the call with kSystem (EIO, EINVAL,
// ENOPROTOOPT or EOPNOTSUPP) before anything was sent; the caller then sends without. When the
// socket buffer is full (EAGAIN, ENOBUFS) or a send is interrupted, it returns kOk with the
// number sent so far, possibly 0; the caller waits briefly and sends the rest. Any other
// failure with nothing sent is kSystem; after a partial send it returns the partial count and
// the error repeats on the next call.
UdpOutcome UdpSendSlots(int fd, const UdpSendBatch& batch);

// Turns on receive-side UDP GRO (UDP_GRO, Linux 5.0): a GSO send that stays whole on its way
// (loopback, veth, a bridge) is then queued as one message holding up to 64 datagrams back to
// back, instead of being cut into one queued datagram each, and a receive reports its segment
// size. kOk with count 1 when it is on, count 0 when the kernel lacks it.
UdpOutcome UdpEnableGro(int fd);

// Receive slots: slot i (i in [first, first + count)) is the slab bytes [i * stride, (i + 1) *
// stride). lengths[i] receives the message's length; a message longer than the slot is
// reported as stride + 1 (truncated: the caller drops it as malformed). With `segments`, a GRO
// socket's message of several datagrams sets segments[i] to their size (every datagram of the
// message but the last has it); 0 means the message is one datagram.
struct UdpReceiveSlots {
  std::uint8_t* slab;
  std::size_t slab_bytes;
  std::size_t stride;
  std::uint32_t* lengths;
  std::size_t lengths_count;
  std::size_t first;
  std::size_t count;
  std::uint32_t* segments;  // nullable
  std::size_t segments_count;
};

// Receives up to min(count, kUdpBatchMax) queued datagrams with one recvmmsg(MSG_DONTWAIT) and
// never waits: an empty queue is kOk with count 0.
UdpOutcome UdpReceiveInto(int fd, const UdpReceiveSlots& slots);

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_UDP_H_
