// kvcache4j CUDA kernels: decode attention over a whole layer, flash-decoding style.
//
// Split-K decode attention after FlashDecoding (Dao, Haziza, Massa, Sizov, "Flash-Decoding for
// long-context inference", 2023) and flash-attention's online softmax (Dao et al., 2022): the token
// range of every (query token, KV head) is cut into chunks of a fixed number of slots, one thread
// block per chunk computes a partial (normalised output, log-sum-exp) for the whole GQA group, and a
// second kernel merges the partials by log-sum-exp in chunk order. A fused variant merges one more
// partial set (a CPU-computed sparse part, as in HGCA's hybrid GPU/CPU attention) in the same pass.
//
// Every floating-point step has a fixed order and is either IEEE-defined (add, multiply, divide,
// fmaf) or the Cody-Waite exp below, which is bit-identical to kv-api's SoftmaxExp; the file is
// compiled with -fmad=false so nvcc never contracts a*b+c on its own. The Java class
// io.kvcache4j.cuda.KernelEmulator repeats each kernel step by step; only logf may differ by one ulp
// from the emulation's StrictMath.log.
//
// Block layout of the decode kernels: 4 warps of 32 lanes. A chunk is cut into tiles of 32 slots;
// warp w takes tiles w, w+4, w+8, ... . In a tile lane j scores slot j for every query head of the
// group (a sequential fmaf over the head dimension), the warp takes the tile maximum, rescales its
// running state and adds p_j to a per-lane running sum; the weighted values are accumulated slot by
// slot (j ascending) into per-lane accumulators, lane l owning dimension pairs (2(l+32r), 2(l+32r)+1).
// At the end each warp's lane sums are reduced by the xor butterfly 16, 8, 4, 2, 1 and the four warps
// are merged in warp order.

#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

#define WARPS 4
#define THREADS (WARPS * 32)
#define TILE 32
#define MAX_G 8
#define MAX_D 256
#define MAX_R (MAX_D / 64)
#define MAX_D_INT4 128

