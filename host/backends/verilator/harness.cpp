// Cycle-accurate scan of real shards on the Verilated anole_scan core, driven from Python via ctypes.
// One call scans a batch of queries back to back: the table stream loads the tables of every
// (query, probe) in order while the command stream sends LIST / CODES / END_LIST per probe and
// END_QUERY per query; the result stream is always ready.  Field offsets come from hw/verilog.py's
// port map (never restated here).
#include "Vanole_scan.h"
#include "verilated.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

// Verilator escapes the double underscore of Amaranth's stream port names (table__payload) as ___05F.

double sc_time_stamp() { return 0; }

namespace {

enum { OP_CODES = 0, OP_LIST = 1, OP_END_LIST = 2, OP_END_QUERY = 3 };

// config words passed by the Python side, in this order
struct Cfg {
    int32_t m, lanes, lut_bits, id_bits, list_bits, k, dist_bits, table_beats;
    int32_t t_rows, t_list, i_op, i_valid, i_list, i_ids, i_codes, o_id, o_dist, o_last;
    int32_t t_width, i_width, o_width;
};

template <std::size_t N> void put(VlWide<N>& w, const uint32_t* b) { for (std::size_t i = 0; i < N; ++i) w[i] = b[i]; }
inline void put(QData& q, const uint32_t* b) { q = (QData)b[0] | ((QData)b[1] << 32); }
inline void put(IData& q, const uint32_t* b) { q = b[0]; }
inline void put(SData& q, const uint32_t* b) { q = (SData)b[0]; }
inline void put(CData& q, const uint32_t* b) { q = (CData)b[0]; }
template <std::size_t N> void get(const VlWide<N>& w, uint32_t* b) { for (std::size_t i = 0; i < N; ++i) b[i] = w[i]; }
inline void get(QData q, uint32_t* b) { b[0] = (uint32_t)q; b[1] = (uint32_t)(q >> 32); }
inline void get(IData q, uint32_t* b) { b[0] = q; }
inline void get(SData q, uint32_t* b) { b[0] = q; }
inline void get(CData q, uint32_t* b) { b[0] = q; }

inline void setbits(uint32_t* buf, int off, int width, uint64_t v) {
    for (int done = 0; done < width;) {
        int word = (off + done) >> 5, bit = (off + done) & 31;
        int n = std::min(32 - bit, width - done);
        uint32_t mask = (n == 32) ? 0xffffffffu : (((1u << n) - 1u) << bit);
        buf[word] = (buf[word] & ~mask) | ((uint32_t)(v >> done) << bit & mask);
        done += n;
    }
}

inline uint64_t getbits(const uint32_t* buf, int off, int width) {
    uint64_t v = 0;
    for (int done = 0; done < width;) {
        int word = (off + done) >> 5, bit = (off + done) & 31;
        int n = std::min(32 - bit, width - done);
        uint64_t part = (buf[word] >> bit) & ((n == 32) ? 0xffffffffull : ((1ull << n) - 1));
        v |= part << done;
        done += n;
    }
    return v;
}

struct Harness {
    Cfg c;
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vanole_scan> top;
    uint64_t cycles = 0;
    const uint8_t* codes = nullptr;   // shard codes uint8[n, m]
    const uint64_t* ids = nullptr;    // shard ids uint64[n]
    const int64_t* offsets = nullptr; // int64[nlist + 1]
    int64_t nlist = 0;
    std::vector<uint32_t> tbuf, ibuf, obuf;

    void tick() {
        top->clk = 1; top->eval();
        top->clk = 0; top->eval();
        ++cycles;
    }
};

int words(int bits) { return (bits + 31) / 32 + 2; }

}  // namespace

