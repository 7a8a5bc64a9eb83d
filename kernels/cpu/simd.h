#pragma once
// Target attributes for the SIMD paths: each path is compiled for its instruction set inside
// an ordinary translation unit (no per-file -m flags, so no inline function of a shared
// header is ever emitted with instructions a CPU may lack) and only called after
// cpu_features() said the CPU has them.
#include <cstdint>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define LAYERWISE_SIMD_X86 1
#include <immintrin.h>
#define LAYERWISE_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LAYERWISE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define LAYERWISE_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#endif

namespace layerwise::kernels::cpu {

// IEEE binary16 -> binary32, exact, portable.
inline float half_to_float(std::uint16_t h)
{
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
    std::uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { // subnormal: normalise
        exp = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            --exp;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// binary32 -> IEEE binary16, rounded to nearest even (what F16C's vcvtps2ph gives).
inline std::uint16_t float_to_half(float f)
{
    std::uint32_t x;
    std::memcpy(&x, &f, sizeof x);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) // inf, nan (quiet)
        return static_cast<std::uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (a >= 0x477ff000u) // at or past 65520: rounds to infinity
        return static_cast<std::uint16_t>(sign | 0x7c00u);
    if (a < 0x38800000u) { // below 2^-14: a subnormal half, in units of 2^-24 (the scaling is exact)
        float mag;
        std::memcpy(&mag, &a, sizeof mag);
        return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(mag * 16777216.0f)));
    }
    std::uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ffu);
    const std::uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        ++h; // a carry into the exponent is the right result
    return static_cast<std::uint16_t>(sign | h);
}

} // namespace layerwise::kernels::cpu