// ---------------------------------------------------------------------------------------------
// exp(x) exactly as io.kvcache4j.attention.SoftmaxExp (Cody and Waite, degree-7 Taylor, two scalings).
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float kexp(float x) {
    x = fminf(fmaxf(x, -104.0f), 89.0f);
    const float LOG2E = 0x1.715476p0f;
    const float ROUND = 0x1.8p23f;
    float t = fmaf(x, LOG2E, ROUND);
    float kf = __fsub_rn(t, ROUND);
    int n = __float_as_int(t) - 0x4b400000;
    float r = fmaf(kf, -0x1.62e43p-1f, x);
    r = fmaf(kf, 0x1.05c61p-29f, r);
    float p = fmaf(r, 0x1.a01a02p-13f, 0x1.6c16c2p-10f);
    p = fmaf(p, r, 0x1.111112p-7f);
    p = fmaf(p, r, 0x1.555556p-5f);
    p = fmaf(p, r, 0x1.555556p-3f);
    p = fmaf(p, r, 0x1.0p-1f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int n1 = n >> 1;
    return __fmul_rn(__fmul_rn(p, __int_as_float((n1 + 127) << 23)), __int_as_float((n - n1 + 127) << 23));
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// Slots per chunk for a head that sees 'visible' slots when the launch passes chunk 0: the smallest
// power of two from 1024 to 8192 that cuts it into at most 32 chunks (8192 where none does); a
// function of the visible count alone (KernelEmulator.chunkFor).
__device__ __forceinline__ int chunk_for(int visible) {
    int c = 1024;
    while (c < 8192 && (long long)c * 32 < visible) c <<= 1;
    return c;
}

// Shared state of one decode block (capacity NG query heads of NDIM dimensions).
template <int NG, int NDIM>
struct DecodeSharedT {
    float q[NG * NDIM];                   // scaled queries of the group
    float p[WARPS][NG][TILE];             // weights of the current tile, per warp
    float m[WARPS][NG];                   // running maxima per warp
    float l[WARPS][NG];                   // running sums per warp (after the butterfly)
};
typedef DecodeSharedT<MAX_G, MAX_D> DecodeShared;

// Merges the four warps' states (acc in smem 'accs' [WARPS][G][D]) in warp order and writes the partial.
template <typename S>
__device__ void merge_warps(const S& sh, const float* accs, int G, int D, float* out, float* lse,
                            size_t outStride, size_t lseStride) {
    for (int e = threadIdx.x; e < G * D; e += THREADS) {
        int g = e / D;
        int i = e - g * D;
        float M = -INFINITY;
        for (int w = 0; w < WARPS; ++w) M = fmaxf(M, sh.m[w][g]);
        float L = 0.0f;
        float a = 0.0f;
        for (int w = 0; w < WARPS; ++w) {
            float c = kexp(__fsub_rn(sh.m[w][g], M));
            L = fmaf(sh.l[w][g], c, L);
            a = fmaf(accs[(w * G + g) * D + i], c, a);
        }
        float inv = __fdiv_rn(1.0f, L);
        out[g * outStride + i] = __fmul_rn(a, inv);
        if (i == 0) lse[g * lseStride] = __fadd_rn(M, logf(L));
    }
}

// Decode attention over exact rows (keys and values row-major [slot][D] in T) for one chunk of
// 'chunk' slots (0: chunk_for of the head's visible count).
// Grid (maxChunks, kvHeads, tokens); partial (t, qh, c) at partOut[((t*QH + qh)*maxChunks + c)*D].
// GT and DT fix the group size and head dimension at compile time (0: given at run time, up to
// MAX_G and MAX_D). A fixed shape only sizes registers and shared memory to it and lets the loops
// unroll; every arithmetic step and its order are the same as in the run-time-shaped kernel.
template <typename T, int GT, int DT>
__device__ void decode_exact(const unsigned long long* __restrict__ kvPtrs, const float* __restrict__ queries,
                             const int* __restrict__ visible, float* __restrict__ partOut,
                             float* __restrict__ partLse, int kvHeads, int Grt, int Drt, int chunk,
                             int maxChunks, float scale) {
    constexpr int NG = GT > 0 ? GT : MAX_G;
    constexpr int NDIM = DT > 0 ? DT : MAX_D;
    constexpr int NR = (NDIM + 63) / 64;
    const int G = GT > 0 ? GT : Grt;
    const int D = DT > 0 ? DT : Drt;
    __shared__ DecodeSharedT<NG, NDIM> sh;
    __shared__ float accs[WARPS * NG * NDIM];
    const int c = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int QH = kvHeads * G;
    const int vis = visible[t * kvHeads + h];
    const int ch = chunk > 0 ? chunk : chunk_for(vis);
    const int from = c * ch;
    const int to = min(vis, from + ch);
    const size_t outStride = (size_t)maxChunks * D;
    float* out = partOut + ((size_t)(t * QH + h * G) * maxChunks + c) * D;
    float* lse = partLse + (size_t)(t * QH + h * G) * maxChunks + c;
    if (from >= to) {
        for (int e = threadIdx.x; e < G * D; e += THREADS) {
            int g = e / D;
            int i = e - g * D;
            out[g * outStride + i] = 0.0f;
            if (i == 0) lse[g * maxChunks] = -INFINITY;
        }
        return;
    }
    const float* qsrc = queries + (size_t)(t * QH + h * G) * D;
    for (int e = threadIdx.x; e < G * D; e += THREADS) sh.q[e] = __fmul_rn(qsrc[e], scale);
    __syncthreads();

    const T* K = reinterpret_cast<const T*>(kvPtrs[2 * h]);
    const T* V = reinterpret_cast<const T*>(kvPtrs[2 * h + 1]);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float m[NG], l[NG], acc[NG][NR][2];
#pragma unroll
    for (int g = 0; g < NG; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int r = 0; r < NR; ++r) acc[g][r][0] = acc[g][r][1] = 0.0f;
    }
    const int len = to - from;
    const int tiles = (len + TILE - 1) / TILE;
    for (int tile = warp; tile < tiles; tile += WARPS) {
        const int slot0 = from + tile * TILE;
        const int nValid = min(TILE, to - slot0);
        float s[NG];
#pragma unroll
        for (int g = 0; g < NG; ++g) s[g] = 0.0f;
        if (lane < nValid) {
            const uint4* row = reinterpret_cast<const uint4*>(K + (size_t)(slot0 + lane) * D);
#pragma unroll
            for (int i8 = 0; i8 < D / 8; ++i8) {
                uint4 raw = row[i8];
                const T* k8 = reinterpret_cast<const T*>(&raw);
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    float kv = to_float(k8[e]);
#pragma unroll
                    for (int g = 0; g < NG; ++g)
                        if (g < G) s[g] = fmaf(sh.q[g * D + i8 * 8 + e], kv, s[g]);
                }
            }
        }
#pragma unroll
        for (int g = 0; g < NG; ++g) {
            if (g < G) {
                float sj = lane < nValid ? s[g] : -INFINITY;
                float mNew = fmaxf(m[g], warp_max(sj));
                float corr = kexp(__fsub_rn(m[g], mNew));
                float p = lane < nValid ? kexp(__fsub_rn(sj, mNew)) : 0.0f;
                l[g] = __fadd_rn(__fmul_rn(l[g], corr), p);
#pragma unroll
                for (int r = 0; r < NR; ++r) {
                    acc[g][r][0] = __fmul_rn(acc[g][r][0], corr);
                    acc[g][r][1] = __fmul_rn(acc[g][r][1], corr);
                }
                m[g] = mNew;
                sh.p[warp][g][lane] = p;
            }
        }
        __syncwarp();
#pragma unroll 4
        for (int j = 0; j < nValid; ++j) {
            const T* vrow = V + (size_t)(slot0 + j) * D;
#pragma unroll
            for (int r = 0; r < NR; ++r) {
                int i = 2 * (lane + 32 * r);
                if (i < D) {
                    // one 32-bit load of the pair (D is even, rows 4-byte aligned)
                    uint32_t pair = *reinterpret_cast<const uint32_t*>(vrow + i);
                    const T* v2 = reinterpret_cast<const T*>(&pair);
                    float v0 = to_float(v2[0]);
                    float v1 = to_float(v2[1]);
#pragma unroll
                    for (int g = 0; g < NG; ++g) {
                        if (g < G) {
                            float pj = sh.p[warp][g][j];
                            acc[g][r][0] = fmaf(pj, v0, acc[g][r][0]);
                            acc[g][r][1] = fmaf(pj, v1, acc[g][r][1]);
                        }
                    }
                }
            }
        }
        __syncwarp();
    }
#pragma unroll
    for (int g = 0; g < NG; ++g) {
        if (g < G) {
            float total = warp_sum(l[g]);
            if (lane == 0) {
                sh.m[warp][g] = m[g];
                sh.l[warp][g] = total;
            }
#pragma unroll
            for (int r = 0; r < NR; ++r) {
                int i = 2 * (lane + 32 * r);
                if (i < D) {
                    accs[(warp * G + g) * D + i] = acc[g][r][0];
                    accs[(warp * G + g) * D + i + 1] = acc[g][r][1];
                }
            }
        }
    }
    __syncthreads();
    merge_warps(sh, accs, G, D, out, lse, outStride, maxChunks);
}

extern "C" __global__ void __launch_bounds__(THREADS)
kv_decode_f16(const unsigned long long* kvPtrs, const float* queries, const int* visible, float* partOut,
              float* partLse, int kvHeads, int G, int D, int chunk, int maxChunks, float scale) {
    decode_exact<__half, 0, 0>(kvPtrs, queries, visible, partOut, partLse, kvHeads, G, D, chunk, maxChunks, scale);
}

extern "C" __global__ void __launch_bounds__(THREADS)
kv_decode_bf16(const unsigned long long* kvPtrs, const float* queries, const int* visible, float* partOut,
               float* partLse, int kvHeads, int G, int D, int chunk, int maxChunks, float scale) {
    decode_exact<__nv_bfloat16, 0, 0>(kvPtrs, queries, visible, partOut, partLse, kvHeads, G, D, chunk, maxChunks,
                                      scale);
}

