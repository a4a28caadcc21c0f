// Minimal stand-in for Xilinx hls_stream.h: an unbounded FIFO that aborts on a read while empty
// (in C simulation the DATAFLOW processes run one after the other, as in Vitis HLS csim).
#ifndef ANOLE_COMPAT_HLS_STREAM_H
#define ANOLE_COMPAT_HLS_STREAM_H

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>

namespace hls {

template <typename T, int DEPTH = 0> class stream {
    std::deque<T> q_;
    std::string name_;

public:
    stream() : name_("stream") {}
    explicit stream(const char* name) : name_(name) {}
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;

    T read() {
        if (q_.empty()) {
            std::fprintf(stderr, "hls::stream '%s': read while empty (deadlock in hardware)\n", name_.c_str());
            std::abort();
        }
        T v = q_.front();
        q_.pop_front();
        return v;
    }
    void read(T& v) { v = read(); }
    bool read_nb(T& v) {
        if (q_.empty()) return false;
        v = read();
        return true;
    }
    void write(const T& v) { q_.push_back(v); }
    bool write_nb(const T& v) { write(v); return true; }
    bool empty() const { return q_.empty(); }
    bool full() const { return false; }
    size_t size() const { return q_.size(); }
};

}  // namespace hls

#endif
