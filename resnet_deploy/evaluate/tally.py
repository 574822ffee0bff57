"""What parity counts while it runs: per candidate, its Accumulator against Keras, its serving
time and its runtime facts; per pair of runtimes, their agreement. A tally is built batch by
batch, and tallies of shards (other processes, other machines) merge exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from resnet_deploy.portable.metrics import Accumulator
from resnet_deploy.progress import Progress


@dataclass
class Tally:
    names: list[str]  # "keras" first, then each candidate's name
    against: dict[str, Accumulator] = field(default_factory=dict)
    pairs: dict[str, Accumulator] = field(default_factory=dict)  # "a|b", a before b in names
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)
    count: int = 0

    @classmethod
    def of(cls, candidates: list[str]) -> "Tally":
        names = ["keras", *candidates]
        return cls(
            names,
            {c: Accumulator() for c in candidates},
            {f"{a}|{b}": Accumulator() for i, a in enumerate(names) for b in names[i + 1 :]},
            dict.fromkeys(candidates, 0.0),
        )

    def run(self, reference: Any, candidates: list[Any], progress: Progress) -> "Tally":
        """Every candidate's runner serves every batch of the reference (active runners)."""
        label = f"parity of {len(candidates)} artifact(s) against Keras"
        for x, labels, ref in progress.track(reference.batches(), reference.count, label, weight=lambda b: len(b[0])):
            outputs = {"keras": ref}
            for c in candidates:
                t0 = time.perf_counter()
                outputs[c.name] = c.runner.serve(x)
                self.seconds[c.name] += time.perf_counter() - t0
                self.against[c.name].add(ref, outputs[c.name], labels)
            for key, acc in self.pairs.items():
                a, b = key.split("|")
                acc.add(outputs[a], outputs[b])
            self.count += len(x)
        self.info = {c.name: c.runner.info() for c in candidates}
        return self

    def merge(self, other: "Tally") -> "Tally":
        for name, acc in self.against.items():
            acc.merge(other.against[name])
        for key, acc in self.pairs.items():
            acc.merge(other.pairs[key])
        for name in self.seconds:
            self.seconds[name] += other.seconds[name]
        self.info = self.info or other.info
        self.count += other.count
        return self

    def agreement(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        acc = self.pairs.get(f"{a}|{b}") or self.pairs[f"{b}|{a}"]
        m = acc.result()
        return float(m["top1_agreement"] if acc.classifier else m["cosine"])

    def state(self) -> dict:
        """Plain data, to send between processes."""
        return {
            "names": self.names,
            "against": {k: a.state() for k, a in self.against.items()},
            "pairs": {k: a.state() for k, a in self.pairs.items()},
            "seconds": self.seconds,
            "info": self.info,
            "count": self.count,
        }

    @classmethod
    def from_state(cls, s: dict) -> "Tally":
        return cls(
            list(s["names"]),
            {k: Accumulator(v) for k, v in s["against"].items()},
            {k: Accumulator(v) for k, v in s["pairs"].items()},
            dict(s["seconds"]),
            dict(s["info"]),
            int(s["count"]),
        )
