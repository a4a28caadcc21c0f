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
ALVEO_BOARDS := u250 u280 u55c
PYNQ_BOARDS  := pynq-z2 zcu104 kv260
