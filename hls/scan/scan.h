// anole IVF-PQ scan-and-top-K kernel, Vitis HLS twin of hw/scan_core.py (docs/board-interface.md).
// Parameters come from scan_config.h, generated from ScanParams by host/board/hls_config.py.
#ifndef ANOLE_SCAN_H
#define ANOLE_SCAN_H

#include <cstdint>

#include "scan_config.h"
// The widest m_axi word (the code beat, 8 x m x lanes bits) can pass ap_int's default limit of 1024 bits;
// AP_INT_MAX_W must be set before ap_int.h is first included (host/board/hls_config.py refuses > 4096).
#if ANOLE_WORD_BITS > 1024 && !defined(AP_INT_MAX_W)
#define AP_INT_MAX_W ANOLE_WORD_BITS
#endif
#include "hls_types.h"

// Memory words of the m_axi ports (one beat each).
typedef ap_uint<8 * ANOLE_M * ANOLE_LANES> code_beat_t;               // lanes codes of m bytes
typedef ap_uint<ANOLE_ID_WORD_BITS * ANOLE_LANES> id_beat_t;          // lanes ids of 32 or 64 bits
typedef ap_uint<ANOLE_TABLE_ENTRY_BITS * ANOLE_M> table_row_t;        // entry k of all m columns
typedef ap_uint<64> desc_t;                                           // first beat | length << 32
typedef ap_uint<ANOLE_RESULT_BITS> result_t;                          // id | dist << 64

// Datapath words.
typedef ap_uint<ANOLE_LUT_BITS> lut_t;
typedef ap_uint<ANOLE_DIST_BITS> dist_t;
typedef ap_uint<ANOLE_ID_BITS> vid_t;
typedef ap_uint<ANOLE_LANES> mask_t;

extern "C" void anole_scan(const code_beat_t* codes, const id_beat_t* ids, const table_row_t* tables,
                           const desc_t* lists, result_t* results, unsigned nq, unsigned nprobe,
                           unsigned* config);

// Bits lo .. lo + W - 1 of a memory word (W <= 64).
template <int W, int WW> inline ap_uint<W> bits(const ap_uint<WW>& word, int lo) {
    return ap_uint<W>(word.range(lo + W - 1, lo));
}

#endif
