// anole scan kernel: DATAFLOW of fetch_tables | fetch_codes -> adc (ping-pong tables, LANES codes per
// cycle, II=1) -> topk (one insertion queue of K per lane, merged at the end of a query) -> write_results.
#include "scan.h"

static const unsigned BEAT_CODES = 0, BEAT_END_LIST = 1, BEAT_END_QUERY = 2;

struct beat_t {
    code_beat_t codes;
    id_beat_t ids;
    mask_t valid;
    ap_uint<2> kind;
};

struct entry_t {
    dist_t d;
    vid_t id;
};

struct cand_t {
    entry_t e[ANOLE_LANES];
    mask_t valid;
    bool flush;
};

static inline bool key_less(const entry_t& a, const entry_t& b) {
    return a.d < b.d || (a.d == b.d && a.id < b.id);
}

static inline entry_t empty_entry() {
    entry_t e;
    e.d = dist_t(ANOLE_EMPTY_DIST);
    e.id = vid_t(-1);
    return e;
}

static void fetch_tables(const table_row_t* tables, unsigned nq, unsigned nprobe,
                         hls::stream<table_row_t>& out) {
    const unsigned rows = nq * nprobe * ANOLE_KSUB;
rows:
    for (unsigned i = 0; i < rows; ++i) {
#pragma HLS PIPELINE II = 1
        out.write(tables[i]);
    }
}

static void fetch_codes(const code_beat_t* codes, const id_beat_t* ids, const desc_t* lists, unsigned nq,
                        unsigned nprobe, hls::stream<beat_t>& out) {
    beat_t marker;
    marker.valid = 0;
queries:
    for (unsigned q = 0; q < nq; ++q) {
    probes:
        for (unsigned p = 0; p < nprobe; ++p) {
            const desc_t d = lists[q * nprobe + p];
            const unsigned first = (unsigned)bits<32>(d, 0), len = (unsigned)bits<32>(d, 32);
            const unsigned nbeats = (len + ANOLE_LANES - 1) / ANOLE_LANES;
        beats:
            for (unsigned b = 0; b < nbeats; ++b) {
#pragma HLS PIPELINE II = 1
                beat_t beat;
                beat.codes = codes[first + b];
                beat.ids = ids[first + b];
                const unsigned left = len - b * ANOLE_LANES;
                beat.valid = left >= ANOLE_LANES ? mask_t(-1) : mask_t((1u << left) - 1);
                beat.kind = BEAT_CODES;
                out.write(beat);
            }
            marker.kind = BEAT_END_LIST;
            out.write(marker);
        }
        marker.kind = BEAT_END_QUERY;
        out.write(marker);
    }
}

// One loop does both jobs each cycle: load a table row into the back bank, scan a beat against the front.
static void adc(hls::stream<table_row_t>& tab_in, hls::stream<beat_t>& in, unsigned nq, unsigned nprobe,
                hls::stream<cand_t>& out) {
    static lut_t lut[2][ANOLE_LANES][ANOLE_M][ANOLE_KSUB];
#pragma HLS ARRAY_PARTITION variable = lut complete dim = 1
#pragma HLS ARRAY_PARTITION variable = lut complete dim = 2
#pragma HLS ARRAY_PARTITION variable = lut complete dim = 3
    bool full[2] = {false, false};
#pragma HLS ARRAY_PARTITION variable = full complete
    unsigned wbank = 0, wrow = 0, rbank = 0, tables_left = nq * nprobe, queries_left = nq;
    bool have = false;
    beat_t cur;
scan:
    while (queries_left > 0) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = lut inter false
        if (tables_left > 0 && !full[wbank] && !tab_in.empty()) {
            const table_row_t row = tab_in.read();
            for (int l = 0; l < ANOLE_LANES; ++l) {
#pragma HLS UNROLL
                for (int j = 0; j < ANOLE_M; ++j) {
#pragma HLS UNROLL
                    lut[wbank][l][j][wrow] = bits<ANOLE_LUT_BITS>(row, ANOLE_TABLE_ENTRY_BITS * j);
                }
            }
            if (wrow == ANOLE_KSUB - 1) {
                full[wbank] = true;
                wbank ^= 1;
                wrow = 0;
                --tables_left;
            } else {
                ++wrow;
            }
        }
        if (!have && !in.empty()) {
            cur = in.read();
            have = true;
        }
        if (have && cur.kind == BEAT_END_QUERY) {
            cand_t c;
            c.valid = 0;
            c.flush = true;
            out.write(c);
            --queries_left;
            have = false;
        } else if (have && full[rbank]) {
            if (cur.kind == BEAT_END_LIST) {
                full[rbank] = false;
                rbank ^= 1;
            } else {
                cand_t c;
                c.valid = cur.valid;
                c.flush = false;
                for (int l = 0; l < ANOLE_LANES; ++l) {
#pragma HLS UNROLL
                    dist_t sum = 0;
                    for (int j = 0; j < ANOLE_M; ++j) {
#pragma HLS UNROLL
                        const unsigned code = (unsigned)bits<8>(cur.codes, 8 * (l * ANOLE_M + j));
                        sum += lut[rbank][l][j][code];
                    }
                    c.e[l].d = sum;
                    c.e[l].id = bits<ANOLE_ID_BITS>(cur.ids, ANOLE_ID_WORD_BITS * l);
                }
                out.write(c);
            }
            have = false;
        }
    }
}