// The same kernels with the group size and head dimension fixed (names kv_decode_{f16,bf16}_gG_dD;
// JCudaDevice launches one of these when the shape matches, the run-time-shaped kernel otherwise).
#define KV_DECODE_FIXED(NAME, T, GG, DD)                                                                    \
    extern "C" __global__ void __launch_bounds__(THREADS, GG <= 4 ? 8 : 4)                                \
    NAME(const unsigned long long* kvPtrs, const float* queries, const int* visible, float* partOut,      \
         float* partLse, int kvHeads, int G, int D, int chunk, int maxChunks, float scale) {              \
        decode_exact<T, GG, DD>(kvPtrs, queries, visible, partOut, partLse, kvHeads, G, D, chunk, maxChunks, \
                                scale);                                                                   \
    }
KV_DECODE_FIXED(kv_decode_f16_g1_d128, __half, 1, 128)
KV_DECODE_FIXED(kv_decode_f16_g2_d32, __half, 2, 32)
KV_DECODE_FIXED(kv_decode_f16_g4_d64, __half, 4, 64)
KV_DECODE_FIXED(kv_decode_f16_g4_d128, __half, 4, 128)
KV_DECODE_FIXED(kv_decode_f16_g8_d128, __half, 8, 128)
KV_DECODE_FIXED(kv_decode_bf16_g1_d128, __nv_bfloat16, 1, 128)
KV_DECODE_FIXED(kv_decode_bf16_g2_d32, __nv_bfloat16, 2, 32)
KV_DECODE_FIXED(kv_decode_bf16_g4_d64, __nv_bfloat16, 4, 64)
KV_DECODE_FIXED(kv_decode_bf16_g4_d128, __nv_bfloat16, 4, 128)
KV_DECODE_FIXED(kv_decode_bf16_g8_d128, __nv_bfloat16, 8, 128)

// ---------------------------------------------------------------------------------------------
// The fixed-shape exact decode (head dimension 128) with every tile staged through shared memory by
// asynchronous copies (cp.async, sm_80+), NU units of one tile's keys or values (32 rows, 8 KiB) per
// warp in a ring, so a warp has NU-1 units in flight while it computes on one: the keys of tile k,
// then its values, then the keys of its next tile, ... Global reads are whole 512-byte runs per warp
// instruction. Key rows sit in shared memory with their 16-byte units swizzled (unit c of row r at
// c ^ (r & 7)) so a lane reading its own row meets no bank conflict; value rows sit as they are and
// lane l reads dimensions 4l..4l+3. The arithmetic is decode_exact's, step for step and in the same
// order (same tiles per warp, same sequential fmaf over the dimensions per slot, same tile maximum,
// rescaling and slot order of the value sums, same warp merge), so its results are bit-identical to
// kv_decode_*_gG_d128 and KernelEmulator needs no change; only where the bytes wait differs.
// Dynamic shared memory: pipe_shared_bytes(G, NU) (set as the function's maximum before launch).
// ---------------------------------------------------------------------------------------------
#define PIPE_D 128
#define PIPE_UNIT_BYTES (TILE * PIPE_D * 2)

