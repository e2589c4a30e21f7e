// Pyramidal Lucas-Kanade flow, one kernel per step of streamden.align.lk.lk_flow_with; each
// has the torch reference named in its comment (same arguments, same math). All tensors are
// contiguous float32 NCHW; one thread per output element.
#include "sample.cuh"

__device__ __forceinline__ int clampi(int v, int lo, int hi) { return min(max(v, lo), hi); }

// gaussian_blur_torch, horizontal pass: dst = src (*) weights along x, replicated border.
extern "C" __global__ void blur_h_f32(const float* __restrict__ src, float* __restrict__ dst,
                                      const float* __restrict__ weights, int radius,
                                      int planes, int h, int w) {
    long long i = element_index((long long)planes * h * w);
    if (i < 0) return;
    int x = (int)(i % w);
    const float* row = src + (i - x);
    float acc = 0.0f;
    for (int k = -radius; k <= radius; ++k) acc += weights[k + radius] * row[clampi(x + k, 0, w - 1)];
    dst[i] = acc;
}

// gaussian_blur_torch, vertical pass.
extern "C" __global__ void blur_v_f32(const float* __restrict__ src, float* __restrict__ dst,
                                      const float* __restrict__ weights, int radius,
                                      int planes, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(planes * hw);
    if (i < 0) return;
    auto [plane, p, y, x] = plane_pixel(i, h, w);
    const float* col = src + plane * hw + x;
    float acc = 0.0f;
    for (int k = -radius; k <= radius; ++k) acc += weights[k + radius] * col[(long long)clampi(y + k, 0, h - 1) * w];
    dst[i] = acc;
}

// pyr_down_torch: 5-tap binomial blur (rows, then columns) sampled at even pixels.
// dst (planes, hd, wd) with hd = ceil(h / 2), wd = ceil(w / 2).
extern "C" __global__ void pyr_down_f32(const float* __restrict__ src, float* __restrict__ dst,
                                        int planes, int h, int w, int hd, int wd) {
    const float taps[5] = {1.0f / 16, 4.0f / 16, 6.0f / 16, 4.0f / 16, 1.0f / 16};
    long long i = element_index(planes * ((long long)hd * wd));
    if (i < 0) return;
    auto [plane, p, yd, xd] = plane_pixel(i, hd, wd);
    const float* s = src + plane * (long long)h * w;
    float acc = 0.0f;
    for (int j = 0; j < 5; ++j) {
        const float* row = s + (long long)clampi(2 * yd + j - 2, 0, h - 1) * w;
        float r = 0.0f;
        for (int k = 0; k < 5; ++k) r += taps[k] * row[clampi(2 * xd + k - 2, 0, w - 1)];
        acc += taps[j] * r;
    }
    dst[i] = acc;
}

// flow_upsample2_torch: coarse flow (n, 2, h, w) -> (n, 2, hd, wd), bilinear at (x/2, y/2), x2.
extern "C" __global__ void flow_upsample2_f32(const float* __restrict__ src, float* __restrict__ dst,
                                              int n, int h, int w, int hd, int wd) {
    long long i = element_index((long long)n * 2 * ((long long)hd * wd));
    if (i < 0) return;
    auto [plane, p, y, x] = plane_pixel(i, hd, wd);
    float sy = fminf((float)y * 0.5f, (float)(h - 1));
    float sx = fminf((float)x * 0.5f, (float)(w - 1));
    const float* s = src + plane * (long long)h * w;
    int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
    int x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1);
    float wx = sx - (float)x0, wy = sy - (float)y0;
    float top = s[(long long)y0 * w + x0] * (1.0f - wx) + s[(long long)y0 * w + x1] * wx;
    float bottom = s[(long long)y1 * w + x0] * (1.0f - wx) + s[(long long)y1 * w + x1] * wx;
    dst[i] = (top * (1.0f - wy) + bottom * wy) * 2.0f;
}

