// Argument helpers for the Node-API bindings: one JS call per kernel, arrays passed as typed arrays
// (no copies), sizes checked against the typed array's length so a bad call is an exception, not a crash.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace as {

inline void fail(const Napi::CallbackInfo& info, const std::string& msg) {
  throw Napi::TypeError::New(info.Env(), msg);
}

// Typed-array argument `i` of element type T (`kind` names it, e.g. "a Float32Array") with at least `need`
// elements (need < 0: no check).
template <class T>
T* typed(const Napi::CallbackInfo& info, size_t i, int64_t need, const char* what, napi_typedarray_type type,
         const char* kind) {
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
    fail(info, std::string("native: ") + what + " must be " + kind);
  auto a = info[i].As<Napi::TypedArrayOf<T>>();
  if (need >= 0 && static_cast<int64_t>(a.ElementLength()) < need)
    fail(info, std::string("native: ") + what + " has " + std::to_string(a.ElementLength()) +
                   " elements, needs " + std::to_string(need));
  return a.Data();
}

inline float* f32(const Napi::CallbackInfo& info, size_t i, int64_t need, const char* what) {
  return typed<float>(info, i, need, what, napi_float32_array, "a Float32Array");
}

inline int32_t* i32(const Napi::CallbackInfo& info, size_t i, int64_t need, const char* what) {
  return typed<int32_t>(info, i, need, what, napi_int32_array, "an Int32Array");
}

inline uint16_t* u16(const Napi::CallbackInfo& info, size_t i, int64_t need, const char* what) {
  return typed<uint16_t>(info, i, need, what, napi_uint16_array, "a Uint16Array");
}

inline double num(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(info, std::string("native: ") + what + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

inline int64_t int_(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double d = num(info, i, what);
  if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d)))
    fail(info, std::string("native: ") + what + " must be a non-negative integer");
  return static_cast<int64_t>(d);
}

inline bool flag(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() && info[i].ToBoolean(); }

void register_matmul(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);
void register_quant(Napi::Env env, Napi::Object exports);

}  // namespace as