__host__ __device__ constexpr int pipe_shared_bytes(int G, int NU) {
    return WARPS * NU * PIPE_UNIT_BYTES      // the rings
           + PIPE_D * G * 4                  // scaled queries, [dimension][group]
           + WARPS * TILE * G * 4            // weights of the current tile, [warp][slot][group]
           + 2 * WARPS * G * 4;              // running maxima and sums per warp
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int srcBytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(srcBytes) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// merge_warps' view of the per-warp maxima and sums in the pipelined kernel's shared memory
template <int NG>
struct PipeStats {
    float (*m)[NG];
    float (*l)[NG];
};

template <int NG>
__device__ void merge_warps_pipe(const PipeStats<NG>& st, const float* accs, float* out, float* lse,
                                 size_t outStride, size_t lseStride) {
    constexpr int D = PIPE_D;
    for (int e = threadIdx.x; e < NG * D; e += THREADS) {
        int g = e / D;
        int i = e - g * D;
        float M = -INFINITY;
        for (int w = 0; w < WARPS; ++w) M = fmaxf(M, st.m[w][g]);
        float L = 0.0f;
        float a = 0.0f;
        for (int w = 0; w < WARPS; ++w) {
            float c = kexp(__fsub_rn(st.m[w][g], M));
            L = fmaf(st.l[w][g], c, L);
            a = fmaf(accs[(w * NG + g) * D + i], c, a);
        }
        float inv = __fdiv_rn(1.0f, L);
        out[g * outStride + i] = __fmul_rn(a, inv);
        if (i == 0) lse[g * lseStride] = __fadd_rn(M, logf(L));
    }
}

template <typename T, int NG, int NU>
__device__ void decode_pipe(const unsigned long long* __restrict__ kvPtrs, const float* __restrict__ queries,
                            const int* __restrict__ visible, float* __restrict__ partOut,
                            float* __restrict__ partLse, int kvHeads, int chunk, int maxChunks, float scale) {
    constexpr int D = PIPE_D;
    extern __shared__ __align__(16) unsigned char pipeSmem[];
    unsigned char* rings = pipeSmem;
    float* qs = reinterpret_cast<float*>(pipeSmem + WARPS * NU * PIPE_UNIT_BYTES);
    float(*ps)[TILE][NG] = reinterpret_cast<float(*)[TILE][NG]>(qs + D * NG);
    float(*sm)[NG] = reinterpret_cast<float(*)[NG]>(reinterpret_cast<float*>(ps) + WARPS * TILE * NG);
    float(*sl)[NG] = sm + WARPS;

    const int c = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int QH = kvHeads * NG;
    const int vis = visible[t * kvHeads + h];
    const int ch = chunk > 0 ? chunk : chunk_for(vis);
    const int from = c * ch;
    const int to = min(vis, from + ch);
    const size_t outStride = (size_t)maxChunks * D;
    float* out = partOut + ((size_t)(t * QH + h * NG) * maxChunks + c) * D;
    float* lse = partLse + (size_t)(t * QH + h * NG) * maxChunks + c;
    if (from >= to) {
        for (int e = threadIdx.x; e < NG * D; e += THREADS) {
            int g = e / D;
            int i = e - g * D;
            out[g * outStride + i] = 0.0f;
            if (i == 0) lse[g * maxChunks] = -INFINITY;
        }
        return;
    }
    const float* qsrc = queries + (size_t)(t * QH + h * NG) * D;
    for (int e = threadIdx.x; e < NG * D; e += THREADS) {
        int g = e / D;
        int i = e - g * D;
        qs[i * NG + g] = __fmul_rn(qsrc[e], scale);
    }
    __syncthreads();

    const T* K = reinterpret_cast<const T*>(kvPtrs[2 * h]);
    const T* V = reinterpret_cast<const T*>(kvPtrs[2 * h + 1]);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    unsigned char* ring = rings + warp * NU * PIPE_UNIT_BYTES;
    const int len = to - from;
    const int tiles = (len + TILE - 1) / TILE;
    const int mine = warp < tiles ? (tiles - warp + WARPS - 1) / WARPS : 0;
    const int units = 2 * mine;

    // issue the copies of unit u (keys of this warp's tile u/2 when u is even, its values when odd)
    auto issue = [&](int u) {
        if (u < units) {
            const int slot0 = from + (warp + WARPS * (u >> 1)) * TILE;
            const int nValid = min(TILE, to - slot0);
            const bool isValue = (u & 1) != 0;
            const unsigned char* src = reinterpret_cast<const unsigned char*>((isValue ? V : K) + (size_t)slot0 * D);
            unsigned char* dst = ring + (u % NU) * PIPE_UNIT_BYTES;
#pragma unroll
            for (int k = 0; k < TILE * D * 2 / 16 / 32; ++k) {
                const int x = lane + 32 * k;  // 16-byte unit x of the tile: row x / 16, column x % 16
                const int row = x >> 4, col = x & 15;
                const int dcol = isValue ? col : (col ^ (row & 7));
                const bool valid = row < nValid;
                cp_async16(dst + row * (D * 2) + dcol * 16, src + (valid ? (size_t)x * 16 : 0), valid ? 16 : 0);
            }
        }
        cp_async_commit();
    };

    float m[NG], l[NG], acc[NG][4];
#pragma unroll
    for (int g = 0; g < NG; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[g][e] = 0.0f;
    }
#pragma unroll
    for (int u = 0; u < NU - 1; ++u) issue(u);
    for (int u = 0; u < units; ++u) {
        __syncwarp();  // every lane is done with the slot the next issue overwrites (unit u-1's)
        issue(u + NU - 1);
        cp_async_wait<NU - 1>();
        __syncwarp();
        const unsigned char* unit = ring + (u % NU) * PIPE_UNIT_BYTES;
        const int slot0 = from + (warp + WARPS * (u >> 1)) * TILE;
        const int nValid = min(TILE, to - slot0);
        if ((u & 1) == 0) {
            float s[NG];
#pragma unroll
            for (int g = 0; g < NG; ++g) s[g] = 0.0f;
            if (lane < nValid) {
                const unsigned char* row = unit + lane * (D * 2);
#pragma unroll
                for (int i8 = 0; i8 < D / 8; ++i8) {
                    uint4 raw = *reinterpret_cast<const uint4*>(row + ((i8 ^ (lane & 7)) * 16));
                    const T* k8 = reinterpret_cast<const T*>(&raw);
#pragma unroll
                    for (int e = 0; e < 8; ++e) {
                        float kv = to_float(k8[e]);
                        const float* qi = qs + (i8 * 8 + e) * NG;
#pragma unroll
                        for (int g = 0; g < NG; ++g) s[g] = fmaf(qi[g], kv, s[g]);
                    }
                }
            }
#pragma unroll
            for (int g = 0; g < NG; ++g) {
                float sj = lane < nValid ? s[g] : -INFINITY;
                float mNew = fmaxf(m[g], warp_max(sj));
                float corr = kexp(__fsub_rn(m[g], mNew));
                float p = lane < nValid ? kexp(__fsub_rn(sj, mNew)) : 0.0f;
                l[g] = __fadd_rn(__fmul_rn(l[g], corr), p);
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[g][e] = __fmul_rn(acc[g][e], corr);
                m[g] = mNew;
                ps[warp][lane][g] = p;
            }
            __syncwarp();
        } else {
#pragma unroll 4
            for (int j = 0; j < nValid; ++j) {
                uint2 raw = *reinterpret_cast<const uint2*>(unit + j * (D * 2) + lane * 8);
                const T* v4 = reinterpret_cast<const T*>(&raw);
                float v[4];
#pragma unroll
                for (int e = 0; e < 4; ++e) v[e] = to_float(v4[e]);
#pragma unroll
                for (int g = 0; g < NG; ++g) {
                    float pj = ps[warp][j][g];
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc[g][e] = fmaf(pj, v[e], acc[g][e]);
                }
            }
        }
    }
    cp_async_wait<0>();
    __syncthreads();  // every warp is done with its ring: the accumulators go where the rings were
    float* accs = reinterpret_cast<float*>(rings);
#pragma unroll
    for (int g = 0; g < NG; ++g) {
        float total = warp_sum(l[g]);
        if (lane == 0) {
            sm[warp][g] = m[g];
            sl[warp][g] = total;
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) accs[(warp * NG + g) * D + 4 * lane + e] = acc[g][e];
    }
    __syncthreads();
    merge_warps_pipe<NG>(PipeStats<NG>{sm, sl}, accs, out, lse, outStride, maxChunks);
}

#define KV_DECODE_PIPE(NAME, T, GG, NU, MINB)                                                            \
    extern "C" __global__ void __launch_bounds__(THREADS, MINB)                                          \
    NAME(const unsigned long long* kvPtrs, const float* queries, const int* visible, float* partOut,    \
         float* partLse, int kvHeads, int G, int D, int chunk, int maxChunks, float scale) {            \
        decode_pipe<T, GG, NU>(kvPtrs, queries, visible, partOut, partLse, kvHeads, chunk, maxChunks, scale); \
    }
KV_DECODE_PIPE(kv_decode_f16_g4_d128_p2, __half, 4, 2, 3)
KV_DECODE_PIPE(kv_decode_f16_g4_d128_p3, __half, 4, 3, 2)
KV_DECODE_PIPE(kv_decode_bf16_g4_d128_p3, __nv_bfloat16, 4, 3, 2)
KV_DECODE_PIPE(kv_decode_f16_g8_d128_p3, __half, 8, 3, 2)
KV_DECODE_PIPE(kv_decode_f16_g1_d128_p3, __half, 1, 3, 2)

// ---------------------------------------------------------------------------------------------
// KIVI int4 decode attention on the packed codes (Liu et al., "KIVI", ICML 2024; layout of
// io.kvcache4j.quantization.KiviHeadStore's quantized groups, stored contiguously per head).
// Group: [key scales D f32][key zeros D f32][value scales G x D/Gv f32][value zeros ...][key codes in
// sub-blocks of 16 tokens, 16 bytes per pair of channels][value rows of 16-byte units, 32 channels each].
// Score of slot t: bias + sum_i fmaf(q_i * ks_i, code_i), bias = sum_i fmaf(q_i, kz_i) (scales and zero
// points folded into the query); values v = fmaf(vs, code, vz). Same blocking as decode_exact; a
// tile of 32 slots never crosses a group (groupTokens and the chunk are multiples of 32; chunk 0 sizes
// the chunks by the visible count, as chunk_for).
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(THREADS)
kv_decode_int4(const unsigned long long* groupPtrs, const float* queries, const int* visible, float* partOut,
               float* partLse, int kvHeads, int G, int D, int chunk, int maxChunks, float scale, int groupTokens,
               int valueGroupChannels) {
    __shared__ DecodeShared sh;
    __shared__ float accs[WARPS * MAX_G * MAX_D_INT4];
    const int c = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int QH = kvHeads * G;
    const int vis = visible[t * kvHeads + h];
    const int ch = chunk > 0 ? chunk : chunk_for(vis);
    const int from = c * ch;
    const int to = min(vis, from + ch);
    const size_t outStride = (size_t)maxChunks * D;
    float* out = partOut + ((size_t)(t * QH + h * G) * maxChunks + c) * D;
    float* lse = partLse + (size_t)(t * QH + h * G) * maxChunks + c;
    if (from >= to) {
        for (int e = threadIdx.x; e < G * D; e += THREADS) {
            int g = e / D;
            int i = e - g * D;
            out[g * outStride + i] = 0.0f;
            if (i == 0) lse[g * maxChunks] = -INFINITY;
        }
        return;
    }
    const float* qsrc = queries + (size_t)(t * QH + h * G) * D;
    for (int e = threadIdx.x; e < G * D; e += THREADS) sh.q[e] = __fmul_rn(qsrc[e], scale);
    __syncthreads();

    const int valueGroups = D / valueGroupChannels;
    const size_t perToken = (size_t)groupTokens * valueGroups;
    const size_t vScaleOff = 8 * (size_t)D;
    const size_t vZeroOff = vScaleOff + 4 * perToken;
    const size_t kCodesOff = vZeroOff + 4 * perToken;
    const size_t keySubBytes = 16 * (size_t)((D + 1) / 2);
    const size_t vCodesOff = kCodesOff + (size_t)((groupTokens + 15) / 16) * keySubBytes;
    const size_t valueRowBytes = 16 * (size_t)((D + 31) / 32);
    const size_t groupBytes = vCodesOff + (size_t)groupTokens * valueRowBytes;
    const unsigned char* base = reinterpret_cast<const unsigned char*>(groupPtrs[h]);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float m[MAX_G], l[MAX_G], acc[MAX_G][2][2];
#pragma unroll
    for (int g = 0; g < MAX_G; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int r = 0; r < 2; ++r) acc[g][r][0] = acc[g][r][1] = 0.0f;
    }
    const int len = to - from;
    const int tiles = (len + TILE - 1) / TILE;
    for (int tile = warp; tile < tiles; tile += WARPS) {
        const int slot0 = from + tile * TILE;
        const int nValid = min(TILE, to - slot0);
        const int group = slot0 / groupTokens;
        const int t0 = slot0 - group * groupTokens;
        const unsigned char* gp = base + (size_t)group * groupBytes;
        const float* ks = reinterpret_cast<const float*>(gp);
        const float* kz = ks + D;
        const float* vs = reinterpret_cast<const float*>(gp + vScaleOff);
        const float* vz = reinterpret_cast<const float*>(gp + vZeroOff);
        float s[MAX_G];
        if (lane < nValid) {
            const int tt = t0 + lane;
            const unsigned char* codes = gp + kCodesOff + (size_t)(tt / 16) * keySubBytes + tt % 16;
#pragma unroll
            for (int g = 0; g < MAX_G; ++g) {
                if (g < G) {
                    float bias = 0.0f;
                    for (int i = 0; i < D; ++i) bias = fmaf(sh.q[g * D + i], kz[i], bias);
                    s[g] = bias;
                }
            }
            for (int i = 0; i < D; ++i) {
                int code = (codes[16 * (i / 2)] >> (4 * (i % 2))) & 15;
                float cf = (float)code;
#pragma unroll
                for (int g = 0; g < MAX_G; ++g)
                    if (g < G) s[g] = fmaf(__fmul_rn(sh.q[g * D + i], ks[i]), cf, s[g]);
            }
        }
#pragma unroll
        for (int g = 0; g < MAX_G; ++g) {
            if (g < G) {
                float sj = lane < nValid ? s[g] : -INFINITY;
                float mNew = fmaxf(m[g], warp_max(sj));
                float corr = kexp(__fsub_rn(m[g], mNew));
                float p = lane < nValid ? kexp(__fsub_rn(sj, mNew)) : 0.0f;
                l[g] = __fadd_rn(__fmul_rn(l[g], corr), p);
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    acc[g][r][0] = __fmul_rn(acc[g][r][0], corr);
                    acc[g][r][1] = __fmul_rn(acc[g][r][1], corr);
                }
                m[g] = mNew;
                sh.p[warp][g][lane] = p;
            }
        }
        __syncwarp();
        for (int j = 0; j < nValid; ++j) {
            const int tt = t0 + j;
            const unsigned char* vrow = gp + vCodesOff + (size_t)tt * valueRowBytes;
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                int i = 2 * (lane + 32 * r);
                if (i < D) {
                    float v[2];
#pragma unroll
                    for (int k = 0; k < 2; ++k) {
                        int ch = i + k;
                        int code = (vrow[16 * (ch / 32) + ch % 16] >> (4 * ((ch % 32) / 16))) & 15;
                        int q = ch / valueGroupChannels;
                        v[k] = fmaf(vs[tt * valueGroups + q], (float)code, vz[tt * valueGroups + q]);
                    }
#pragma unroll
                    for (int g = 0; g < MAX_G; ++g) {
                        if (g < G) {
                            float pj = sh.p[warp][g][j];
                            acc[g][r][0] = fmaf(pj, v[0], acc[g][r][0]);
                            acc[g][r][1] = fmaf(pj, v[1], acc[g][r][1]);
                        }
                    }
                }
            }
        }
        __syncwarp();
    }
