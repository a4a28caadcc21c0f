"""Which memory nodes serve which shard: ``0=h:p|h:p,1=h:p`` on the command line, a YAML file, or the old
``h:p,h:p`` (one node per shard, each node says which shard it serves).

YAML::

    shards:
      0: [10.0.0.1:7070, 10.0.0.2:7070]
      1: [10.0.0.3:7070, 10.0.0.4:7070]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from host.net.frames import parse_address
from host.spec.errors import AnoleError, InputError


@dataclass(slots=True)
class Topology:
    """``shards``: shard id -> replica addresses ('host:port'); ``declared`` False when the shard of each
    address is to be learnt from its INFO (the old one-node-per-shard list)."""

    shards: dict[int, list[str]]
    declared: bool = True

    def __post_init__(self):
        if not self.shards:
            raise InputError("the topology names no memory node")
        seen: dict[str, int] = {}
        for shard, addrs in self.shards.items():
            if isinstance(shard, bool) or not isinstance(shard, int) or shard < 0:
                raise InputError(f"shard ids are integers >= 0, not {shard!r}")
            if not addrs:
                raise InputError(f"shard {shard} has no replica")
            for a in addrs:
                if not isinstance(a, str):
                    raise InputError(f"shard {shard}: a replica address must be 'host:port', not {a!r}")
                try:
                    parse_address(a)
                except AnoleError as e:
                    raise InputError(f"shard {shard}: {e}") from None
                if a in seen:
                    raise InputError(f"{a} is listed twice (shards {seen[a]} and {shard})")
                seen[a] = shard

    @property
    def addresses(self) -> list[str]:
        return [a for addrs in self.shards.values() for a in addrs]

    def check_index(self, nshards: int, where) -> None:
        """Refuse shards the index does not have and shards of the index that nobody serves."""
        if not self.declared:
            return
        unknown = sorted(s for s in self.shards if s >= nshards)
        if unknown:
            raise InputError(f"the topology names shard(s) {unknown}; {where} has shards 0..{nshards - 1}")
        missing = sorted(set(range(nshards)) - set(self.shards))
        if missing:
            raise InputError(f"no memory node serves shard(s) {missing} of {where}; results would be incomplete")

    def __str__(self) -> str:
        if not self.declared:
            return ",".join(self.addresses)
        return ",".join(f"{s}={'|'.join(a)}" for s, a in sorted(self.shards.items()))


def parse_topology(spec) -> Topology:
    """A Topology from 'S=H:P|H:P,...', 'H:P,H:P', a list of addresses, or a YAML file path."""
    if isinstance(spec, Topology):
        return spec
    if isinstance(spec, (list, tuple)):
        spec = ",".join(spec)
    spec = str(spec).strip()
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        return _from_yaml(Path(spec))
    items = [i.strip() for i in spec.split(",") if i.strip()]
    if not any("=" in i for i in items):
        if any("|" in i for i in items):
            raise InputError(f"replicas need shard ids: write 0=h:p|h:p,1=h:p, not {spec!r}")
        dupes = sorted({a for a in items if items.count(a) > 1})
        if dupes:
            raise InputError(f"{dupes[0]} is listed twice")
        return Topology({i: [a] for i, a in enumerate(items)}, declared=False)
    shards: dict[int, list[str]] = {}
    for item in items:
        shard, sep, addrs = item.partition("=")
        if not sep or not shard.strip().isdigit():
            raise InputError(f"bad topology entry {item!r}; expected SHARD=H:P|H:P")
        if int(shard) in shards:
            raise InputError(f"shard {int(shard)} is given twice in {spec!r}")
        shards[int(shard)] = [a.strip() for a in addrs.split("|") if a.strip()]
    return Topology(shards)


def _from_yaml(path: Path) -> Topology:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read the topology file {path}: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"shards"} or not isinstance(doc["shards"], dict):
        raise InputError(f"{path}: expected one key 'shards' mapping shard id -> list of 'host:port'")
    shards = {}
    for shard, addrs in doc["shards"].items():
        if not isinstance(addrs, list):
            raise InputError(f"{path}: shard {shard!r} must list its replicas, not {addrs!r}")
        shards[shard] = addrs
    return Topology(shards)
