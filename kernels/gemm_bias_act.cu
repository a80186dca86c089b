// gemm_bias_act.cu -- SGEMM with bias and activation fused into the epilogue, and the fused backward
// of bias + activation (float32).
//
// Contract (reference: dlgpu/backend/cpu.py dense_forward / dense_backward / activation_grad):
//   gemm_bias_act: C = act(op(A) @ op(B) + bias), optionally Z = op(A) @ op(B) + bias (pre-activation)
//     op(A) is (M, K): A stored (M, K) row-major, or (K, M) when trans_a (so op(A) = A^T).
//     op(B) is (K, N): B stored (K, N) row-major, or (N, K) when trans_b.
//     C, Z: (M, N) row-major.  bias: (N,) when has_bias.  Any M, N, K >= 1 (K = 0 gives act(bias)).
//     act codes: 0 linear, 1 relu, 2 sigmoid, 3 tanh, 4 gelu (erf), 5 leaky_relu(alpha).
//     Pointers that are not used (bias without has_bias, Z without store_z) are never dereferenced.
//   bias_act_backward: dz = dy * act'(z, y) (act' as in activations.cu: from y for relu/sigmoid/tanh,
//     from z for gelu/leaky_relu) for dy, z, y, dz (M, N); and, when want_db, per-column partial sums
//     partial[s, n] = sum of dz[m, n] over the rows m of split s (rows_per_split rows each).
//   column_sum: out[n] = sum_s partial[s, n]  (the wrapper then has db; two tiny passes, deterministic,
//     no atomics).
//   dW = X^T dZ and dX = dZ W^T are gemm_bias_act launches with trans_a / trans_b.
//
// GEMM tiling (why these numbers):
//   * gemm_bias_act: block tile 128 x 128, K tile 8, 256 threads; each thread owns an 8 x 8 register
//     micro-tile: 64 FMAs per 16 shared-memory floats read per k step, enough arithmetic intensity to
//     be FMA-bound rather than shared-memory-bound.  The micro-tile is split in two 4-wide halves 64
//     apart (rows ty*4 and 64 + ty*4, cols tx*4 and 64 + tx*4) so each half is one float4 shared load
//     and a warp's loads hit distinct banks.
//   * gemm_bias_act_64: block tile 64 x 64, K tile 16, 4 x 4 per thread, same code (template
//     gemm_tile<BT, BK>): 4x the blocks for problems too small to fill the GPU with 128 x 128 tiles.
//   * shared tiles are stored k-major (As[k][m], Bs[k][n]) so the inner loop reads float4s along m / n.
//   * double buffering: the next K tile is fetched from global memory into registers while the current
//     one is multiplied, then stored to the other shared buffer; one __syncthreads per K tile.
//     Shared memory: 2 buffers x 2 operands x 1024 floats = 16 KiB per block (both variants).
//   * global loads are float4 when the operand's leading dimension is a multiple of 4, the base is
//     16-byte aligned and the 4 elements are in range; otherwise 4 scalar loads with bounds checks
//     (zeros outside the matrix, so partial tiles add nothing).
//   * __launch_bounds__(256, 2): at most 128 registers per thread, two blocks per SM.
//   * epilogue: + bias, store Z if asked, act, float4 stores where N % 4 == 0.
// No CUDA headers; +inf would be __int_as_float(0x7f800000).

#define ACT_LINEAR 0
#define ACT_RELU 1
#define ACT_SIGMOID 2
#define ACT_TANH 3
#define ACT_GELU 4
#define ACT_LEAKY_RELU 5

// Same functions as activations.cu (kept in sync; both are tested against dlgpu.backend.cpu).
__device__ __forceinline__ float act_apply(int act, float x, float alpha) {
  switch (act) {
    case ACT_RELU: return x > 0.0f ? x : 0.0f;
    case ACT_SIGMOID: {
      float e = expf(-fabsf(x));
      return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
    case ACT_TANH: return tanhf(x);
    case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case ACT_LEAKY_RELU: return x > 0.0f ? x : alpha * x;
    default: return x;
  }
}

__device__ __forceinline__ float act_grad(int act, float x, float y, float alpha) {
  switch (act) {
    case ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    case ACT_SIGMOID: return y * (1.0f - y);
    case ACT_TANH: return 1.0f - y * y;
    case ACT_GELU: {
      float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
      return cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);
    }
    case ACT_LEAKY_RELU: return x > 0.0f ? 1.0f : alpha;
    default: return 1.0f;
  }
}

#define NTHREADS 256

