// emu.h -- a SIMT emulator that lets g++ compile and run unmodified CUDA C kernels on the CPU.
//
// Used only by tests (dlgpu/testing/emu/__init__.py builds `g++ -include emu.h kernel.cu`).
// Model, and why:
//   * Every CUDA thread of a block is a real std::thread, so __syncthreads, warp shuffles and
//     votes are real blocking rendezvous and ThreadSanitizer sees the same happens-before edges
//     a GPU barrier gives.  The threads are created once per launch and step through the
//     blocks of the grid together, one block after another (no inter-block concurrency).
//   * __shared__ is a `static` in the section "emu_shared"; before each block the section
//     and the dynamic shared memory are filled with 0xFF bytes (NaN as float, -1 as int) so a
//     read of shared memory the block never wrote shows up in the numbers.  In ASan builds
//     (EMU_ASAN) the section is not used, because ASan does not guard sectioned globals.
//   * A thread that returns drops out of the block barrier and of its warp's collectives,
//     as an exited GPU thread does; so `if (i >= n) return;` before a barrier works.
//   * Warp collectives need converged masks (the mask must cover every live lane).
//   * If every live thread waits at a barrier and nothing moves, the launch is aborted and
//     reported (Python raises EmuLaunchError) instead of hanging the test run.
// Limits: blocks are sequential, x86 memory order is stronger than the GPU's, fast-math
// intrinsics map to precise libm, no inline PTX, no tensor cores.
#pragma once
#define __EMU__ 1

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <math.h>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// ---------------------------------------------------------------- CUDA keywords
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __launch_bounds__(...)
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#ifdef EMU_ASAN
#define __shared__ static
#else
#define __shared__ static __attribute__((section("emu_shared")))
#endif

// ---------------------------------------------------------------- vector types
struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
#define EMU_VEC2(T, N, A) struct alignas(A) N { T x, y; };
#define EMU_VEC3(T, N) struct N { T x, y, z; };
#define EMU_VEC4(T, N, A) struct alignas(A) N { T x, y, z, w; };
EMU_VEC2(float, float2, 8) EMU_VEC3(float, float3) EMU_VEC4(float, float4, 16)
EMU_VEC2(int, int2, 8) EMU_VEC3(int, int3) EMU_VEC4(int, int4, 16)
EMU_VEC2(unsigned, uint2, 8) EMU_VEC4(unsigned, uint4, 16)
EMU_VEC2(double, double2, 16) EMU_VEC4(double, double4, 16)
EMU_VEC2(signed char, char2, 2) EMU_VEC4(signed char, char4, 4)
EMU_VEC2(unsigned char, uchar2, 2) EMU_VEC4(unsigned char, uchar4, 4)
EMU_VEC2(long long, longlong2, 16)
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---------------------------------------------------------------- math and bit intrinsics
template <class T> inline T emu_bitcast_(const void* p) { T t; std::memcpy(&t, p, sizeof t); return t; }
inline float __int_as_float(int i) { return emu_bitcast_<float>(&i); }
inline int __float_as_int(float f) { return emu_bitcast_<int>(&f); }
inline float __uint_as_float(unsigned i) { return emu_bitcast_<float>(&i); }
inline unsigned __float_as_uint(float f) { return emu_bitcast_<unsigned>(&f); }
inline double __longlong_as_double(long long i) { return emu_bitcast_<double>(&i); }
inline long long __double_as_longlong(double d) { return emu_bitcast_<long long>(&d); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
template <class T> inline T __ldg(const T* p) { return *p; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
// CUDA's min/max accept mixed arithmetic types.
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) { using C = std::common_type_t<A, B>; return (C)b < (C)a ? (C)b : (C)a; }
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) { using C = std::common_type_t<A, B>; return (C)a < (C)b ? (C)b : (C)a; }

