# Package anole_scan_axi (the Amaranth RTL kernel) as a Vitis RTL kernel object (.xo).
# Run by `python -m hw.flow.rtl_xo` (which emits the Verilog, kernel.xml and regs.tcl first):
#   vivado -mode batch -source package_xo.tcl -tclargs <rtl dir> <out .xo> <work dir>
# <rtl dir> holds anole_scan_axi.v, kernel.xml and regs.tcl (ANOLE_KERNEL, ANOLE_TOP, ANOLE_VLNV, ANOLE_FREQ_HZ,
# ANOLE_ADDR_SPACE, ANOLE_BUNDLES and ANOLE_REGS {name offset bytes bundle}, generated from host/spec/regmap.py).
# The packaged IP gets the VLNV that kernel.xml names (checked before package_xo), ap_clk carries FREQ_HZ.
if {$argc != 3} {
    puts stderr "usage: vivado -mode batch -source package_xo.tcl -tclargs <rtl dir> <out.xo> <work dir>"
    exit 2
}
lassign $argv rtl_dir xo_path work_dir
source [file join $rtl_dir regs.tcl]
set ip_dir [file join $work_dir ip]
file delete -force $work_dir
file mkdir $work_dir

create_project -force anole_pack [file join $work_dir pack]
add_files -norecurse [file join $rtl_dir $ANOLE_TOP.v]
set_property top $ANOLE_TOP [current_fileset]
update_compile_order -fileset sources_1
lassign $ANOLE_VLNV vendor library ip_name version
ipx::package_project -root_dir $ip_dir -vendor $vendor -library $library -taxonomy /KernelIP -import_files -set_current false
ipx::unload_core [file join $ip_dir component.xml]
ipx::edit_ip_in_project -upgrade true -name anole_edit -directory [file join $work_dir edit] [file join $ip_dir component.xml]
set core [ipx::current_core]
set_property name $ip_name $core
set_property display_name $ip_name $core
set_property version $version $core
set_property core_revision 1 $core
foreach up [ipx::get_user_parameters -of_objects $core] {
    ipx::remove_user_parameter [get_property NAME $up] $core
}

# clocks and the ap_ctrl_hs register map of the control slave
ipx::associate_bus_interfaces -busif s_axi_control -clock ap_clk $core
set clk_if [ipx::get_bus_interfaces ap_clk -of_objects $core]
set freq [ipx::get_bus_parameters -quiet FREQ_HZ -of_objects $clk_if]
if {$freq eq ""} {
    set freq [ipx::add_bus_parameter FREQ_HZ $clk_if]
}
set_property value $ANOLE_FREQ_HZ $freq
foreach bundle $ANOLE_BUNDLES {
    ipx::associate_bus_interfaces -busif m_axi_$bundle -clock ap_clk $core
}
set mem_map [ipx::add_memory_map -quiet s_axi_control $core]
set block [ipx::add_address_block -quiet reg0 $mem_map]
set_property range $ANOLE_ADDR_SPACE $block
set_property width 32 $block
foreach reg $ANOLE_REGS {
    lassign $reg name offset bytes bundle
    set r [ipx::add_register -quiet $name $block]
    set_property address_offset $offset $r
    set_property size [expr {8 * $bytes}] $r
    if {$bundle ne ""} {
        set p [ipx::add_register_parameter -quiet ASSOCIATED_BUSIF $r]
        set_property value m_axi_$bundle $p
    }
}
set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces -of_objects $core s_axi_control]

set_property sdx_kernel true $core
set_property sdx_kernel_type rtl $core
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity -kernel $core
ipx::save_core $core
set packaged [get_property VLNV $core]
close_project -delete

set fp [open [file join $rtl_dir kernel.xml]]
set kernel_xml [read $fp]
close $fp
if {![regexp {vlnv="([^"]+)"} $kernel_xml -> xml_vlnv] || $xml_vlnv ne $packaged} {
    puts stderr "package_xo.tcl: kernel.xml names [expr {[info exists xml_vlnv] ? $xml_vlnv : {no VLNV}}], the IP was packaged as $packaged"
    exit 1
}

package_xo -force -xo_path $xo_path -kernel_name $ANOLE_KERNEL -ip_directory $ip_dir \
    -kernel_xml [file join $rtl_dir kernel.xml]
puts "anole: wrote $xo_path"
