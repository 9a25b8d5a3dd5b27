// Argument readers shared by the Node-API layers (binding.cc, control_binding.cc): each reads
// one JS value as what a native call needs, or throws a TypeError/RangeError naming the value
// and returns false.

#ifndef SEALCAST_NATIVE_NAPI_ARGS_H_
#define SEALCAST_NATIVE_NAPI_ARGS_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace sealcast_napi {

// A typed array's element data, length in elements, and whether the value had the wanted type.
template <typename T>
struct ArrayView {
  T* data = nullptr;
  std::size_t length = 0;
};

// Reads `value` as a typed array of exactly `wanted` type (a Buffer is a Uint8Array; a
// Uint8ClampedArray is not). Throws a TypeError naming `name` otherwise.
template <typename T>
inline bool ReadTypedArray(Napi::Env env, Napi::Value value, napi_typedarray_type wanted, const char* type_name,
                    const char* name, ArrayView<T>* out) {
  bool is_typed_array = false;
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array) {
    Napi::TypeError::New(env, std::string(name) + " must be a " + type_name).ThrowAsJavaScriptException();
    return false;
  }
  napi_typedarray_type type;
  std::size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) != napi_ok || type != wanted) {
    Napi::TypeError::New(env, std::string(name) + " must be a " + type_name).ThrowAsJavaScriptException();
    return false;
  }
  out->data = static_cast<T*>(data);
  out->length = length;
  return true;
}

// Reads an integer in [min, max]; throws a TypeError or RangeError naming `name` otherwise.
inline bool ReadInteger(Napi::Env env, Napi::Value value, const char* name, double min, double max, double* out) {
  if (!value.IsNumber()) {
    Napi::TypeError::New(env, std::string(name) + " must be an integer").ThrowAsJavaScriptException();
    return false;
  }
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= min && number <= max) || number != static_cast<double>(static_cast<std::int64_t>(number))) {
    Napi::RangeError::New(env, std::string(name) + " must be an integer between " + std::to_string(static_cast<std::int64_t>(min)) +
                                   " and " + std::to_string(static_cast<std::int64_t>(max)))
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = number;
  return true;
}

}  // namespace sealcast_napi

#endif  // SEALCAST_NATIVE_NAPI_ARGS_H_
