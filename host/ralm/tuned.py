"""The settings chosen on the dev split for a datastore, saved beside it as DIR/tuned.json: what `anole demo`
and the serving API use unless told otherwise, with the dev and test figures behind the choice."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from host.spec.errors import IndexFormatError, InputError

TUNED = "tuned.json"


@dataclass(slots=True)
class PerplexityConfig:
    """The kNN-LM protocol of ``anole ralm eval``: the held-out files split into dev and test by file
    (``seed``, ``dev_fraction``); every lambda x k x temperature scored from one retrieval per nprobe x
    lut_bits; the best setting on dev is reported on test; leakage by ``ngram``-grams."""

    lambdas: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    ks: tuple[int, ...] = (1, 4, 8, 16, 32, 64, 100)
    temperatures: tuple[float, ...] = (0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)
    nprobes: tuple[int, ...] = (8, 32)
    lut_bits: tuple[int, ...] = (8, 16)
    window: int = 128
    seed: int = 0
    dev_fraction: float = 0.5
    ngram: int = 16

    def __post_init__(self):
        if not self.lambdas or any(not 0 <= x <= 1 for x in self.lambdas):
            raise InputError(f"lambdas must be in [0, 1], not {self.lambdas}")
        if not self.ks or any(k < 1 or k > 100 for k in self.ks):
            raise InputError(f"k must be in 1..100, not {self.ks}")
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise InputError(f"temperatures must be > 0, not {self.temperatures}")
        if not self.nprobes or not self.lut_bits or min(self.nprobes) < 1:
            raise InputError(f"need nprobes >= 1 and lut_bits, got {self.nprobes}, {self.lut_bits}")


@dataclass(slots=True)
class Tuned:
    """Retrieval settings of one datastore (kind "knn": also lam, k, temperature) and ``figures``: the dev and
    test numbers of the protocol that chose them (docs/ralm.md, "Quality")."""

    kind: str
    nprobe: int
    lut_bits: int = 16
    k: int = 100
    lam: float | None = None
    temperature: float | None = None
    figures: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("knn", "chunks"):
            raise InputError(f"tuned kind must be knn or chunks, not {self.kind!r}")
        if self.nprobe < 1 or not 8 <= self.lut_bits <= 16 or not 1 <= self.k <= 100:
            raise InputError(f"bad tuned settings: nprobe={self.nprobe}, lut_bits={self.lut_bits}, k={self.k}")
        if self.kind == "knn" and (self.lam is None or not 0 <= self.lam <= 1 or not (self.temperature or 0) > 0):
            raise InputError(f"kNN-LM settings need lambda in [0, 1] and temperature > 0, got lam={self.lam}, "
                             f"temperature={self.temperature}")

    def summary(self) -> str:
        """One line: the chosen settings and the test figure behind them."""
        f = self.figures
        if self.kind == "knn":
            return (f"kNN-LM settings chosen on dev: lambda {self.lam}, K {self.k}, T {self.temperature}, nprobe "
                    f"{self.nprobe}, lut_bits {self.lut_bits}; test perplexity {f['base_test']:.2f} -> "
                    f"{f['knn_test']:.2f} ({f['test_tokens']:,} tokens)")
        rates = ", ".join(f"{k} {v:.3f}" for k, v in f["test"].items())
        return f"type-1 settings chosen on dev: nprobe {self.nprobe}, lut_bits {self.lut_bits}; test hit rates {rates}"

    def lines(self) -> list[str]:
        """The protocol's report: dev and test figures, the choice, leakage (kNN-LM) or exact search (type 1)."""
        f = self.figures
        if self.kind == "chunks":
            q = ", ".join(f"{k} {v['dev']} dev / {v['test']} test" for k, v in f["questions"].items())
            return [f"questions (seed {f['seed']}): {q}",
                    f"chosen on dev: nprobe {self.nprobe}, lut_bits {self.lut_bits} (dev top-10: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in f["dev"].items()) + ")",
                    "test hit rates: " + ", ".join(f"{k} {v:.3f} (exact search {f['exact_test'][k]:.3f})"
                                                   for k, v in f["test"].items())]

        def gain(new, old):
            return f"{new:.2f} ({100 * (new / old - 1):+.1f} %)"
        out = [f"held-out files split by file (seed {f['seed']}): dev {f['dev_tokens']:,} tokens, test "
               f"{f['test_tokens']:,} tokens; datastore {f['datastore_keys']:,} keys",
               f"base LM perplexity: dev {f['base_dev']:.2f}, test {f['base_test']:.2f}",
               f"chosen on dev: lambda {self.lam}, K {self.k}, T {self.temperature}, nprobe {self.nprobe}, lut_bits "
               f"{self.lut_bits}: kNN-LM dev {gain(f['knn_dev'], f['base_dev'])}, test "
               f"{gain(f['knn_test'], f['base_test'])}",
               f"(the best setting on test, an optimistic figure tuned on the tokens it reports: "
               f"{f['test_oracle']:.2f})"]
        if "leakage" in f:
            lk = f["leakage"]
            parts = [f"{name} base {lk['base_' + part]:.2f} -> kNN-LM {gain(lk['knn_' + part], lk['base_' + part])}"
                     if lk["base_" + part] is not None else f"{name} none" for name, part in
                     (("on them", "leaked"), ("on the rest", "clean"))]
            out.append(f"leakage: {100 * lk['fraction']:.1f} % of test targets ({lk['positions']:,}) follow a "
                       f"{lk['ngram']}-gram found in the datastore's text; " + "; ".join(parts))
        return out


def save_tuned(datastore_dir: str | Path, tuned: Tuned) -> Path:
    path = Path(datastore_dir) / TUNED
    path.write_text(json.dumps(asdict(tuned), indent=1) + "\n")
    return path


def load_tuned(datastore_dir: str | Path) -> Tuned | None:
    """The dev-chosen settings saved beside a datastore; None when it has none (never evaluated)."""
    path = Path(datastore_dir) / TUNED
    if not path.is_file():
        return None
    try:
        return Tuned(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, InputError) as e:
        raise IndexFormatError(f"{path}: not a tuned-settings file ({e}); rerun `anole ralm eval`") from None