#pragma unroll
    for (int g = 0; g < MAX_G; ++g) {
        if (g < G) {
            float total = warp_sum(l[g]);
            if (lane == 0) {
                sh.m[warp][g] = m[g];
                sh.l[warp][g] = total;
            }
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                int i = 2 * (lane + 32 * r);
                if (i < D) {
                    accs[(warp * G + g) * D + i] = acc[g][r][0];
                    accs[(warp * G + g) * D + i + 1] = acc[g][r][1];
                }
            }
        }
    }
    __syncthreads();
    merge_warps(sh, accs, G, D, out, lse, outStride, maxChunks);
}

// ---------------------------------------------------------------------------------------------
// kv_decode_int4 for group 4, head dimension 128 and at most 8 value groups per token, with each tile's
// bytes (the KIVI group's key scales and zero points, the tile's two 16-token key sub-blocks, its value
// codes, scales and zero points: one 7,200-byte unit) staged through shared memory by cp.async in a
// ring of NU units per warp, as in decode_pipe. Per tile the warp folds the key scales into the query
// once (q_i * ks_i, the product kv_decode_int4 forms per slot) and lanes 0..3 form the bias of their
// query head (the same sequential fmaf over the dimensions); a lane scores its slot from shared
// memory, codes turned to floats exactly; for values lane l owns the four channels of code bytes 2l
// and 2l+1. Every arithmetic step and its order are kv_decode_int4's, so the results are bit-identical
// to it (checked on the GPU) and KernelEmulator.decodeInt4 stays the twin.
// ---------------------------------------------------------------------------------------------
#define I4_KS 0
#define I4_KZ 512
#define I4_KC 1024                      // sub-block 0 at +0, sub-block 1 at +1040 (bank offset)
#define I4_VC 3104
#define I4_VS 5152
#define I4_VZ 6176
#define I4_UNIT 7200
#define I4_MAX_VG 8

