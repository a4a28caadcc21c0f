// C testbench of the scan kernel: tb_scan IN OUT.
// IN:  "ANOLETB1", uint32 nq, uint32 nprobe, uint64 bytes of codes, ids, tables, lists, then those
//      buffers back to back (docs/board-interface.md layout), as written by host/board/hls_build.py.
// OUT: nq * K result records of 16 bytes, then the uint32 config word.
// The expected results are checked by the caller (tests/hls/test_hls_csim.py against host.reference).
#include <cstdio>
#include <cstring>
#include <vector>

#include "scan.h"

extern "C" int anole_scan_bytes(const uint8_t*, uint64_t, const uint8_t*, uint64_t, const uint8_t*, uint64_t,
                                const uint8_t*, uint64_t, uint8_t*, uint64_t, unsigned, unsigned, unsigned*);

static bool read_all(FILE* f, void* p, size_t n) { return std::fread(p, 1, n, f) == n; }

int main(int argc, char** argv) {
    const char* in_path = argc > 1 ? argv[1] : "tb_input.bin";
    const char* out_path = argc > 2 ? argv[2] : "tb_output.bin";
    FILE* f = std::fopen(in_path, "rb");
    if (!f) {
        std::fprintf(stderr, "tb_scan: cannot open %s\n", in_path);
        return 2;
    }
    char magic[8];
    uint32_t nq = 0, nprobe = 0;
    uint64_t sizes[4];
    if (!read_all(f, magic, 8) || std::memcmp(magic, "ANOLETB1", 8) || !read_all(f, &nq, 4) ||
        !read_all(f, &nprobe, 4) || !read_all(f, sizes, sizeof sizes)) {
        std::fprintf(stderr, "tb_scan: %s is not an ANOLETB1 vector file\n", in_path);
        return 2;
    }
    std::vector<std::vector<uint8_t> > bufs(4);
    for (int i = 0; i < 4; ++i) {
        bufs[i].resize(sizes[i] + 1);
        if (!read_all(f, bufs[i].data(), sizes[i])) {
            std::fprintf(stderr, "tb_scan: %s is truncated\n", in_path);
            return 2;
        }
    }
    std::fclose(f);
    std::vector<uint8_t> results((uint64_t)nq * ANOLE_K * (ANOLE_RESULT_BITS / 8) + 1);
    unsigned config = 0;
    const int rc = anole_scan_bytes(bufs[0].data(), sizes[0], bufs[1].data(), sizes[1], bufs[2].data(), sizes[2],
                                    bufs[3].data(), sizes[3], results.data(), results.size() - 1, nq, nprobe,
                                    &config);
    if (rc) return 3;
    FILE* o = std::fopen(out_path, "wb");
    if (!o || std::fwrite(results.data(), 1, results.size() - 1, o) != results.size() - 1 ||
        std::fwrite(&config, 4, 1, o) != 1) {
        std::fprintf(stderr, "tb_scan: cannot write %s\n", out_path);
        return 2;
    }
    std::fclose(o);
    std::printf("tb_scan: %u queries x %u probes, config 0x%08x\n", nq, nprobe, config);
    return 0;
}