// ---------------------------------------------------------------- atomics
template <class T> inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <class T> inline T atomicSub(T* p, T v) { return std::atomic_ref<T>(*p).fetch_sub(v); }
template <class T> inline T atomicExch(T* p, T v) { return std::atomic_ref<T>(*p).exchange(v); }
template <class T> inline T atomicAnd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_and(v); }
template <class T> inline T atomicOr(T* p, T v) { return std::atomic_ref<T>(*p).fetch_or(v); }
template <class T> inline T atomicXor(T* p, T v) { return std::atomic_ref<T>(*p).fetch_xor(v); }
template <class T> inline T atomicCAS(T* p, T cmp, T v) {
  std::atomic_ref<T>(*p).compare_exchange_strong(cmp, v);
  return cmp;  // the old value, as on the GPU
}
template <class T> inline T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {}
  return old;
}
template <class T> inline T atomicMin(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (v < old && !a.compare_exchange_weak(old, v)) {}
  return old;
}
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  std::atomic_ref<unsigned> a(*p);
  unsigned old = a.load();
  while (!a.compare_exchange_weak(old, old >= limit ? 0u : old + 1u)) {}
  return old;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---------------------------------------------------------------- runtime
#ifndef EMU_ASAN
extern "C" char __start_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_emu_shared[] __attribute__((weak, visibility("hidden")));
#endif

namespace emu {

struct Aborted {};  // thrown inside kernel threads to unwind them when a launch is aborted

struct Launch;
inline thread_local Launch* t_launch = nullptr;
inline thread_local unsigned t_lane = 0, t_warp = 0;

// A barrier whose party can shrink (threads that exit) and that aggregates one value per
// arrival: counts/and/or for __syncthreads_*, ballot bits and 32 exchange slots for warps.
// Results live in double buffers indexed by the phase parity: phase g+2 cannot start before
// every thread of phase g has arrived at phase g+1, i.e. after it has read its result.
struct Barrier {
  std::mutex m;
  std::condition_variable cv;
  unsigned expected = 0, arrived = 0;
  unsigned waiting = 0;  // threads blocked in this phase (counted in Launch::blocked until released)
  unsigned long long gen = 0;
  unsigned live_mask = 0;  // warps: lanes still running
  int acc_count = 0, acc_and = 1, acc_or = 0;
  unsigned acc_ballot = 0, acc_arrivals = 0;
  int res_count[2] = {0, 0}, res_and[2] = {1, 1}, res_or[2] = {0, 0};
  unsigned res_ballot[2] = {0, 0}, res_arrivals[2] = {0, 0};
  unsigned long long slots[2][32] = {};
  void (*on_complete)(Launch*) = nullptr;

  void reset(unsigned n, unsigned mask) {
    std::lock_guard<std::mutex> l(m);
    expected = n; arrived = 0; live_mask = mask;
    acc_count = 0; acc_and = 1; acc_or = 0; acc_ballot = 0; acc_arrivals = 0;
  }
  void complete_locked(Launch* L);
  // Returns the parity slot holding this phase's results.
  int wait(Launch* L, unsigned lane, int pred, unsigned long long slot);
  void drop(Launch* L, unsigned lane);
};

struct Launch {
  dim3 grid, block;
  unsigned nthreads = 0, nwarps = 0;
  unsigned long long nblocks = 0;
  std::atomic<unsigned long long> cur_block{0};
  void (*fn)(void**) = nullptr;
  void** args = nullptr;
  unsigned char* dyn_smem = nullptr;
  size_t dyn_smem_bytes = 0;
  Barrier block_bar, launch_bar;
  std::vector<Barrier> warp_bars;
  std::atomic<bool> abort{false};
  std::atomic<unsigned long long> progress{0};
  std::atomic<int> blocked{0}, finished{0};
  std::mutex err_m;
  std::string error;

