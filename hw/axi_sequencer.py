"""The board kernel's launch sequencer (`LaunchSequencer`): the launch state and the core's command stream."""
from __future__ import annotations

from amaranth import Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from host.spec.layout import KernelLayout
from host.spec.scan_params import ScanParams
from hw.interface import Op, code_beat_layout


def launch_signature() -> wiring.Signature:
    """The state of a launch, as the sequencer drives it (`Out`) to the stages that follow its queries.

    `begin` pulses for the cycle a launch is accepted (`start` while idle); `nq` and `nprobe` take the
    launch's arguments at the end of that cycle and hold them until the next launch; `running` is high
    from the cycle after `begin` up to and including the cycle of the launch's `done`.
    """
    return wiring.Signature({"begin": Out(1), "running": Out(1), "nq": Out(32), "nprobe": Out(32)})


class LaunchSequencer(wiring.Component):
    """Runs a launch: sends the core `LIST CODES* END_LIST` per probe and `END_QUERY` per query on `o`.

    Ports: `start`, `nq_arg`, `nprobe_arg` (from the register file; the arguments are sampled with
    `start`), `done` (to the register file), `launch` (`launch_signature`), `lens` (each list's
    length in codes, in probe order), `codes` and `ids` (the list's code beats and id beats, one item
    each per `CODES` beat: `lanes` codes of `m` bytes, `lanes` ids of `id_word_bits`, of which the low
    `id_bits` are used), `o` (the core's command stream `i`), `queries_written` and `results_busy`
    (from the result writer: queries whose K records are acknowledged; a result offered or in flight).

    Timing: `start` while idle begins the launch (`launch.begin`); the first beat is offered the next
    cycle. Per probe `p` of a query: `LIST` (list id `p`) waits for the list's length on `lens` (taken
    with the beat); then `ceil(len / lanes)` `CODES` beats, each waiting for both a code beat and an id
    beat (taken together with it; the last one's lane mask keeps the `len - lanes * (beats - 1)` valid
    lanes); then `END_LIST`. `END_QUERY` follows the `nprobe`-th `END_LIST` (directly if `nprobe` = 0).
    Each beat is offered from the cycle after the previous one was taken, so a list of N codes costs
    `ceil(N / lanes) + 2` cycles when its data is there (`o` always ready). After the `nq`-th `END_QUERY`
    (directly if `nq` = 0) it waits until all `nq` queries are written and `results_busy` is low, then
    pulses `done` for one cycle (`running` falls after it); a new `start` is taken from the next cycle.
    """

    def __init__(self, *, params: ScanParams):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        self.params = params
        self.layout = KernelLayout(params)
        super().__init__({
            "start": In(1), "nq_arg": In(32), "nprobe_arg": In(32), "done": Out(1),
            "launch": Out(launch_signature()),
            "lens": In(stream.Signature(32)),
            "codes": In(stream.Signature(8 * self.layout.code_beat_bytes)),
            "ids": In(stream.Signature(8 * self.layout.id_beat_bytes)),
            "o": Out(stream.Signature(code_beat_layout(params))),
            "queries_written": In(32), "results_busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, lay, beat = self.params, self.layout, self.o.payload
        m.d.comb += self.launch.begin.eq(self.start & ~self.launch.running)
        # code beats: codes are in memory order already; ids are id_word_bits apart
        for lane in range(p.lanes):
            m.d.comb += beat.ids[lane].eq(self.ids.payload[lay.id_word_bits * lane:][:p.id_bits])
        m.d.comb += beat.codes.eq(self.codes.payload)
        self._sequence(m)
        return m

    def _sequence(self, m: Module) -> None:
        """The FSM: IDLE, then LIST CODES* END_LIST per probe and END_QUERY per query, then FINISH."""
        p, beat, launch = self.params, self.o.payload, self.launch
        nq, nprobe, running = launch.nq, launch.nprobe, launch.running
        q, probe = Signal(32), Signal(32)
        beats_left, codes_left = Signal(32), Signal(33)
        both = self.codes.valid & self.ids.valid
        full = (1 << p.lanes) - 1
        len_beats = (self.lens.payload + p.lanes - 1) >> (p.lanes.bit_length() - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [nq.eq(self.nq_arg), nprobe.eq(self.nprobe_arg), q.eq(0), probe.eq(0),
                                 running.eq(1)]
                    with m.If(self.nq_arg == 0):
                        m.next = "FINISH"
                    with m.Elif(self.nprobe_arg == 0):
                        m.next = "END_QUERY"
                    with m.Else():
                        m.next = "LIST"
            with m.State("LIST"):
                m.d.comb += [self.o.valid.eq(self.lens.valid), beat.op.eq(Op.LIST), beat.list.eq(probe)]
                with m.If(self.lens.valid & self.o.ready):
                    m.d.comb += self.lens.ready.eq(1)
                    m.d.sync += [beats_left.eq(len_beats), codes_left.eq(self.lens.payload)]
                    with m.If(self.lens.payload == 0):
                        m.next = "END_LIST"
                    with m.Else():
                        m.next = "CODES"
            with m.State("CODES"):
                m.d.comb += [self.o.valid.eq(both), beat.op.eq(Op.CODES), beat.list.eq(probe), beat.valid.eq(full)]
                with m.If(codes_left < p.lanes):
                    m.d.comb += beat.valid.eq((Const(1, p.lanes + 1) << codes_left[:p.lanes.bit_length()]) - 1)
                with m.If(both & self.o.ready):
                    m.d.comb += [self.codes.ready.eq(1), self.ids.ready.eq(1)]
                    m.d.sync += [beats_left.eq(beats_left - 1), codes_left.eq(codes_left - p.lanes)]
                    with m.If(beats_left == 1):
                        m.next = "END_LIST"
            with m.State("END_LIST"):
                m.d.comb += [self.o.valid.eq(1), beat.op.eq(Op.END_LIST), beat.list.eq(probe)]
                with m.If(self.o.ready):
                    m.d.sync += probe.eq(probe + 1)
                    with m.If(probe + 1 == nprobe):
                        m.next = "END_QUERY"
                    with m.Else():
                        m.next = "LIST"
            with m.State("END_QUERY"):
                m.d.comb += [self.o.valid.eq(1), beat.op.eq(Op.END_QUERY)]
                with m.If(self.o.ready):
                    m.d.sync += [q.eq(q + 1), probe.eq(0)]
                    with m.If(q + 1 == nq):
                        m.next = "FINISH"
                    with m.Elif(nprobe != 0):
                        m.next = "LIST"
            with m.State("FINISH"):
                with m.If((self.queries_written == nq) & ~self.results_busy):
                    m.d.comb += self.done.eq(1)
                    m.d.sync += running.eq(0)
                    m.next = "IDLE"