// Loads X[row][col .. col+3] of a rows x cols row-major matrix (leading dimension ld); zeros outside.
__device__ __forceinline__ void load4(const float* __restrict__ X, int ld, int rows, int cols, int row, int col,
                                      bool vec, float r[4]) {
  if (row < rows && vec && col + 3 < cols) {
    const float4 v = *(const float4*)(X + (long long)row * ld + col);
    r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      r[i] = (row < rows && col + i < cols) ? X[(long long)row * ld + col + i] : 0.0f;
  }
}

// One K tile of one operand is BT x BK = 1024 floats, 4 per thread (BT = BM or BN):
//   "along k"  (A stored (M,K), B stored (N,K)): thread loads row tid/(BK/4), k (tid%(BK/4))*4 .. +3
//   "along mn" (A stored (K,M), B stored (K,N)): thread loads k tid/(BT/4), m/n (tid%(BT/4))*4 .. +3
// Both read 16-byte runs of consecutive addresses: float4 loads, full 32-byte sectors.
template <int BT, int BK>
__device__ __forceinline__ void fetch_tile(const float* __restrict__ X, bool along_k, int ld, int mn_size, int K,
                                           int mn0, int k0, bool vec, float r[4]) {
  const int tid = threadIdx.x;
  if (along_k) load4(X, ld, mn_size, K, mn0 + tid / (BK / 4), k0 + (tid % (BK / 4)) * 4, vec, r);
  else load4(X, ld, K, mn_size, k0 + tid / (BT / 4), mn0 + (tid % (BT / 4)) * 4, vec, r);
}

template <int BT, int BK>
__device__ __forceinline__ void store_tile(float (*S)[BT], bool along_k, const float r[4]) {
  const int tid = threadIdx.x;
  if (along_k) {
    const int m = tid / (BK / 4), k = (tid % (BK / 4)) * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) S[k + i][m] = r[i];
  } else {
    *(float4*)&S[tid / (BT / 4)][(tid % (BT / 4)) * 4] = make_float4(r[0], r[1], r[2], r[3]);
  }
}

__device__ __forceinline__ void store_out4(float* __restrict__ P, int N, int m, int n, bool vec, const float v[4]) {
  float* p = P + (long long)m * N + n;
  if (vec && n + 3 < N) {
    *(float4*)p = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (n + j < N) p[j] = v[j];
  }
}

__device__ __forceinline__ bool aligned16(const void* p) { return (((unsigned long long)p) & 15ull) == 0ull; }

// The block computes a BT x BT tile of C with 256 threads in a 16 x 16 grid (ty, tx); each thread
// owns TT x TT outputs, TT = BT / 16, held as TT/4 x TT/4 float4 groups spaced BT / (TT/4) apart.
template <int BT, int BK>
__device__ __forceinline__ void gemm_tile(const float* __restrict__ A, const float* __restrict__ B,
                                          const float* __restrict__ bias, float* __restrict__ C,
                                          float* __restrict__ Z, int M, int N, int K, int trans_a, int trans_b,
                                          int has_bias, int act, float alpha, int store_z) {
  static_assert(BT * BK == 4 * NTHREADS, "each thread loads exactly one float4 per operand and K tile");
  constexpr int TT = BT / 16;       // outputs per thread per dimension
  constexpr int G = TT / 4;         // float4 groups per dimension
  constexpr int GS = BT / G;        // spacing of the groups
  __shared__ __align__(16) float As[2][BK][BT];
  __shared__ __align__(16) float Bs[2][BK][BT];

  const int tid = threadIdx.x;
  const int tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * BT, n0 = blockIdx.x * BT;
  const bool a_along_k = !trans_a, b_along_k = trans_b != 0;
  const int lda = trans_a ? M : K, ldb = trans_b ? K : N;
  const bool vec_a = aligned16(A) && (lda & 3) == 0;
  const bool vec_b = aligned16(B) && (ldb & 3) == 0;

  float acc[TT][TT];
#pragma unroll
  for (int i = 0; i < TT; ++i)
#pragma unroll
    for (int j = 0; j < TT; ++j) acc[i][j] = 0.0f;

  float ra[4], rb[4];
  fetch_tile<BT, BK>(A, a_along_k, lda, M, K, m0, 0, vec_a, ra);
  fetch_tile<BT, BK>(B, b_along_k, ldb, N, K, n0, 0, vec_b, rb);
  store_tile<BT, BK>(As[0], a_along_k, ra);
  store_tile<BT, BK>(Bs[0], b_along_k, rb);
  __syncthreads();

  const int ntiles = (K + BK - 1) / BK;
  for (int t = 0; t < ntiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ntiles;
    if (more) {  // global -> registers for the next tile, overlapped with the math below
      fetch_tile<BT, BK>(A, a_along_k, lda, M, K, m0, (t + 1) * BK, vec_a, ra);
      fetch_tile<BT, BK>(B, b_along_k, ldb, N, K, n0, (t + 1) * BK, vec_b, rb);
    }
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TT], b[TT];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float4 av = *(const float4*)&As[cur][k][g * GS + ty * 4];
        const float4 bv = *(const float4*)&Bs[cur][k][g * GS + tx * 4];
        a[4 * g] = av.x; a[4 * g + 1] = av.y; a[4 * g + 2] = av.z; a[4 * g + 3] = av.w;
        b[4 * g] = bv.x; b[4 * g + 1] = bv.y; b[4 * g + 2] = bv.z; b[4 * g + 3] = bv.w;
      }