__host__ __device__ constexpr int int4_pipe_shared_bytes(int NU) {
    return WARPS * NU * I4_UNIT          // the rings
           + 2 * PIPE_D * 4 * 4          // scaled queries, [dimension][group] and [group][dimension]
           + WARPS * PIPE_D * 4 * 4      // key-scale-folded queries per warp, [dimension][group]
           + WARPS * TILE * 4 * 4        // weights of the current tile, [warp][slot][group]
           + 3 * WARPS * 4 * 4;          // bias, running maxima and sums per warp
}

__device__ __forceinline__ float code_float(unsigned c) {
    // exact: 2^23 + c has c in its low mantissa bits
    return __fsub_rn(__uint_as_float(0x4b000000u | c), 8388608.0f);
}

template <int NU>
__device__ void decode_int4_pipe(const unsigned long long* __restrict__ groupPtrs,
                                 const float* __restrict__ queries, const int* __restrict__ visible,
                                 float* __restrict__ partOut, float* __restrict__ partLse, int kvHeads, int chunk,
                                 int maxChunks, float scale, int groupTokens, int valueGroupChannels) {
    constexpr int NG = 4, D = PIPE_D;
    extern __shared__ __align__(16) unsigned char i4Smem[];
    unsigned char* rings = i4Smem;
    float* qs = reinterpret_cast<float*>(i4Smem + WARPS * NU * I4_UNIT);  // [i][g]
    float* qg = qs + D * NG;                                               // [g][i]
    float* qkAll = qg + D * NG;                                            // [warp][i][g]
    float(*ps)[TILE][NG] = reinterpret_cast<float(*)[TILE][NG]>(qkAll + WARPS * D * NG);
    float(*sb)[NG] = reinterpret_cast<float(*)[NG]>(reinterpret_cast<float*>(ps) + WARPS * TILE * NG);
    float(*sm)[NG] = sb + WARPS;
    float(*sl)[NG] = sm + WARPS;

    const int c = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int QH = kvHeads * NG;
    const int vis = visible[t * kvHeads + h];
    const int ch = chunk > 0 ? chunk : chunk_for(vis);
    const int from = c * ch;
    const int to = min(vis, from + ch);
    const size_t outStride = (size_t)maxChunks * D;
    float* out = partOut + ((size_t)(t * QH + h * NG) * maxChunks + c) * D;
    float* lse = partLse + (size_t)(t * QH + h * NG) * maxChunks + c;
    if (from >= to) {
        for (int e = threadIdx.x; e < NG * D; e += THREADS) {
            int g = e / D;
            int i = e - g * D;
            out[g * outStride + i] = 0.0f;
            if (i == 0) lse[g * maxChunks] = -INFINITY;
        }
        return;
    }
    const float* qsrc = queries + (size_t)(t * QH + h * NG) * D;
    for (int e = threadIdx.x; e < NG * D; e += THREADS) {
        int g = e / D;
        int i = e - g * D;
        float v = __fmul_rn(qsrc[e], scale);
        qs[i * NG + g] = v;
        qg[e] = v;
    }
    __syncthreads();

    const int valueGroups = D / valueGroupChannels;
    const size_t perToken = (size_t)groupTokens * valueGroups;
    const size_t vScaleOff = 8 * (size_t)D;
    const size_t vZeroOff = vScaleOff + 4 * perToken;
    const size_t kCodesOff = vZeroOff + 4 * perToken;
    const size_t keySubBytes = 16 * (size_t)(D / 2);
    const size_t vCodesOff = kCodesOff + (size_t)(groupTokens / 16) * keySubBytes;
    const size_t valueRowBytes = 16 * (size_t)(D / 32);
    const size_t groupBytes = vCodesOff + (size_t)groupTokens * valueRowBytes;
    const unsigned char* base = reinterpret_cast<const unsigned char*>(groupPtrs[h]);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    unsigned char* ring = rings + warp * NU * I4_UNIT;
    float* qk = qkAll + warp * D * NG;
    const int len = to - from;
    const int tiles = (len + TILE - 1) / TILE;
    const int mine = warp < tiles ? (tiles - warp + WARPS - 1) / WARPS : 0;
    const int vsBytes = TILE * valueGroups * 4;  // a multiple of 128 (valueGroups >= 1)

    auto issue = [&](int u) {
        if (u < mine) {
            const int slot0 = from + (warp + WARPS * u) * TILE;
            const int group = slot0 / groupTokens;
            const int t0 = slot0 - group * groupTokens;
            const unsigned char* gp = base + (size_t)group * groupBytes;
            unsigned char* dst = ring + (u % NU) * I4_UNIT;
            // key scales and zero points: 1,024 bytes, 64 units
            for (int x = lane; x < 64; x += 32) cp_async16(dst + I4_KS + 16 * x, gp + 16 * x, 16);
            // the two key sub-blocks: 2 x 1,024 bytes, the second 16 bytes further on in shared memory
            const unsigned char* kc = gp + kCodesOff + (size_t)(t0 / 16) * keySubBytes;
            for (int x = lane; x < 128; x += 32)
                cp_async16(dst + I4_KC + 16 * x + (x >= 64 ? 16 : 0), kc + 16 * x, 16);
            // value codes of the 32 rows: 2,048 bytes
            const unsigned char* vc = gp + vCodesOff + (size_t)t0 * valueRowBytes;
            for (int x = lane; x < 128; x += 32) cp_async16(dst + I4_VC + 16 * x, vc + 16 * x, 16);
            // value scales and zero points of the 32 rows
            const unsigned char* vsrc = gp + vScaleOff + (size_t)t0 * valueGroups * 4;
            const unsigned char* zsrc = gp + vZeroOff + (size_t)t0 * valueGroups * 4;
            for (int x = lane; x < vsBytes / 16; x += 32) {
                cp_async16(dst + I4_VS + 16 * x, vsrc + 16 * x, 16);
                cp_async16(dst + I4_VZ + 16 * x, zsrc + 16 * x, 16);
            }
        }
        cp_async_commit();
    };

    // the lane's value channels: low and high nibbles of code bytes 2l and 2l+1
    const int cu = lane >> 3, ck = 2 * (lane & 7);
    const int ch0 = 32 * cu + ck, ch1 = ch0 + 1, ch2 = ch0 + 16, ch3 = ch0 + 17;
    const int vq0 = ch0 / valueGroupChannels, vq1 = ch1 / valueGroupChannels;
    const int vq2 = ch2 / valueGroupChannels, vq3 = ch3 / valueGroupChannels;

    float m[NG], l[NG], acc[NG][4];
#pragma unroll
    for (int g = 0; g < NG; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[g][e] = 0.0f;
    }
#pragma unroll
    for (int u = 0; u < NU - 1; ++u) issue(u);
    for (int u = 0; u < mine; ++u) {
        __syncwarp();
        issue(u + NU - 1);
        cp_async_wait<NU - 1>();
        __syncwarp();
        const unsigned char* unit = ring + (u % NU) * I4_UNIT;
        const float* ks = reinterpret_cast<const float*>(unit + I4_KS);
        const float* kz = reinterpret_cast<const float*>(unit + I4_KZ);
        const int slot0 = from + (warp + WARPS * u) * TILE;
        const int nValid = min(TILE, to - slot0);
        // fold the key scales into the query: qk[i][g] = q[g][i] * ks[i]
#pragma unroll
        for (int r = 0; r < D / 32; ++r) {
            const int i = lane + 32 * r;
            const float k = ks[i];
#pragma unroll
            for (int g = 0; g < NG; ++g) qk[i * NG + g] = __fmul_rn(qs[i * NG + g], k);
        }
        if (lane < NG) {
            const float* q = qg + lane * D;
            float bias = 0.0f;
#pragma unroll 8
            for (int i = 0; i < D; ++i) bias = fmaf(q[i], kz[i], bias);
            sb[warp][lane] = bias;
        }
        __syncwarp();
        float s[NG];
        if (lane < nValid) {
#pragma unroll
            for (int g = 0; g < NG; ++g) s[g] = sb[warp][g];
            const unsigned char* codes = unit + I4_KC + (lane >> 4) * 1040 + (lane & 15);
#pragma unroll 8
            for (int pr = 0; pr < D / 2; ++pr) {
                const unsigned b = codes[16 * pr];
                const float c0 = code_float(b & 15u);
                const float c1 = code_float(b >> 4);
                const float4 qa = *reinterpret_cast<const float4*>(qk + (2 * pr) * NG);
                const float4 qb = *reinterpret_cast<const float4*>(qk + (2 * pr + 1) * NG);
                s[0] = fmaf(qa.x, c0, s[0]);
                s[1] = fmaf(qa.y, c0, s[1]);
                s[2] = fmaf(qa.z, c0, s[2]);
                s[3] = fmaf(qa.w, c0, s[3]);
                s[0] = fmaf(qb.x, c1, s[0]);
                s[1] = fmaf(qb.y, c1, s[1]);
                s[2] = fmaf(qb.z, c1, s[2]);
                s[3] = fmaf(qb.w, c1, s[3]);
            }
        }
#pragma unroll
        for (int g = 0; g < NG; ++g) {
            float sj = lane < nValid ? s[g] : -INFINITY;
            float mNew = fmaxf(m[g], warp_max(sj));
            float corr = kexp(__fsub_rn(m[g], mNew));
            float p = lane < nValid ? kexp(__fsub_rn(sj, mNew)) : 0.0f;
            l[g] = __fadd_rn(__fmul_rn(l[g], corr), p);
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[g][e] = __fmul_rn(acc[g][e], corr);
            m[g] = mNew;
            ps[warp][lane][g] = p;
        }
        __syncwarp();
        const float* vsS = reinterpret_cast<const float*>(unit + I4_VS);
        const float* vzS = reinterpret_cast<const float*>(unit + I4_VZ);
#pragma unroll 4
        for (int j = 0; j < nValid; ++j) {
            const unsigned short b2 = *reinterpret_cast<const unsigned short*>(unit + I4_VC + j * 64 + 2 * lane);
            const unsigned lo = b2 & 0xffu, hi = b2 >> 8;
            const float* vsr = vsS + j * valueGroups;
            const float* vzr = vzS + j * valueGroups;
            float v[4];
            v[0] = fmaf(vsr[vq0], code_float(lo & 15u), vzr[vq0]);
            v[1] = fmaf(vsr[vq1], code_float(hi & 15u), vzr[vq1]);
            v[2] = fmaf(vsr[vq2], code_float(lo >> 4), vzr[vq2]);
            v[3] = fmaf(vsr[vq3], code_float(hi >> 4), vzr[vq3]);
            const float4 pj = *reinterpret_cast<const float4*>(&ps[warp][j][0]);
            const float pg[4] = {pj.x, pj.y, pj.z, pj.w};
#pragma unroll
            for (int g = 0; g < NG; ++g) {
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[g][e] = fmaf(pg[g], v[e], acc[g][e]);
            }
        }
    }
    cp_async_wait<0>();
    __syncthreads();
    float* accs = reinterpret_cast<float*>(rings);
    const int chans[4] = {ch0, ch1, ch2, ch3};
#pragma unroll
    for (int g = 0; g < NG; ++g) {
        float total = warp_sum(l[g]);
        if (lane == 0) {
            sm[warp][g] = m[g];
            sl[warp][g] = total;
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) accs[(warp * NG + g) * D + chans[e]] = acc[g][e];
    }
    __syncthreads();
    merge_warps_pipe<NG>(PipeStats<NG>{sm, sl}, accs, out, lse, outStride, maxChunks);
}

