// Small kernels that exercise one emulator feature each (tests/emulator/test_emulator.py).

extern "C" __global__ void axpy(const float* x, float* y, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

// Reverse each block-sized chunk through static shared memory; needs the barrier.
extern "C" __global__ void reverse_block(const int* in, int* out, int n) {
  __shared__ int s[256];
  int base = blockIdx.x * blockDim.x;
  int t = threadIdx.x;
  if (base + t < n) s[t] = in[base + t];
  __syncthreads();
  int m = min((int)blockDim.x, n - base);
  if (t < m) out[base + t] = s[m - 1 - t];
}

// Same through dynamic shared memory.
extern "C" __global__ void reverse_dynamic(const int* in, int* out, int n) {
  extern __shared__ int buf[];
  int base = blockIdx.x * blockDim.x;
  int t = threadIdx.x;
  if (base + t < n) buf[t] = in[base + t];
  __syncthreads();
  int m = min((int)blockDim.x, n - base);
  if (t < m) out[base + t] = buf[m - 1 - t];
}

// Reads one shared float that nobody wrote: must be NaN (the 0xFF fill).
extern "C" __global__ void read_unwritten_shared(float* out) {
  __shared__ float s[64];
  if (threadIdx.x == 0) out[blockIdx.x] = s[5];
  __syncthreads();
  if (threadIdx.x == 0) s[5] = 1.0f;  // a later block must not see this value either
}

// out[tid*4 + k] = shuffles of the lane id
extern "C" __global__ void shuffles(int* out, int width) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  int lane = threadIdx.x % 32;
  int v = lane * 10;
  out[t * 4 + 0] = __shfl_sync(0xffffffffu, v, 3, width);
  out[t * 4 + 1] = __shfl_up_sync(0xffffffffu, v, 2, width);
  out[t * 4 + 2] = __shfl_down_sync(0xffffffffu, v, 5, width);
  out[t * 4 + 3] = __shfl_xor_sync(0xffffffffu, v, 6, width);
}

// Butterfly sum of floats in each warp; partial last warp allowed.
extern "C" __global__ void warp_sum(const float* x, float* out, int n) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  float v = t < n ? x[t] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) out[t / 32] = v;
}

extern "C" __global__ void votes(const int* pred, unsigned* ballot, int* any, int* all) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  int p = pred[t];
  unsigned b = __ballot_sync(0xffffffffu, p);
  int a = __any_sync(0xffffffffu, p);
  int l = __all_sync(0xffffffffu, p);
  __syncwarp();
  if (threadIdx.x % 32 == 0) {
    ballot[t / 32] = b;
    any[t / 32] = a;
    all[t / 32] = l;
  }
}

extern "C" __global__ void sync_counts(const int* pred, int* out) {
  int p = pred[blockIdx.x * blockDim.x + threadIdx.x];
  int c = __syncthreads_count(p);
  int a = __syncthreads_and(p);
  int o = __syncthreads_or(p);
  if (threadIdx.x == 0) {
    out[blockIdx.x * 3 + 0] = c;
    out[blockIdx.x * 3 + 1] = a;
    out[blockIdx.x * 3 + 2] = o;
  }
}

// Threads past n return before the barrier: they must drop out of it.
extern "C" __global__ void early_return_barrier(const float* x, float* out, int n) {
  __shared__ float s[128];
  int t = threadIdx.x;
  if (t >= n) return;
  s[t] = x[t];
  __syncthreads();
  out[t] = s[n - 1 - t];
}

extern "C" __global__ void atomics(float* fsum, int* isum, int* imax, int* imin, int* cas_count, int* exch) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(fsum, 0.5f);
  atomicAdd(isum, t);
  atomicMax(imax, t);
  atomicMin(imin, -t);
  int old = atomicCAS(cas_count, 0, 1);  // exactly one thread wins
  if (old == 0) atomicAdd(cas_count + 1, 1);
  atomicExch(exch, 7);
}

extern "C" __global__ void math_and_vectors(const float4* x, float4* y, float2* z, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float4 v = x[i];
  y[i] = make_float4(__expf(v.x), __logf(fabsf(v.y) + 1.0f), rsqrtf(fabsf(v.z) + 1.0f),
                     __fdividef(erff(v.w), 2.0f));
  float inf = __int_as_float(0x7f800000);
  z[i] = make_float2(fmaxf(v.x, -inf), (float)(__float_as_int(1.0f) == 0x3f800000));
}

extern "C" __global__ void index_3d(int* out) {
  int bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  int tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  int nthreads = blockDim.x * blockDim.y * blockDim.z;
  out[bx * nthreads + tx] = bx * 1000 + tx;
}

// Only half the warp reaches the full-mask shuffle, the others wait at __syncthreads: a bug.
extern "C" __global__ void divergent_shuffle(float* x) {
  float v = x[threadIdx.x];
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  __syncthreads();
  x[threadIdx.x] = v;
}

extern "C" __global__ void scalar_types(float* out, float f, double d, int i, long long l, unsigned u) {
  out[0] = f; out[1] = (float)d; out[2] = (float)i; out[3] = (float)l; out[4] = (float)u;
}

// Partial warps: lanes that do not exist are never read here (reading them is undefined on a GPU).
extern "C" __global__ void warp_broadcast(const float* x, float* out) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  float v = x[t];
  out[t] = __shfl_sync(0xffffffffu, v, 0) + __shfl_up_sync(0xffffffffu, v, 1);
}