#pragma unroll
      for (int i = 0; i < TT; ++i)
#pragma unroll
        for (int j = 0; j < TT; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) {  // the other buffer was last read before the previous barrier: safe to overwrite
      store_tile<BT, BK>(As[cur ^ 1], a_along_k, ra);
      store_tile<BT, BK>(Bs[cur ^ 1], b_along_k, rb);
    }
    __syncthreads();
  }

  const bool vec_c = aligned16(C) && (N & 3) == 0 && (!store_z || aligned16(Z));
#pragma unroll
  for (int i = 0; i < TT; ++i) {
    const int m = m0 + (i / 4) * GS + ty * 4 + (i % 4);
    if (m >= M) continue;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int n = n0 + g * GS + tx * 4;
      if (n >= N) continue;
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = acc[i][g * 4 + j] + ((has_bias && n + j < N) ? bias[n + j] : 0.0f);
      if (store_z) store_out4(Z, N, m, n, vec_c, v);
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = act_apply(act, v[j], alpha);
      store_out4(C, N, m, n, vec_c, v);
    }
  }
}

// 128 x 128 tiles, K tile 8, 8 x 8 outputs per thread: the large-problem kernel.
extern "C" __global__ void __launch_bounds__(256, 2)
gemm_bias_act(const float* __restrict__ A, const float* __restrict__ B, const float* __restrict__ bias,
              float* __restrict__ C, float* __restrict__ Z, int M, int N, int K, int trans_a, int trans_b,
              int has_bias, int act, float alpha, int store_z) {
  gemm_tile<128, 8>(A, B, bias, C, Z, M, N, K, trans_a, trans_b, has_bias, act, alpha, store_z);
}

// 64 x 64 tiles, K tile 16, 4 x 4 outputs per thread: four times as many blocks, for problems whose
// 128 x 128 grid would leave most SMs idle (small batches, narrow layers).
extern "C" __global__ void __launch_bounds__(256)
gemm_bias_act_64(const float* __restrict__ A, const float* __restrict__ B, const float* __restrict__ bias,
                 float* __restrict__ C, float* __restrict__ Z, int M, int N, int K, int trans_a, int trans_b,
                 int has_bias, int act, float alpha, int store_z) {
  gemm_tile<64, 16>(A, B, bias, C, Z, M, N, K, trans_a, trans_b, has_bias, act, alpha, store_z);
}

// grid (ceil(N/32), splits), block (32, 8): threadIdx.x walks columns (coalesced rows of dy/dz),
// threadIdx.y strides rows inside the split; the 8 partial column sums meet in shared memory.
extern "C" __global__ void bias_act_backward(const float* __restrict__ dy, const float* __restrict__ z,
                                             const float* __restrict__ y, float* __restrict__ dz,
                                             float* __restrict__ partial, int M, int N, int act, float alpha,
                                             int rows_per_split, int want_db) {
  __shared__ float sums[8][33];  // 33: no bank conflicts in the column-wise read below
  const int n = blockIdx.x * 32 + threadIdx.x;
  const int r0 = blockIdx.y * rows_per_split;
  const int r1 = min(M, r0 + rows_per_split);
  const bool from_z = act == ACT_GELU || act == ACT_LEAKY_RELU;
  const bool from_y = act == ACT_RELU || act == ACT_SIGMOID || act == ACT_TANH;
  float s = 0.0f;
  if (n < N) {
    for (int m = r0 + threadIdx.y; m < r1; m += 8) {
      const long long i = (long long)m * N + n;
      const float g = dy[i] * act_grad(act, from_z ? z[i] : 0.0f, from_y ? y[i] : 0.0f, alpha);
      dz[i] = g;
      s += g;
    }
  }
  if (!want_db) return;  // uniform over the grid: every thread leaves, no barrier is skipped
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && n < N) {
    float t = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; ++k) t += sums[k][threadIdx.x];
    partial[(long long)blockIdx.y * N + n] = t;
  }
}

// One thread per column: out[n] = sum over splits of partial[s, n].
extern "C" __global__ void column_sum(const float* __restrict__ partial, float* __restrict__ out, int splits, int N) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  float t = 0.0f;
  for (int s = 0; s < splits; ++s) t += partial[(long long)s * N + n];
  out[n] = t;
}
