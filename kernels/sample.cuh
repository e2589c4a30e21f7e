// Shared device helpers: the index of a thread's element, half <-> float without cuda_fp16.h
// (inline PTX works under both nvcc and NVRTC with no include path; the host emulation of
// streamden.cuda.emulate converts in software instead), and the bilinear sampler of warp_torch.
#pragma once

// The element this thread computes in a 1-D launch of `total` threads (grid and block from
// streamden.cuda.module.launch_config), or -1 for a thread past the end, which returns.
__device__ __forceinline__ long long element_index(long long total) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    return i < total ? i : -1;
}

// Where element i of a stack of (h, w) planes lies: plane, offset p in the plane, row y, column x.
struct PlanePixel {
    long long plane, p;
    int y, x;
};

__device__ __forceinline__ PlanePixel plane_pixel(long long i, int h, int w) {
    long long hw = (long long)h * w;
    long long plane = i / hw, p = i - plane * hw;
    int y = (int)(p / w);
    return {plane, p, y, (int)(p - (long long)y * w)};
}

__device__ __forceinline__ float half_to_float(unsigned short h) {
#ifdef STREAMDEN_EMULATE
    return streamden_emu::half_to_float(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ unsigned short float_to_half(float f) {
#ifdef STREAMDEN_EMULATE
    return streamden_emu::float_to_half(f);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
}

__device__ __forceinline__ float load_f(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load_f(const unsigned short* p, long long i) { return half_to_float(p[i]); }
__device__ __forceinline__ void store_f(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f(unsigned short* p, long long i, float v) { p[i] = float_to_half(v); }

// warp_torch clamps the position to the frame and hands it to grid_sample as a normalised
// coordinate (align_corners=True); going through the same round trip keeps parity at ~1 ulp.
__device__ __forceinline__ float sample_coord(float pos, int size) {
    float p = fminf(fmaxf(pos, 0.0f), (float)(size - 1));
    float g = 2.0f * p / (float)max(size - 1, 1) - 1.0f;
    return (g + 1.0f) * ((float)(size - 1) * 0.5f);
}

// Bilinear sample of one (h, w) plane at in-frame coordinates x, y (from sample_coord),
// with grid_sample's weights and summation order; a corner past the last pixel has weight 0.
template <typename T>
__device__ __forceinline__ float bilinear(const T* plane, int h, int w, float x, float y) {
    float x0 = floorf(x), y0 = floorf(y);
    float x1 = x0 + 1.0f, y1 = y0 + 1.0f;
    int ix0 = (int)x0, iy0 = (int)y0;
    int ix1 = min(ix0 + 1, w - 1), iy1 = min(iy0 + 1, h - 1);
    float nw = (x1 - x) * (y1 - y), ne = (x - x0) * (y1 - y);
    float sw = (x1 - x) * (y - y0), se = (x - x0) * (y - y0);
    return load_f(plane, (long long)iy0 * w + ix0) * nw + load_f(plane, (long long)iy0 * w + ix1) * ne
         + load_f(plane, (long long)iy1 * w + ix0) * sw + load_f(plane, (long long)iy1 * w + ix1) * se;
}
