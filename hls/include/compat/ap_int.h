// Minimal stand-in for Xilinx ap_int.h: ap_uint<W> with the subset the anole kernels use.
// Storage is W bits in 64-bit words; arithmetic and comparison go through the low 64 bits, so they
// are exact for W <= 64 only (the kernels use wider words only for packing with range()).
#ifndef ANOLE_COMPAT_AP_INT_H
#define ANOLE_COMPAT_AP_INT_H

#include <cstdint>
#include <type_traits>

// Width limits of Vitis HLS's ap_int.h: 1024 bits unless AP_INT_MAX_W is defined (up to 4096) before the
// first include; this stand-in refuses the same widths at compile time.
#ifndef AP_INT_MAX_W
#define AP_INT_MAX_W 1024
#endif
#if AP_INT_MAX_W > 4096
#error "AP_INT_MAX_W exceeds 4096, the largest ap_int width Vitis HLS allows"
#endif

template <int W> class ap_uint;

template <int W> struct ap_range_ref {
    ap_uint<W>& v;
    int hi, lo;
    unsigned long long to_uint64() const { return v.get_bits(hi, lo); }
    operator unsigned long long() const { return to_uint64(); }
    ap_range_ref& operator=(unsigned long long x) { v.set_bits(hi, lo, x); return *this; }
    template <int W2> ap_range_ref& operator=(const ap_uint<W2>& x) { v.set_bits(hi, lo, x.to_uint64()); return *this; }
};

template <int W> class ap_uint {
    static_assert(W >= 1, "ap_uint width must be >= 1");
    static_assert(W <= AP_INT_MAX_W, "ap_uint: Bitwidth exceeds the default max value 1024. "
                                     "Please use macro AP_INT_MAX_W to set a larger max value.");
    static constexpr int NW = (W + 63) / 64;
    uint64_t w_[NW];

    void clamp() {
        if (W % 64) w_[NW - 1] &= ~0ULL >> (64 - W % 64);
    }

public:
    ap_uint() { for (int i = 0; i < NW; ++i) w_[i] = 0; }
    template <typename T, typename = typename std::enable_if<std::is_integral<T>::value>::type>
    ap_uint(T x) {
        const bool neg = std::is_signed<T>::value && x < 0;
        for (int i = 0; i < NW; ++i) w_[i] = neg ? ~0ULL : 0;
        w_[0] = (uint64_t)(long long)x;
        clamp();
    }
    template <int W2> ap_uint(const ap_uint<W2>& o) {
        for (int i = 0; i < NW; ++i) w_[i] = i < (W2 + 63) / 64 ? o.word(i) : 0;
        clamp();
    }
    template <int W2> ap_uint(const ap_range_ref<W2>& r) : ap_uint(r.to_uint64()) {}

    uint64_t word(int i) const { return w_[i]; }
    unsigned long long to_uint64() const { return w_[0]; }
    operator unsigned long long() const { return w_[0]; }

    // Bits hi..lo (hi - lo < 64), possibly straddling two words.
    unsigned long long get_bits(int hi, int lo) const {
        const int n = hi - lo + 1, wi = lo / 64, bo = lo % 64;
        uint64_t v = w_[wi] >> bo;
        if (bo && bo + n > 64) v |= w_[wi + 1] << (64 - bo);
        return n == 64 ? v : v & ((1ULL << n) - 1);
    }
    void set_bits(int hi, int lo, unsigned long long x) {
        const int n = hi - lo + 1, wi = lo / 64, bo = lo % 64;
        const uint64_t mask = n == 64 ? ~0ULL : (1ULL << n) - 1;
        x &= mask;
        w_[wi] = (w_[wi] & ~(mask << bo)) | (x << bo);
        if (bo && bo + n > 64) {
            const uint64_t m2 = mask >> (64 - bo);
            w_[wi + 1] = (w_[wi + 1] & ~m2) | (x >> (64 - bo));
        }
        clamp();
    }
    ap_range_ref<W> range(int hi, int lo) { return ap_range_ref<W>{*this, hi, lo}; }
    ap_uint<64> range(int hi, int lo) const { return ap_uint<64>(get_bits(hi, lo)); }
    bool operator[](int i) const { return (w_[i / 64] >> (i % 64)) & 1; }

    ap_uint& operator+=(unsigned long long x) { *this = ap_uint(w_[0] + x); return *this; }
    ap_uint& operator-=(unsigned long long x) { *this = ap_uint(w_[0] - x); return *this; }
    ap_uint& operator++() { return *this += 1; }
};

template <int W> class ap_int : public ap_uint<W> {
public:
    using ap_uint<W>::ap_uint;
};

#endif
