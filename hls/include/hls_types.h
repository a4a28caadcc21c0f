// HLS types for the anole kernels: the real Xilinx headers when present (Vitis HLS), otherwise the
// small compatibility versions in compat/ so that the C simulation builds with plain g++.
#ifndef ANOLE_HLS_TYPES_H
#define ANOLE_HLS_TYPES_H

#if !defined(ANOLE_FORCE_COMPAT) && defined(__has_include)
#if __has_include(<ap_int.h>) && __has_include(<hls_stream.h>)
#define ANOLE_XILINX_HEADERS 1
#endif
#endif

#ifdef ANOLE_XILINX_HEADERS
#include <ap_int.h>
#include <hls_stream.h>
#else
#include "compat/ap_int.h"
#include "compat/hls_stream.h"
#endif

#endif
