// Bilinear backward warp by a dense flow with replicated borders: the math of
// streamden.align.warp.warp_torch. image (N, C, H, W) float32 or half, flow (N, 2, H, W)
// float32, out like image. One thread per output pixel, looping over the channels.
#include "sample.cuh"

template <typename T>
__device__ void warp_impl(const T* __restrict__ image, const float* __restrict__ flow,
                          T* __restrict__ out, int n, int c, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(n * hw);
    if (i < 0) return;
    auto [b, p, y, x] = plane_pixel(i, h, w);
    const float* f = flow + b * 2 * hw;
    float sx = sample_coord((float)x + f[p], w);
    float sy = sample_coord((float)y + f[hw + p], h);
    for (int k = 0; k < c; ++k) {
        long long plane = (b * c + k) * hw;
        store_f(out, plane + p, bilinear(image + plane, h, w, sx, sy));
    }
}

extern "C" __global__ void warp_f32(const float* image, const float* flow, float* out,
                                    int n, int c, int h, int w) {
    warp_impl(image, flow, out, n, c, h, w);
}

extern "C" __global__ void warp_f16(const unsigned short* image, const float* flow, unsigned short* out,
                                    int n, int c, int h, int w) {
    warp_impl(image, flow, out, n, c, h, w);
}
