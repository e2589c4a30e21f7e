// The CUDA built-ins that kernels/*.cu use, for compiling them as C++ on the host (the test
// emulation of streamden.cuda.emulate). Only what runs one thread at a time is here: shared
// memory, barriers, atomics and warp intrinsics are refused before compiling, by name.
#pragma once
#define STREAMDEN_EMULATE 1

#include <math.h>
#include <string.h>

#include <string>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };

// Read-only to kernels, as on a GPU; the launcher below sets them thread by thread.
static uint3 streamden_thread_idx, streamden_block_idx;
static dim3 streamden_block_dim, streamden_grid_dim;
static const uint3& threadIdx = streamden_thread_idx;
static const uint3& blockIdx = streamden_block_idx;
static const dim3& blockDim = streamden_block_dim;
static const dim3& gridDim = streamden_grid_dim;

// CUDA's integer and float min/max overloads (a mixed call is ambiguous here: a loud error).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

namespace streamden_emu {

inline unsigned int float_bits(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }
inline float bits_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }

// PTX cvt.f32.f16: exact (every half is a float); NaN keeps its payload.
inline float half_to_float(unsigned short h) {
    unsigned int sign = (unsigned int)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) return bits_float(sign | float_bits((float)mant * 5.9604644775390625e-8f));  // mant * 2^-24
    return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// PTX cvt.rn.f16.f32: round to nearest, ties to even, with half subnormals, overflow to
// infinity, and NaN to the canonical 0x7fff.
inline unsigned short float_to_half(float f) {
    unsigned int x = float_bits(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return 0x7fff;
    if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);    // >= 65520 rounds to inf
    unsigned int q, rem, half;
    if (ax < 0x38800000u) {                                            // below 2^-14: subnormal
        if (ax <= 0x33000000u) return (unsigned short)sign;            // <= 2^-25 rounds to 0
        unsigned int e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e;
        q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    } else {
        q = (((ax >> 23) - 112u) << 10) | ((ax & 0x7fffffu) >> 13), rem = ax & 0x1fffu, half = 0x1000u;
    }
    if (rem > half || (rem == half && (q & 1u))) ++q;                   // a carry may reach the exponent
    return (unsigned short)(sign | q);
}

// The launcher: every thread of the grid, one after another, block by block.
template <class... A, std::size_t... I>
inline void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <class... A>
inline void run(void (*kernel)(A...), const unsigned int* config, void** args) {
    streamden_grid_dim = {config[0], config[1], config[2]};
    streamden_block_dim = {config[3], config[4], config[5]};
    for (unsigned int bz = 0; bz < config[2]; ++bz)
        for (unsigned int by = 0; by < config[1]; ++by)
            for (unsigned int bx = 0; bx < config[0]; ++bx) {
                streamden_block_idx = {bx, by, bz};
                for (unsigned int tz = 0; tz < config[5]; ++tz)
                    for (unsigned int ty = 0; ty < config[4]; ++ty)
                        for (unsigned int tx = 0; tx < config[3]; ++tx) {
                            streamden_thread_idx = {tx, ty, tz};
                            call(kernel, args, std::index_sequence_for<A...>{});
                        }
            }
}

// A parameter's type as the Python side checks it: "i32", "f32", "const f32*", "u16*", ...
template <class T> inline std::string scalar_name() {
    if (std::is_same_v<T, float>) return "f32";
    if (std::is_same_v<T, double>) return "f64";
    if (std::is_same_v<T, int>) return "i32";
    if (std::is_same_v<T, unsigned int>) return "u32";
    if (std::is_same_v<T, long long>) return "i64";
    if (std::is_same_v<T, unsigned char>) return "u8";
    if (std::is_same_v<T, unsigned short>) return "u16";
    return "?";
}

template <class T> inline std::string type_name() {
    if constexpr (std::is_pointer_v<T>) {
        using P = std::remove_pointer_t<T>;
        return (std::is_const_v<P> ? "const " : "") + scalar_name<std::remove_cv_t<P>>() + "*";
    } else {
        return scalar_name<std::remove_cv_t<T>>();
    }
}

template <class... A>
inline const char* signature(void (*)(A...)) {
    static const std::string text = [] {
        std::string s;
        ((s += type_name<A>() + ","), ...);
        return s;
    }();
    return text.c_str();
}

}  // namespace streamden_emu