  explicit Launch(unsigned nwarps_) : warp_bars(nwarps_) {}
  void fail(const std::string& msg) {
    {
      std::lock_guard<std::mutex> l(err_m);
      if (error.empty()) error = msg;
    }
    abort.store(true);
  }
  unsigned warp_mask(unsigned w) const {
    unsigned n = std::min(32u, nthreads - 32u * w);
    return n == 32 ? 0xffffffffu : ((1u << n) - 1u);
  }
  // Run by the last thread to arrive at the end of a block (and by the host before block 0).
  void prepare_block() {
#ifndef EMU_ASAN
    if (__start_emu_shared && __stop_emu_shared > __start_emu_shared)
      std::memset(__start_emu_shared, 0xFF, (size_t)(__stop_emu_shared - __start_emu_shared));
#endif
    if (dyn_smem) std::memset(dyn_smem, 0xFF, dyn_smem_bytes);
    block_bar.reset(nthreads, 0);
    for (unsigned w = 0; w < nwarps; ++w) {
      unsigned mask = warp_mask(w);
      warp_bars[w].reset((unsigned)__builtin_popcount(mask), mask);
    }
  }
  static void next_block(Launch* L) {
    unsigned long long b = L->cur_block.load() + 1;
    L->cur_block.store(b);
    if (b < L->nblocks) L->prepare_block();
  }
};

inline void Barrier::complete_locked(Launch* L) {
  int p = (int)(gen & 1);
  res_count[p] = acc_count; res_and[p] = acc_and; res_or[p] = acc_or;
  res_ballot[p] = acc_ballot; res_arrivals[p] = acc_arrivals;
  acc_count = 0; acc_and = 1; acc_or = 0; acc_ballot = 0; acc_arrivals = 0;
  arrived = 0;
  // Release the waiters from the watchdog's count here, not when they wake: a starved thread that has
  // not run since the phase completed must not look blocked.
  if (waiting) L->blocked.fetch_sub((int)waiting);
  waiting = 0;
  if (on_complete) on_complete(L);
  gen += 1;
  L->progress.fetch_add(1);
  cv.notify_all();
}

inline int Barrier::wait(Launch* L, unsigned lane, int pred, unsigned long long slot) {
  std::unique_lock<std::mutex> l(m);
  if (L->abort.load()) throw Aborted{};
  unsigned long long g = gen;
  int p = (int)(g & 1);
  slots[p][lane & 31] = slot;
  acc_count += pred ? 1 : 0;
  acc_and &= pred ? 1 : 0;
  acc_or |= pred ? 1 : 0;
  if (pred) acc_ballot |= 1u << (lane & 31);
  acc_arrivals |= 1u << (lane & 31);
  if (++arrived >= expected) {
    complete_locked(L);
    return p;
  }
  L->blocked.fetch_add(1);
  waiting += 1;
  while (gen == g) {
    if (L->abort.load()) {
      waiting -= 1;
      L->blocked.fetch_sub(1);
      throw Aborted{};
    }
    cv.wait_for(l, std::chrono::milliseconds(50));
  }
  return p;
}

inline void Barrier::drop(Launch* L, unsigned lane) {
  std::lock_guard<std::mutex> l(m);
  if (expected > 0) expected -= 1;
  live_mask &= ~(1u << (lane & 31));
  if (arrived > 0 && arrived >= expected) complete_locked(L);
}

[[noreturn]] inline void fail_here(const std::string& msg) {
  t_launch->fail(msg);
  throw Aborted{};
}

inline Barrier& warp_bar() { return t_launch->warp_bars[t_warp]; }

inline void check_mask(unsigned mask, const char* what) {
  Barrier& b = warp_bar();
  unsigned live;
  {
    std::lock_guard<std::mutex> l(b.m);
    live = b.live_mask;
  }
  if ((mask & live) != live) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s with mask 0x%08x but live lanes 0x%08x in warp %u of block (%u,%u,%u): "
                  "only converged (full) masks are supported by the emulator",
                  what, mask, live, t_warp, blockIdx.x, blockIdx.y, blockIdx.z);
    fail_here(buf);
  }
}

inline void* dynamic_smem() { return t_launch ? (void*)t_launch->dyn_smem : nullptr; }

