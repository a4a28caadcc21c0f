// Behavioural model of the Lattice ECP5 DP16KD block RAM, for the one configuration anole uses
// (hw/ecp5_ram.py): 512 x 36 pseudo dual port, port A writes, port B reads, 36-bit word = {B, A}.
// Write: at CLKA when CEA & WEA, bytes (9 bits) enabled by ADA[3:0], word address ADA[13:5].
// Read: at CLKB when CEB the word at ADB[13:5] is read; REGMODE NOREG shows it on DOA/DOB after that
// edge, OUTREG one edge later (output register, clock-enabled by OCEB). Any other parameter value
// stops the simulation at time 0 rather than simulating a mode this model does not describe.
module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA,
  input CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB,
  input CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
  parameter CLKAMUX = "CLKA";
  parameter CLKBMUX = "CLKB";

  localparam OUTREG = REGMODE_B == "OUTREG";

  initial begin
    if (DATA_WIDTH_A != 36 || DATA_WIDTH_B != 36)
      $fatal(1, "DP16KD model: only DATA_WIDTH_A = DATA_WIDTH_B = 36 is modelled");
    if (REGMODE_A != REGMODE_B || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG"))
      $fatal(1, "DP16KD model: REGMODE_A and REGMODE_B must be equal, NOREG or OUTREG");
    if (CLKAMUX != "CLKA" || CLKBMUX != "CLKB")
      $fatal(1, "DP16KD model: inverted clocks are not modelled");
  end

  wire [35:0] di = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
                    DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [8:0] waddr = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5};
  wire [3:0] wbyte = {ADA3, ADA2, ADA1, ADA0};
  wire [8:0] raddr = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5};

  reg [35:0] mem [0:511];
  reg [35:0] rd;
  reg [35:0] rd_reg;

  integer b;
  always @(posedge CLKA)
    if (CEA && WEA)
      for (b = 0; b < 4; b = b + 1)
        if (wbyte[b]) mem[waddr][b*9 +: 9] <= di[b*9 +: 9];

  always @(posedge CLKB) begin
    if (CEB) rd <= mem[raddr];
    if (OCEB) rd_reg <= rd;
  end

  wire [35:0] dout = OUTREG ? rd_reg : rd;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0,
          DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = dout;
endmodule
