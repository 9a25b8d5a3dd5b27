// The Node-API class over control_listener.h (see control_binding.cc).

#ifndef SEALCAST_NATIVE_CONTROL_BINDING_H_
#define SEALCAST_NATIVE_CONTROL_BINDING_H_

#include <napi.h>

namespace sealcast_napi {

// The `ControlListener` constructor, and the constants its TypeScript wrapper reads.
Napi::Function DefineControlListener(Napi::Env env);
Napi::Object ControlListenerConstants(Napi::Env env);

}  // namespace sealcast_napi

#endif  // SEALCAST_NATIVE_CONTROL_BINDING_H_