template <class T> inline T shfl_impl(unsigned mask, T v, int lane_of(int, int, int), int arg, int width,
                                      const char* what) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  check_mask(mask, what);
  if (width <= 0 || width > 32 || (width & (width - 1))) fail_here(std::string(what) + ": width must be a power of 2 <= 32");
  unsigned long long raw = 0;
  std::memcpy(&raw, &v, sizeof(T));
  Barrier& b = warp_bar();
  int p = b.wait(t_launch, t_lane, 1, raw);
  int src = lane_of((int)t_lane, arg, width);
  unsigned long long got;
  {
    std::lock_guard<std::mutex> l(b.m);
    got = b.slots[p][src & 31];
    if (!(b.res_arrivals[p] & (1u << (src & 31)))) got = raw;  // inactive source lane: own value
  }
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}
inline int lane_idx(int lane, int src, int width) { return (lane / width) * width + (src & (width - 1)); }
inline int lane_up(int lane, int d, int width) { int s = lane - d; return s < (lane / width) * width ? lane : s; }
inline int lane_down(int lane, int d, int width) { int s = lane + d; return s >= (lane / width + 1) * width ? lane : s; }
inline int lane_xor(int lane, int m, int width) { int s = lane ^ m; return s >= (lane / width + 1) * width ? lane : s; }

}  // namespace emu

// ---------------------------------------------------------------- barriers and warp collectives
inline void __syncthreads() { emu::t_launch->block_bar.wait(emu::t_launch, emu::t_lane, 1, 0); }
inline int __syncthreads_count(int pred) {
  emu::Barrier& b = emu::t_launch->block_bar;
  int p = b.wait(emu::t_launch, emu::t_lane, pred, 0);
  std::lock_guard<std::mutex> l(b.m);
  return b.res_count[p];
}
inline int __syncthreads_and(int pred) {
  emu::Barrier& b = emu::t_launch->block_bar;
  int p = b.wait(emu::t_launch, emu::t_lane, pred, 0);
  std::lock_guard<std::mutex> l(b.m);
  return b.res_and[p];
}
inline int __syncthreads_or(int pred) {
  emu::Barrier& b = emu::t_launch->block_bar;
  int p = b.wait(emu::t_launch, emu::t_lane, pred, 0);
  std::lock_guard<std::mutex> l(b.m);
  return b.res_or[p];
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  emu::check_mask(mask, "__syncwarp");
  emu::warp_bar().wait(emu::t_launch, emu::t_lane, 1, 0);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  emu::check_mask(mask, "__ballot_sync");
  emu::Barrier& b = emu::warp_bar();
  int p = b.wait(emu::t_launch, emu::t_lane, pred, 0);
  std::lock_guard<std::mutex> l(b.m);
  return b.res_ballot[p] & mask;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
  emu::check_mask(mask, "__all_sync");
  emu::Barrier& b = emu::warp_bar();
  int p = b.wait(emu::t_launch, emu::t_lane, pred, 0);
  std::lock_guard<std::mutex> l(b.m);
  unsigned part = b.res_arrivals[p] & mask;
  return (b.res_ballot[p] & part) == part;
}
inline unsigned __activemask() {
  emu::Barrier& b = emu::warp_bar();
  std::lock_guard<std::mutex> l(b.m);
  return b.live_mask;  // approximate: lanes not yet exited
}
template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return emu::shfl_impl(mask, v, emu::lane_idx, src, width, "__shfl_sync");
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
  return emu::shfl_impl(mask, v, emu::lane_up, (int)d, width, "__shfl_up_sync");
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
  return emu::shfl_impl(mask, v, emu::lane_down, (int)d, width, "__shfl_down_sync");
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
  return emu::shfl_impl(mask, v, emu::lane_xor, m, width, "__shfl_xor_sync");
}