extern "C" __global__ void __launch_bounds__(THREADS, 2)
kv_decode_int4_g4_d128_p3(const unsigned long long* groupPtrs, const float* queries, const int* visible,
                          float* partOut, float* partLse, int kvHeads, int G, int D, int chunk, int maxChunks,
                          float scale, int groupTokens, int valueGroupChannels) {
    decode_int4_pipe<3>(groupPtrs, queries, visible, partOut, partLse, kvHeads, chunk, maxChunks, scale, groupTokens,
                        valueGroupChannels);
}

// ---------------------------------------------------------------------------------------------
// Log-sum-exp combine of the chunk partials of every (token, query head), in chunk order, optionally
// followed by one extra partial per (token, query head) (the fused GPU-dense + CPU-sparse merge).
// L = M + log(sum_c exp(lse_c - M)), o = sum_c exp(lse_c - L) * o_c. Grid (tokens * QH), 128 threads.
// ---------------------------------------------------------------------------------------------
__device__ void combine_impl(const float* partOut, const float* partLse, const float* extraOut,
                             const float* extraLse, float* out, float* lse, int maxChunks, int D) {
    const int row = blockIdx.x;
    const float* pl = partLse + (size_t)row * maxChunks;
    const float* po = partOut + (size_t)row * maxChunks * D;
    const float xl = extraLse != nullptr ? extraLse[row] : -INFINITY;
    float M = -INFINITY;
    for (int c = 0; c < maxChunks; ++c) M = fmaxf(M, pl[c]);
    M = fmaxf(M, xl);
    if (M == -INFINITY) {
        for (int i = threadIdx.x; i < D; i += blockDim.x) out[(size_t)row * D + i] = 0.0f;
        if (threadIdx.x == 0) lse[row] = -INFINITY;
        return;
    }
    float sum = 0.0f;
    for (int c = 0; c < maxChunks; ++c)
        if (pl[c] != -INFINITY) sum = __fadd_rn(sum, kexp(__fsub_rn(pl[c], M)));
    if (xl != -INFINITY) sum = __fadd_rn(sum, kexp(__fsub_rn(xl, M)));
    const float L = __fadd_rn(M, logf(sum));
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float a = 0.0f;
        for (int c = 0; c < maxChunks; ++c)
            if (pl[c] != -INFINITY) a = fmaf(kexp(__fsub_rn(pl[c], L)), po[(size_t)c * D + i], a);
        if (xl != -INFINITY) a = fmaf(kexp(__fsub_rn(xl, L)), extraOut[(size_t)row * D + i], a);
        out[(size_t)row * D + i] = a;
    }
    if (threadIdx.x == 0) lse[row] = L;
}

