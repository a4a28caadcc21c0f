# Vivado block design of the anole PYNQ overlay: Zynq PS + the anole_scan HLS IP (exported by
# `make -C hls ip` into IP_DIR = anole_scan_prj/solution/impl/ip), the kernel's AXI4-Lite slave on the PS's
# general-purpose master, its four AXI4 masters (m_axi_gmem0..3, host/spec/regmap.py M_AXI_BUNDLES) on the
# PS's high-performance ports. The project is created for the board part (BOARD_PART, hls/boards.mk), so
# apply_board_preset configures the PS (DDR, MIO, clocks) as the board needs.
# Writes OUT_DIR/anole.bit and OUT_DIR/anole.hwh (same basename: pynq.Overlay loads both).
#
#   vivado -mode batch -source anole_overlay.tcl -tclargs BOARD PART BOARD_PART IP_DIR OUT_DIR CLOCK_MHZ
#   BOARD: pynq-z2 (Zynq-7000) | zcu104 | kv260 (Zynq UltraScale+); run by `make -C hls overlay BOARD=...`.

if {$argc != 6} {
    puts stderr "usage: vivado -mode batch -source anole_overlay.tcl -tclargs BOARD PART BOARD_PART IP_DIR OUT_DIR CLOCK_MHZ"
    exit 2
}
lassign $argv board part board_part ip_dir out_dir clock_mhz
set bundles {gmem0 gmem1 gmem2 gmem3}
set kernel_vlnv xilinx.com:hls:anole_scan:1.0
if {![file isdirectory $ip_dir]} {
    puts stderr "anole_overlay: no HLS IP repository $ip_dir; run `make -C hls ip BOARD=$board` first"
    exit 2
}

create_project -force anole_overlay [file join $out_dir vivado] -part $part
if {[lsearch -exact [get_board_parts -quiet $board_part] $board_part] < 0} {
    puts stderr "anole_overlay: Vivado has no board files for $board_part; install them (PYNQ-Z2: TUL's board\
        files into <Vivado>/data/boards/board_files; ZCU104/KV260: Vivado's board store) and rerun"
    exit 2
}
set_property board_part $board_part [current_project]
set_property ip_repo_paths [list $ip_dir] [current_project]
update_ip_catalog
create_bd_design anole

switch -- $board {
    pynq-z2 {
        set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7 ps]
        apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
            -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps
        set_property -dict [list CONFIG.PCW_USE_M_AXI_GP0 1 CONFIG.PCW_USE_S_AXI_HP0 1 CONFIG.PCW_USE_S_AXI_HP1 1 \
            CONFIG.PCW_USE_S_AXI_HP2 1 CONFIG.PCW_USE_S_AXI_HP3 1 \
            CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz] $ps
        set ctrl_master /ps/M_AXI_GP0
        set hp_ports {/ps/S_AXI_HP0 /ps/S_AXI_HP1 /ps/S_AXI_HP2 /ps/S_AXI_HP3}
        set clock /ps/FCLK_CLK0
    }
    zcu104 - kv260 {
        set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e ps]
        apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
        set_property -dict [list CONFIG.PSU__USE__M_AXI_GP0 1 CONFIG.PSU__USE__M_AXI_GP1 0 CONFIG.PSU__USE__M_AXI_GP2 0 \
            CONFIG.PSU__USE__S_AXI_GP2 1 CONFIG.PSU__USE__S_AXI_GP3 1 CONFIG.PSU__USE__S_AXI_GP4 1 \
            CONFIG.PSU__USE__S_AXI_GP5 1 CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz] $ps
        set ctrl_master /ps/M_AXI_HPM0_FPD
        set hp_ports {/ps/S_AXI_HP0_FPD /ps/S_AXI_HP1_FPD /ps/S_AXI_HP2_FPD /ps/S_AXI_HP3_FPD}
        set clock /ps/pl_clk0
    }
    default {
        puts stderr "anole_overlay: unknown board '$board'; choose pynq-z2, zcu104 or kv260"
        exit 2
    }
}

set kernel [create_bd_cell -type ip -vlnv $kernel_vlnv anole_scan_0]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
    -config [list Clk_master $clock Clk_slave $clock Clk_xbar $clock Master $ctrl_master \
             Slave /anole_scan_0/s_axi_control intc_ip New master_apm 0] \
    [get_bd_intf_pins anole_scan_0/s_axi_control]
foreach bundle $bundles hp $hp_ports {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
        -config [list Clk_master $clock Clk_slave $clock Clk_xbar $clock Master /anole_scan_0/m_axi_$bundle \
                 Slave $hp intc_ip New master_apm 0] \
        [get_bd_intf_pins [string trimleft $hp /]]
}
assign_bd_address
validate_bd_design
save_bd_design

set bd_file [get_files anole.bd]
make_wrapper -files $bd_file -top
add_files -norecurse [file join [file dirname $bd_file] hdl anole_wrapper.v]
set_property top anole_wrapper [current_fileset]
launch_runs impl_1 -to_step write_bitstream -jobs 8
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    puts stderr "anole_overlay: implementation failed; see [get_property DIRECTORY [get_runs impl_1]]"
    exit 1
}
file mkdir $out_dir
file copy -force [lindex [glob [get_property DIRECTORY [get_runs impl_1]]/*.bit] 0] [file join $out_dir anole.bit]
set hwh [glob -nocomplain [file join $out_dir vivado anole_overlay.gen sources_1 bd anole hw_handoff anole.hwh] \
                          [file join $out_dir vivado anole_overlay.srcs sources_1 bd anole hw_handoff anole.hwh]]
if {$hwh eq ""} {
    puts stderr "anole_overlay: no hw_handoff/anole.hwh found"
    exit 1
}
file copy -force [lindex $hwh 0] [file join $out_dir anole.hwh]
puts "anole_overlay: wrote [file join $out_dir anole.bit] and anole.hwh"
