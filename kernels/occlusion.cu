// Forward-backward consistency mask: the math of
// streamden.align.occlusion.consistency_mask_torch. flow_fw, flow_bw (N, 2, H, W) float32,
// out (N, 1, H, W) float32 of 0/1. One thread per pixel.
#include "sample.cuh"

extern "C" __global__ void consistency_mask_f32(const float* __restrict__ fw, const float* __restrict__ bw,
                                                float* __restrict__ out, float alpha, float beta,
                                                int n, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(n * hw);
    if (i < 0) return;
    auto [b, p, y, x] = plane_pixel(i, h, w);
    const float* f = fw + b * 2 * hw;
    const float* g = bw + b * 2 * hw;
    float fx = f[p], fy = f[hw + p];
    float px = (float)x + fx, py = (float)y + fy;
    float sx = sample_coord(px, w), sy = sample_coord(py, h);
    float bx = bilinear(g, h, w, sx, sy);
    float by = bilinear(g + hw, h, w, sx, sy);
    float dx = fx + bx, dy = fy + by;
    float diff = dx * dx + dy * dy;
    float bound = alpha * ((fx * fx + fy * fy) + (bx * bx + by * by)) + beta;
    bool inside = px >= 0.0f && px <= (float)(w - 1) && py >= 0.0f && py <= (float)(h - 1);
    out[i] = (diff <= bound && inside) ? 1.0f : 0.0f;
}