extern "C" __global__ void kv_combine(const float* partOut, const float* partLse, float* out, float* lse,
                                      int maxChunks, int D) {
    combine_impl(partOut, partLse, nullptr, nullptr, out, lse, maxChunks, D);
}

extern "C" __global__ void kv_combine_hybrid(const float* partOut, const float* partLse, const float* extraOut,
                                             const float* extraLse, float* out, float* lse, int maxChunks,
                                             int D) {
    combine_impl(partOut, partLse, extraOut, extraLse, out, lse, maxChunks, D);
}

// ---------------------------------------------------------------------------------------------
// Append and compaction. Append: rows of f32 keys [tokens][D] then values [tokens][D] (staged on the
// device) rounded to nearest-even into the store's rows [row0, row0 + tokens). Gather: dst row j =
// src row sources[j] for j < moved, rows of 'elems' 16-bit elements (eviction compaction; the caller
// gathers into scratch and copies back, since sources may overlap destinations).
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void kv_append_f16(const float* src, int tokens, int D, __half* K, __half* V, int row0) {
    const size_t n = (size_t)tokens * D;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        K[(size_t)row0 * D + e] = __float2half_rn(src[e]);
        V[(size_t)row0 * D + e] = __float2half_rn(src[n + e]);
    }
}

extern "C" __global__ void kv_append_bf16(const float* src, int tokens, int D, __nv_bfloat16* K,
                                          __nv_bfloat16* V, int row0) {
    const size_t n = (size_t)tokens * D;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        K[(size_t)row0 * D + e] = __float2bfloat16_rn(src[e]);
        V[(size_t)row0 * D + e] = __float2bfloat16_rn(src[n + e]);
    }
}

extern "C" __global__ void kv_gather_rows(const unsigned short* src, unsigned short* dst, const int* sources,
                                          int moved, int elems) {
    const size_t n = (size_t)moved * elems;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        size_t j = e / elems;
        size_t i = e - j * elems;
        dst[e] = src[(size_t)sources[j] * elems + i];
    }
}
