// The afterscale native addon: kernel bindings (bind_matmul.cc, bind_ops.cc) plus a few controls.
#include <napi.h>

#include "bind.h"
#include "kernels.h"
#include "threadpool.h"

namespace {

Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), as::kernels().isa); }

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), as::num_threads()); }

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  as::set_num_threads(static_cast<int>(as::num(info, 0, "threads")));
  return Napi::Number::New(info.Env(), as::num_threads());
}

Napi::Value SelectIsa(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) as::fail(info, "native: selectIsa takes a string");
  return Napi::Boolean::New(info.Env(), as::select_isa(info[0].As<Napi::String>().Utf8Value().c_str()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("isa", Napi::Function::New(env, Isa));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("selectIsa", Napi::Function::New(env, SelectIsa));
  as::register_matmul(env, exports);
  as::register_ops(env, exports);
  as::register_quant(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(afterscale_native, Init)
