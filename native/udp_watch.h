// The Node-API class that tells JavaScript when a UDP socket has datagrams queued (see
// udp_watch.cc).

#ifndef SEALCAST_NATIVE_UDP_WATCH_H_
#define SEALCAST_NATIVE_UDP_WATCH_H_

#include <napi.h>

namespace sealcast_napi {

// The `UdpReadWatch` constructor.
Napi::Function DefineUdpReadWatch(Napi::Env env);

}  // namespace sealcast_napi

#endif  // SEALCAST_NATIVE_UDP_WATCH_H_