extern "C" {

void* anole_open(const int32_t* cfg) {
    auto* h = new Harness();
    std::memcpy(&h->c, cfg, sizeof(Cfg));
    h->ctx = std::make_unique<VerilatedContext>();
    h->top = std::make_unique<Vanole_scan>(h->ctx.get(), "anole_scan");
    h->tbuf.assign(words(h->c.t_width), 0);
    h->ibuf.assign(words(h->c.i_width), 0);
    h->obuf.assign(words(h->c.o_width), 0);
    h->top->clk = 0; h->top->rst = 1;
    h->top->table___05Fvalid = 0; h->top->i___05Fvalid = 0; h->top->o___05Fready = 1;
    h->top->eval();
    for (int i = 0; i < 4; ++i) h->tick();
    h->top->rst = 0; h->top->eval();
    h->cycles = 0;
    return h;
}

void anole_close(void* p) { delete static_cast<Harness*>(p); }

void anole_set_shard(void* p, const uint8_t* codes, const uint64_t* ids, const int64_t* offsets, int64_t nlist) {
    auto* h = static_cast<Harness*>(p);
    h->codes = codes; h->ids = ids; h->offsets = offsets; h->nlist = nlist;
}

uint64_t anole_cycles(void* p) { return static_cast<Harness*>(p)->cycles; }

uint32_t anole_error(void* p) {
    auto* h = static_cast<Harness*>(p);
    return (uint32_t)h->top->error;
}

// Scan nq queries of nprobe lists. tables: uint16[nq, nprobe, m, 256]; lists: int64[nq, nprobe].
// Writes out_dist/out_ids uint64[nq, k]. Returns 0, or -1 when the core stops making progress.
int anole_scan(void* p, int64_t nq, int64_t nprobe, const uint16_t* tables, const int64_t* lists,
               uint64_t* out_dist, uint64_t* out_ids, int64_t stall_limit) {
    auto* h = static_cast<Harness*>(p);
    const Cfg& c = h->c;
    const int64_t table_elems = (int64_t)c.m * 256;
    // table stream cursor: (probe index over nq * nprobe, beat)
    int64_t t_probe = 0, t_beat = 0, t_total = nq * nprobe;
    // command stream cursor: query, probe, phase (0 LIST, 1 CODES, 2 END_LIST), code position
    int64_t i_q = 0, i_j = 0, i_pos = 0; int i_phase = 0;
    // results
    int64_t r_q = 0, r_n = 0;
    int64_t idle = 0;
    bool t_loaded = false, i_loaded = false;

    while (r_q < nq) {
        // table beat
        if (!t_loaded && t_probe < t_total) {
            std::fill(h->tbuf.begin(), h->tbuf.end(), 0);
            const uint16_t* t = tables + t_probe * table_elems;
            for (int r = 0; r < c.lanes; ++r)
                for (int j = 0; j < c.m; ++j)
                    setbits(h->tbuf.data(), c.t_rows + (r * c.m + j) * c.lut_bits, c.lut_bits,
                            t[(int64_t)j * 256 + t_beat * c.lanes + r]);
            setbits(h->tbuf.data(), c.t_list, c.list_bits, (uint64_t)lists[t_probe]);
            put(h->top->table___05Fpayload, h->tbuf.data());
            t_loaded = true;
        }
        h->top->table___05Fvalid = t_loaded;
        // command beat
        if (!i_loaded && i_q < nq) {
            std::fill(h->ibuf.begin(), h->ibuf.end(), 0);
            if (i_j == nprobe) {
                setbits(h->ibuf.data(), c.i_op, 2, OP_END_QUERY);
            } else {
                int64_t list = lists[i_q * nprobe + i_j];
                setbits(h->ibuf.data(), c.i_list, c.list_bits, (uint64_t)list);
                if (i_phase == 0) {
                    setbits(h->ibuf.data(), c.i_op, 2, OP_LIST);
                } else if (i_phase == 2) {
                    setbits(h->ibuf.data(), c.i_op, 2, OP_END_LIST);
                } else {
                    setbits(h->ibuf.data(), c.i_op, 2, OP_CODES);
                    int64_t lo = h->offsets[list], hi = h->offsets[list + 1];
                    for (int l = 0; l < c.lanes && lo + i_pos + l < hi; ++l) {
                        int64_t row = lo + i_pos + l;
                        setbits(h->ibuf.data(), c.i_valid + l, 1, 1);
                        setbits(h->ibuf.data(), c.i_ids + l * c.id_bits, c.id_bits, h->ids[row]);
                        const uint8_t* code = h->codes + row * c.m;
                        for (int j = 0; j < c.m; ++j)
                            setbits(h->ibuf.data(), c.i_codes + (l * c.m + j) * 8, 8, code[j]);
                    }
                }
            }
            put(h->top->i___05Fpayload, h->ibuf.data());
            i_loaded = true;
        }
        h->top->i___05Fvalid = i_loaded;
        h->top->o___05Fready = 1;
        h->top->eval();
        bool t_fire = t_loaded && h->top->table___05Fready;
        bool i_fire = i_loaded && h->top->i___05Fready;
        bool o_fire = h->top->o___05Fvalid;
        if (o_fire) {
            get(h->top->o___05Fpayload, h->obuf.data());
            if (r_n < c.k) {
                out_ids[r_q * c.k + r_n] = getbits(h->obuf.data(), c.o_id, c.id_bits);
                out_dist[r_q * c.k + r_n] = getbits(h->obuf.data(), c.o_dist, c.dist_bits);
            }
            ++r_n;
            if (getbits(h->obuf.data(), c.o_last, 1)) { ++r_q; r_n = 0; }
        }
        h->tick();
        if (t_fire) {
            t_loaded = false;
            if (++t_beat == c.table_beats) { t_beat = 0; ++t_probe; }
        }
        if (i_fire) {
            i_loaded = false;
            if (i_j == nprobe) { ++i_q; i_j = 0; i_phase = 0; i_pos = 0; }
            else if (i_phase == 0) {
                int64_t list = lists[i_q * nprobe + i_j];
                i_phase = (h->offsets[list + 1] > h->offsets[list]) ? 1 : 2; i_pos = 0;
            } else if (i_phase == 1) {
                int64_t list = lists[i_q * nprobe + i_j];
                i_pos += c.lanes;
                if (h->offsets[list] + i_pos >= h->offsets[list + 1]) i_phase = 2;
            } else { ++i_j; i_phase = 0; }
        }
        idle = (t_fire || i_fire || o_fire) ? 0 : idle + 1;
        if (idle > stall_limit) return -1;
    }
    return 0;
}

}  // extern "C"