// Sorted insertion into q[0..K-1] (ascending key), all K compare-and-shift cells in parallel.
static inline void insert(entry_t q[ANOLE_K], const entry_t& e) {
#pragma HLS INLINE
    for (int i = ANOLE_K - 1; i >= 0; --i) {
#pragma HLS UNROLL
        if (key_less(e, q[i])) q[i] = (i > 0 && key_less(e, q[i - 1])) ? q[i - 1] : e;
    }
}

// One flat II=1 loop: insert a beat of candidates, or (after a flush) emit one merged result per cycle for
// K cycles: the smallest lane head, that lane shifting up behind it.
static void topk(hls::stream<cand_t>& in, unsigned nq, hls::stream<entry_t>& out) {
    entry_t q[ANOLE_LANES][ANOLE_K];
#pragma HLS ARRAY_PARTITION variable = q complete dim = 0
    for (int l = 0; l < ANOLE_LANES; ++l) {
#pragma HLS UNROLL
        for (int i = 0; i < ANOLE_K; ++i) q[l][i] = empty_entry();
    }
    unsigned left = nq, emitted = 0;
    bool merging = false;
candidates:
    while (left > 0) {
#pragma HLS PIPELINE II = 1
        if (!merging) {
            const cand_t c = in.read();
            merging = c.flush;
            for (int l = 0; l < ANOLE_LANES; ++l) {
#pragma HLS UNROLL
                if (!c.flush && c.valid[l]) insert(q[l], c.e[l]);
            }
        } else {
            int best = 0;
            for (int l = 1; l < ANOLE_LANES; ++l) {
#pragma HLS UNROLL
                if (key_less(q[l][0], q[best][0])) best = l;
            }
            out.write(q[best][0]);
            const bool last = ++emitted == ANOLE_K;
            for (int l = 0; l < ANOLE_LANES; ++l) {
#pragma HLS UNROLL
                for (int j = 0; j < ANOLE_K; ++j) {
#pragma HLS UNROLL
                    if (last)
                        q[l][j] = empty_entry();
                    else if (l == best)
                        q[l][j] = j + 1 < ANOLE_K ? q[l][j + 1] : empty_entry();
                }
            }
            if (last) {
                merging = false;
                emitted = 0;
                --left;
            }
        }
    }
}

static void write_results(hls::stream<entry_t>& in, result_t* results, unsigned nq, unsigned* config) {
    const unsigned n = nq * ANOLE_K;
results:
    for (unsigned i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
        const entry_t e = in.read();
        result_t r = 0;
        r.range(ANOLE_ID_BITS - 1, 0) = e.id.to_uint64();
        r.range(64 + ANOLE_DIST_BITS - 1, 64) = e.d.to_uint64();
        results[i] = r;
    }
    *config = ANOLE_CONFIG_WORD;
}

extern "C" void anole_scan(const code_beat_t* codes, const id_beat_t* ids, const table_row_t* tables,
                           const desc_t* lists, result_t* results, unsigned nq, unsigned nprobe,
                           unsigned* config) {
#pragma HLS INTERFACE m_axi port = codes offset = slave bundle = gmem0 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = ids offset = slave bundle = gmem1 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = tables offset = slave bundle = gmem2 max_read_burst_length = 256
#pragma HLS INTERFACE m_axi port = lists offset = slave bundle = gmem3
#pragma HLS INTERFACE m_axi port = results offset = slave bundle = gmem3
#pragma HLS INTERFACE s_axilite port = codes bundle = control
#pragma HLS INTERFACE s_axilite port = ids bundle = control
#pragma HLS INTERFACE s_axilite port = tables bundle = control
#pragma HLS INTERFACE s_axilite port = lists bundle = control
#pragma HLS INTERFACE s_axilite port = results bundle = control
#pragma HLS INTERFACE s_axilite port = nq bundle = control
#pragma HLS INTERFACE s_axilite port = nprobe bundle = control
#pragma HLS INTERFACE s_axilite port = config bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
#pragma HLS INTERFACE ap_ctrl_hs port = return
#pragma HLS DATAFLOW
    hls::stream<table_row_t> tab_s("tab_s");
    hls::stream<beat_t> beat_s("beat_s");
    hls::stream<cand_t> cand_s("cand_s");
    hls::stream<entry_t> res_s("res_s");
#pragma HLS STREAM variable = tab_s depth = 512
#pragma HLS STREAM variable = beat_s depth = 64
#pragma HLS STREAM variable = cand_s depth = 16
#pragma HLS STREAM variable = res_s depth = 128
    fetch_tables(tables, nq, nprobe, tab_s);
    fetch_codes(codes, ids, lists, nq, nprobe, beat_s);
    adc(tab_s, beat_s, nq, nprobe, cand_s);
    topk(cand_s, nq, res_s);
    write_results(res_s, results, nq, config);
}
