// Colour conversion and packing at the upload/download edges of the device pipeline:
// RGB -> luma (BT.601, as streamden.align.color.rgb_to_luma_torch), interleaved uint8/uint16
// HWC -> planar float32 CHW in [0, 1] (interleaved_to_planar_torch), and back with rounding
// to nearest-even and clamping (planar_to_interleaved_torch). One thread per output element.
#include "sample.cuh"

extern "C" __global__ void rgb_to_luma_f32(const float* __restrict__ rgb, float* __restrict__ luma,
                                           int n, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(n * hw);
    if (i < 0) return;
    long long b = i / hw, p = i - b * hw;
    const float* s = rgb + b * 3 * hw + p;
    luma[i] = 0.299f * s[0] + 0.587f * s[hw] + 0.114f * s[2 * hw];
}

// src (N, H, W, C) integer, dst (N, C, H, W) float32 = src / maxval.
template <typename T>
__device__ void to_planar(const T* __restrict__ src, float* __restrict__ dst, int n, int h, int w, int c,
                          float maxval) {
    long long hw = (long long)h * w;
    long long i = element_index(n * c * hw);
    if (i < 0) return;
    long long p = i % hw;
    long long bc = i / hw;
    long long k = bc % c, b = bc / c;
    dst[i] = (float)src[(b * hw + p) * c + k] / maxval;
}

// src (N, C, H, W) float32, dst (N, H, W, C) integer = clamp(rint(src * maxval), 0, maxval).
template <typename T>
__device__ void to_interleaved(const float* __restrict__ src, T* __restrict__ dst, int n, int h, int w, int c,
                               float maxval) {
    long long hw = (long long)h * w;
    long long i = element_index(n * c * hw);
    if (i < 0) return;
    long long k = i % c;
    long long bp = i / c;
    long long p = bp % hw, b = bp / hw;
    float v = rintf(src[(b * c + k) * hw + p] * maxval);
    dst[i] = (T)fminf(fmaxf(v, 0.0f), maxval);
}

extern "C" __global__ void interleaved_u8_to_planar_f32(const unsigned char* src, float* dst,
                                                        int n, int h, int w, int c) {
    to_planar(src, dst, n, h, w, c, 255.0f);
}

extern "C" __global__ void interleaved_u16_to_planar_f32(const unsigned short* src, float* dst,
                                                         int n, int h, int w, int c) {
    to_planar(src, dst, n, h, w, c, 65535.0f);
}

extern "C" __global__ void planar_f32_to_interleaved_u8(const float* src, unsigned char* dst,
                                                        int n, int h, int w, int c) {
    to_interleaved(src, dst, n, h, w, c, 255.0f);
}

extern "C" __global__ void planar_f32_to_interleaved_u16(const float* src, unsigned short* dst,
                                                         int n, int h, int w, int c) {
    to_interleaved(src, dst, n, h, w, c, 65535.0f);
}
