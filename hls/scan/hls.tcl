# Vitis HLS run of the anole scan kernel, driven by hls/Makefile (csynth / ip) through environment variables:
# ANOLE_HLS_DIR, ANOLE_CFLAGS, ANOLE_PART, ANOLE_CLOCK_MHZ, ANOLE_EXPORT ("ip": Vivado IP catalog for PYNQ).
# export_design writes the IP repository to anole_scan_prj/solution/impl/ip (what the overlay Tcl adds to
# ip_repo_paths) with the VLNV xilinx.com:hls:anole_scan:1.0 (host/spec/regmap.py HLS_VLNV).
set hls_dir $::env(ANOLE_HLS_DIR)
set cflags  $::env(ANOLE_CFLAGS)
set export  [expr {[info exists ::env(ANOLE_EXPORT)] ? $::env(ANOLE_EXPORT) : ""}]

open_project -reset anole_scan_prj
set_top anole_scan
add_files $hls_dir/scan/scan.cpp -cflags $cflags
add_files -tb $hls_dir/scan/scan_shim.cpp -cflags $cflags
add_files -tb $hls_dir/scan/tb_scan.cpp -cflags $cflags
open_solution -reset solution -flow_target [expr {$export eq "ip" ? "vivado" : "vitis"}]
set_part $::env(ANOLE_PART)
create_clock -period [expr {1000.0 / $::env(ANOLE_CLOCK_MHZ)}] -name default
config_interface -m_axi_addr64=true
csynth_design
if {$export eq "ip"} {
    export_design -format ip_catalog -vendor xilinx.com -library hls -version 1.0
}
exit
