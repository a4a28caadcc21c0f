"""Flows over the RTL components: Verilog emission, synthesis and place-and-route reports, .xo packaging."""
