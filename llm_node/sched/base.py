"""What every scheduler shares: lanes (partitions that run batches at once), work items, queue helpers.

The engine's interface is `SchedulerPolicy.schedule(s) -> Batch`: one batch per step on the whole device.
Partitioned schedulers (PD multiplexing, PD disaggregation) run a batch on each of several lanes at
once; they implement `LanePolicy.dispatch`, which a driver (the simulator, or `MuxEngine` for real
execution) calls whenever a lane is idle. `SingleLane` turns any engine policy into a one-lane policy so
one driver runs every scheduler.
"""
from __future__ import annotations

from dataclasses import dataclass

from llm_node.engine.scheduler import Batch, Scheduler, SchedulerPolicy
from llm_node.engine.sequence import Sequence
from llm_node.sched.slo import SLO


@dataclass(slots=True)
class Work:
    """A batch for one lane: `share` of the device (1.0 = all of it); `extra_s` of transfer before it runs."""

    lane: str
    batch: Batch
    share: float = 1.0
    extra_s: float = 0.0


class LanePolicy:
    """A scheduler that may keep several lanes busy. dispatch() returns the next Work for an idle lane, or a
    float (a time at which to ask again), or None (ask again after the next completion or arrival)."""

    lanes: tuple[str, ...] = ("device",)

    def dispatch(self, s: Scheduler, lane: str, busy: dict[str, Work | None]) -> Work | float | None:
        raise NotImplementedError

    def complete(self, s: Scheduler, work: Work, finished: list[Sequence]) -> None:
        """Called after the driver applied `work`'s results with s.postprocess."""


class SingleLane(LanePolicy):
    """Any engine policy (one batch per step on the whole device) as a one-lane policy."""

    def __init__(self, policy: SchedulerPolicy):
        self.policy = policy
        self.name = getattr(policy, "name", type(policy).__name__)

    def dispatch(self, s, lane, busy):
        batch = self.policy.schedule(s)
        return Work(lane, batch) if batch.seqs else None


def as_lane_policy(policy) -> LanePolicy:
    return policy if isinstance(policy, LanePolicy) else SingleLane(policy)


def now(s: Scheduler) -> float:
    """The scheduler's clock: simulated time in the simulator, perf_counter in the engine."""
    return s.clock()


def slo_of(seq: Sequence) -> SLO | None:
    return seq.slo


def in_prefill(seq: Sequence) -> bool:
    """True until the prompt (or, after preemption, everything so far) is computed."""
    return len(seq) - seq.num_computed_tokens > 1 or len(seq) == seq.num_prompt_tokens


def items(batch: Batch) -> list[tuple[int, int, bool]]:
    """(new tokens, context end, is decode) per sequence: what the latency model reads."""
    return [(n, s.num_computed_tokens + n, not in_prefill(s)) for s, n in zip(batch.seqs, batch.num_new)]
