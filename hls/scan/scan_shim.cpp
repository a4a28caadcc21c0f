// Byte-buffer entry point of the C model: copies raw little-endian buffers (the layout of
// docs/board-interface.md) into m_axi word arrays, runs anole_scan, copies the results back.
// Used by tb_scan.cpp and, as libanole_scan.so, by host/board/csim_device.py (ctypes).
#include <cstdio>
#include <cstring>
#include <vector>

#include "scan.h"

template <int W> static ap_uint<W> load_word(const uint8_t* p) {
    ap_uint<W> w;
    for (int b = 0; b < W; b += 64) {
        const int hi = (b + 64 < W ? b + 64 : W) - 1;
        uint64_t v = 0;
        std::memcpy(&v, p + b / 8, (hi - b + 1) / 8);
        w.range(hi, b) = v;
    }
    return w;
}

template <int W> static void store_words(const std::vector<ap_uint<W> >& in, uint8_t* p) {
    const uint64_t wb = W / 8;
    for (uint64_t i = 0; i < in.size(); ++i) {
        for (int b = 0; b < W; b += 64) {
            const int hi = (b + 64 < W ? b + 64 : W) - 1;
            const uint64_t v = in[i].range(hi, b).to_uint64();
            std::memcpy(p + i * wb + b / 8, &v, (hi - b + 1) / 8);
        }
    }
}

extern "C" unsigned anole_scan_config() { return ANOLE_CONFIG_WORD; }

// Returns 0, or a negative code with a message on stderr when a buffer is too small for the request:
// -1 tables, -2 lists, -3 results, -4 a descriptor reaches past the codes or ids buffer.
extern "C" int anole_scan_bytes(const uint8_t* codes, uint64_t codes_bytes, const uint8_t* ids,
                                uint64_t ids_bytes, const uint8_t* tables, uint64_t tables_bytes,
                                const uint8_t* lists, uint64_t lists_bytes, uint8_t* results,
                                uint64_t results_bytes, unsigned nq, unsigned nprobe, unsigned* config) {
    const uint64_t ntab = (uint64_t)nq * nprobe;
    if (tables_bytes < ntab * ANOLE_KSUB * (sizeof(uint16_t) * ANOLE_M)) {
        std::fprintf(stderr, "anole_scan: tables buffer of %llu bytes < %llu tables\n",
                     (unsigned long long)tables_bytes, (unsigned long long)ntab);
        return -1;
    }
    if (lists_bytes < ntab * 8) {
        std::fprintf(stderr, "anole_scan: lists buffer of %llu bytes < %llu descriptors\n",
                     (unsigned long long)lists_bytes, (unsigned long long)ntab);
        return -2;
    }
    if (results_bytes < (uint64_t)nq * ANOLE_K * (ANOLE_RESULT_BITS / 8)) {
        std::fprintf(stderr, "anole_scan: results buffer of %llu bytes < %u queries\n",
                     (unsigned long long)results_bytes, nq);
        return -3;
    }
    // Only the beats the descriptors reference are converted (gathered in probe order, descriptors
    // rebased), so a launch costs what it scans, not the size of the shard.
    const uint64_t cb = 8 * ANOLE_M * ANOLE_LANES / 8, ib = ANOLE_ID_WORD_BITS * ANOLE_LANES / 8;
    const uint64_t nbeats = codes_bytes / cb < ids_bytes / ib ? codes_bytes / cb : ids_bytes / ib;
    std::vector<code_beat_t> cw;
    std::vector<id_beat_t> iw;
    std::vector<desc_t> lw(ntab);
    for (uint64_t i = 0; i < ntab; ++i) {
        const desc_t d = load_word<64>(lists + 8 * i);
        const uint64_t first = bits<32>(d, 0).to_uint64(), len = bits<32>(d, 32).to_uint64();
        const uint64_t nb = (len + ANOLE_LANES - 1) / ANOLE_LANES;
        if (first + nb > nbeats) {
            std::fprintf(stderr, "anole_scan: descriptor %llu (beat %llu, %llu codes) reaches past %llu beats\n",
                         (unsigned long long)i, (unsigned long long)first, (unsigned long long)len,
                         (unsigned long long)nbeats);
            return -4;
        }
        lw[i] = desc_t(cw.size()) | desc_t(len << 32);
        for (uint64_t b = first; b < first + nb; ++b) {
            cw.push_back(load_word<8 * ANOLE_M * ANOLE_LANES>(codes + b * cb));
            iw.push_back(load_word<ANOLE_ID_WORD_BITS * ANOLE_LANES>(ids + b * ib));
        }
    }
    std::vector<table_row_t> tw(ntab * ANOLE_KSUB);
    for (uint64_t r = 0; r < tw.size(); ++r)
        tw[r] = load_word<ANOLE_TABLE_ENTRY_BITS * ANOLE_M>(tables + r * (ANOLE_TABLE_ENTRY_BITS / 8) * ANOLE_M);
    std::vector<result_t> rw((uint64_t)nq * ANOLE_K);
    anole_scan(cw.data(), iw.data(), tw.data(), lw.data(), rw.data(), nq, nprobe, config);
    store_words<ANOLE_RESULT_BITS>(rw, results);
    return 0;
}