// lk_gradients_torch: central differences of ref (n, 1, h, w) with replicated border;
// grad (n, 2, h, w) = (Ix, Iy).
extern "C" __global__ void lk_gradients_f32(const float* __restrict__ ref, float* __restrict__ grad,
                                            int n, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(n * hw);
    if (i < 0) return;
    auto [b, p, y, x] = plane_pixel(i, h, w);
    const float* r = ref + b * hw;
    grad[b * 2 * hw + p] = 0.5f * (r[(long long)y * w + min(x + 1, w - 1)] - r[(long long)y * w + max(x - 1, 0)]);
    grad[(b * 2 + 1) * hw + p] = 0.5f * (r[(long long)min(y + 1, h - 1) * w + x] - r[(long long)max(y - 1, 0) * w + x]);
}

// lk_system_torch: out (n, 5, h, w) = r * (Ix Ix, Ix Iy, Iy Iy, Ix It, Iy It) with
// It = warp(moving, flow) - ref, the Cauchy weight r = 1 / (1 + It^2 / robust^2) (1 when
// robust is 0), and r = 0 where the match x + flow leaves the frame.
extern "C" __global__ void lk_system_f32(const float* __restrict__ grad, const float* __restrict__ ref,
                                         const float* __restrict__ moving, const float* __restrict__ flow,
                                         float* __restrict__ out, float robust, int n, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(n * hw);
    if (i < 0) return;
    auto [b, p, y, x] = plane_pixel(i, h, w);
    const float* f = flow + b * 2 * hw;
    float px = (float)x + f[p], py = (float)y + f[hw + p];
    float sx = sample_coord(px, w), sy = sample_coord(py, h);
    float it = bilinear(moving + b * hw, h, w, sx, sy) - ref[i];
    float weight = robust > 0.0f ? 1.0f / (1.0f + it * it * (1.0f / (robust * robust))) : 1.0f;
    bool inside = px >= 0.0f && px <= (float)(w - 1) && py >= 0.0f && py <= (float)(h - 1);
    if (!inside) weight = 0.0f;
    float ix = grad[b * 2 * hw + p], iy = grad[(b * 2 + 1) * hw + p];
    float wx = weight * ix, wy = weight * iy;
    float* o = out + b * 5 * hw + p;
    o[0] = wx * ix;
    o[hw] = wx * iy;
    o[2 * hw] = wy * iy;
    o[3 * hw] = wx * it;
    o[4 * hw] = wy * it;
}

// lk_update_torch: solve (T + reg I) du = -b per pixel from the blurred system (n, 5, h, w),
// clamp du to max_step, add it to the flow. out (n, 2, h, w).
extern "C" __global__ void lk_update_f32(const float* __restrict__ system, const float* __restrict__ flow,
                                         float* __restrict__ out, float reg, float max_step,
                                         int n, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(n * hw);
    if (i < 0) return;
    long long b = i / hw, p = i - b * hw;
    const float* s = system + b * 5 * hw + p;
    float a = s[0] + reg, c = s[hw], d = s[2 * hw] + reg;
    float bx = s[3 * hw], by = s[4 * hw];
    float det = a * d - c * c;
    float du = fminf(fmaxf((c * by - d * bx) / det, -max_step), max_step);
    float dv = fminf(fmaxf((c * bx - a * by) / det, -max_step), max_step);
    out[b * 2 * hw + p] = flow[b * 2 * hw + p] + du;
    out[(b * 2 + 1) * hw + p] = flow[(b * 2 + 1) * hw + p] + dv;
}

// median3x3_torch: per-plane 3x3 median with replicated border (exact: a selection).
extern "C" __global__ void median3x3_f32(const float* __restrict__ src, float* __restrict__ dst,
                                         int planes, int h, int w) {
    long long hw = (long long)h * w;
    long long i = element_index(planes * hw);
    if (i < 0) return;
    auto [plane, p, y, x] = plane_pixel(i, h, w);
    const float* s = src + plane * hw;
    float v[9];
    int k = 0;
    for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx)
            v[k++] = s[(long long)clampi(y + dy, 0, h - 1) * w + clampi(x + dx, 0, w - 1)];
    // Partial selection sort up to the middle element.
    for (int a = 0; a <= 4; ++a)
        for (int b2 = a + 1; b2 < 9; ++b2)
            if (v[b2] < v[a]) { float t = v[a]; v[a] = v[b2]; v[b2] = t; }
    dst[i] = v[4];
}