// ---------------------------------------------------------------- launching
namespace emu {

template <class T> constexpr const char* sig_code() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_pointer_v<U>) return "p";
  else if constexpr (std::is_same_v<U, float>) return "f4";
  else if constexpr (std::is_same_v<U, double>) return "f8";
  else if constexpr (std::is_same_v<U, bool>) return "b1";
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U>)
    return sizeof(U) == 1 ? "i1" : sizeof(U) == 2 ? "i2" : sizeof(U) == 4 ? "i4" : "i8";
  else if constexpr (std::is_integral_v<U>)
    return sizeof(U) == 1 ? "u1" : sizeof(U) == 2 ? "u2" : sizeof(U) == 4 ? "u4" : "u8";
  else return "?";  // structs by value are not supported by the Python side
}

template <class... A> std::string signature(void (*)(A...)) {
  std::string s;
  ((s += sig_code<A>(), s += ","), ...);
  if (!s.empty()) s.pop_back();
  return s;
}

template <class... A, std::size_t... I>
inline void invoke_impl(void (*f)(A...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
template <class... A> inline void invoke(void (*f)(A...), void** args) {
  invoke_impl(f, args, std::index_sequence_for<A...>{});
}

inline void thread_main(Launch* L, unsigned tid) {
  t_launch = L;
  t_lane = tid % 32;
  t_warp = tid / 32;
  threadIdx.x = tid % L->block.x;
  threadIdx.y = (tid / L->block.x) % L->block.y;
  threadIdx.z = tid / (L->block.x * L->block.y);
  blockDim = L->block;
  gridDim = L->grid;
  for (;;) {
    unsigned long long b = L->cur_block.load();  // stable: written only while every thread waits
    if (b >= L->nblocks || L->abort.load()) break;
    blockIdx.x = (unsigned)(b % L->grid.x);
    blockIdx.y = (unsigned)((b / L->grid.x) % L->grid.y);
    blockIdx.z = (unsigned)(b / ((unsigned long long)L->grid.x * L->grid.y));
    try {
      L->fn(L->args);
    } catch (Aborted&) {
      break;
    } catch (std::exception& e) {
      L->fail(std::string("exception in kernel thread: ") + e.what());
      break;
    }
    L->block_bar.drop(L, t_lane);
    L->warp_bars[t_warp].drop(L, t_lane);
    try {
      L->launch_bar.wait(L, t_lane, 1, 0);
    } catch (Aborted&) {
      break;
    }
  }
  L->finished.fetch_add(1);
  L->progress.fetch_add(1);
}

inline std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

// Returns 0 on success; otherwise writes a message into err.
inline int launch(void (*fn)(void**), const unsigned* grid, const unsigned* block, size_t smem, void** args,
                  double deadlock_seconds, char* err, int errlen) {
  auto report = [&](const std::string& s) {
    std::snprintf(err, (size_t)errlen, "%s", s.c_str());
    return 1;
  };
  unsigned long long nthreads = (unsigned long long)block[0] * block[1] * block[2];
  size_t static_smem = 0;
#ifndef EMU_ASAN
  if (__start_emu_shared) static_smem = (size_t)(__stop_emu_shared - __start_emu_shared);
#endif
  if (block[0] < 1 || block[1] < 1 || block[2] < 1 || block[0] > 1024 || block[1] > 1024 || block[2] > 64 ||
      nthreads > 1024 || grid[0] < 1 || grid[1] < 1 || grid[2] < 1 || grid[0] > 0x7fffffffu ||
      grid[1] > 65535 || grid[2] > 65535 || smem + static_smem > 227u * 1024u) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "invalid launch configuration: grid=(%u,%u,%u) block=(%u,%u,%u) (%llu threads, max 1024; "
                  "block.z max 64; grid.y/z max 65535) shared_mem=%zu dynamic + %zu static bytes (max 232448)",
                  grid[0], grid[1], grid[2], block[0], block[1], block[2], nthreads, smem, static_smem);
    return report(buf);
  }
  std::lock_guard<std::mutex> serial(launch_mutex());
  unsigned nwarps = (unsigned)((nthreads + 31) / 32);
  Launch L(nwarps);
  L.grid = dim3(grid[0], grid[1], grid[2]);
  L.block = dim3(block[0], block[1], block[2]);
  L.nthreads = (unsigned)nthreads;
  L.nwarps = nwarps;
  L.nblocks = (unsigned long long)grid[0] * grid[1] * grid[2];
  L.fn = fn;
  L.args = args;
  L.dyn_smem_bytes = smem;
  L.dyn_smem = smem ? static_cast<unsigned char*>(::operator new(smem, std::align_val_t(256))) : nullptr;
  L.launch_bar.on_complete = &Launch::next_block;
  L.launch_bar.reset(L.nthreads, 0);
  L.prepare_block();

  std::vector<std::thread> threads;
  threads.reserve(nthreads);
  try {
    for (unsigned t = 0; t < nthreads; ++t) threads.emplace_back(thread_main, &L, t);
  } catch (std::exception& e) {
    L.fail(std::string("could not start threads: ") + e.what());
  }
  // Watchdog: every live thread blocked at a barrier with no phase completing means no thread
  // can ever release the others.
  auto last_change = std::chrono::steady_clock::now();
  unsigned long long last_progress = L.progress.load();
  bool warned = false;
  while (L.finished.load() < (int)threads.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    unsigned long long pr = L.progress.load();
    auto now = std::chrono::steady_clock::now();
    if (pr != last_progress) {
      last_progress = pr;
      last_change = now;
      continue;
    }
    double idle = std::chrono::duration<double>(now - last_change).count();
    int live = (int)threads.size() - L.finished.load();
    if (L.blocked.load() >= live && live > 0 && idle >= deadlock_seconds && !L.abort.load()) {
      unsigned in_block = 0, in_warp = 0;
      {
        std::lock_guard<std::mutex> l(L.block_bar.m);
        in_block = L.block_bar.arrived;
      }
      for (auto& w : L.warp_bars) {
        std::lock_guard<std::mutex> l(w.m);
        in_warp += w.arrived;
      }
      unsigned long long b = L.cur_block.load();
      char buf[400];
      std::snprintf(buf, sizeof buf,
                    "deadlock: all %d live threads of block %llu (of %llu) wait at barriers and none can "
                    "proceed: %u at __syncthreads, %u at warp collectives (divergent __syncthreads or a "
                    "full-mask shuffle/vote not reached by every lane?)",
                    live, b, L.nblocks, in_block, in_warp);
      L.fail(buf);
    } else if (!warned && idle >= 10.0 * std::max(1.0, deadlock_seconds)) {
      std::fprintf(stderr,
                   "emu: warning: kernel made no progress for %.0f s (spin-wait on another block? blocks "
                   "run sequentially here)\n", idle);
      warned = true;
    }
    if (L.abort.load()) {
      for (Barrier* b : {&L.block_bar, &L.launch_bar}) {
        std::lock_guard<std::mutex> l(b->m);
        b->cv.notify_all();
      }
      for (auto& w : L.warp_bars) {
        std::lock_guard<std::mutex> l(w.m);
        w.cv.notify_all();
      }
    }
  }
  for (auto& t : threads) t.join();
  if (L.dyn_smem) ::operator delete(L.dyn_smem, std::align_val_t(256));
  if (!L.error.empty()) return report(L.error);
  return 0;
}

}  // namespace emu

// One exported launcher and one signature string per extern "C" kernel; the Python side
// appends EMU_EXPORT_KERNEL(name) lines after the kernel source.
#define EMU_EXPORT_KERNEL(name)                                                                       \
  static void emu_trampoline_##name(void** a) { emu::invoke(&name, a); }                              \
  extern "C" __attribute__((visibility("default"))) int emu_launch_##name(                           \
      const unsigned* g, const unsigned* b, size_t smem, void** args, double dl, char* err, int n) { \
    return emu::launch(&emu_trampoline_##name, g, b, smem, args, dl, err, n);                         \
  }                                                                                                   \
  extern "C" __attribute__((visibility("default"))) const char* emu_signature_##name() {             \
    static const std::string s = emu::signature(&name);                                              \
    return s.c_str();                                                                                 \
  }
