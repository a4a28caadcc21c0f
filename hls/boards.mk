# Target boards: FPGA part, kernel clock, flow (alveo: Vitis v++; pynq: Vivado block design).
PART_u250    := xcu250-figd2104-2L-e
PART_u280    := xcu280-fsvh2892-2L-e
PART_u55c    := xcu55c-fsvh2892-2L-e
PART_pynq-z2 := xc7z020clg400-1
PART_zcu104  := xczu7ev-ffvc1156-2-e
PART_kv260   := xck26-sfvc784-2LV-c
CLOCK_MHZ_u250    := 300
CLOCK_MHZ_u280    := 300
CLOCK_MHZ_u55c    := 300
CLOCK_MHZ_pynq-z2 := 100
CLOCK_MHZ_zcu104  := 200
CLOCK_MHZ_kv260   := 200
# Vivado board parts of the PYNQ boards (their board files must be installed: PYNQ-Z2 from TUL, the others
# ship with Vivado or come from the Xilinx board store).
BOARD_PART_pynq-z2 := tul.com.tw:pynq-z2:part0:1.0
BOARD_PART_zcu104  := xilinx.com:zcu104:part0:1.1
BOARD_PART_kv260   := xilinx.com:kv260_som:part0:1.4
ALVEO_BOARDS := u250 u280 u55c
PYNQ_BOARDS  := pynq-z2 zcu104 kv260
