"""Which samples a set takes when it takes fewer than its source holds: a seeded sample,
stratified by label where there are labels, never "the first N" (a class-sorted folder would
give its first classes only). The choice is recorded: seed, per-class counts, classes missing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Selection:
    """Indices into the source, ascending (the source is read in its own order), and the record."""

    indices: np.ndarray
    strategy: str  # "all", "stratified" or "random"
    seed: int
    available: int
    per_class: dict[str, int] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def record(self) -> dict:
        """What manifests and reports say about the sample."""
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "count": int(len(self.indices)),
            "available": self.available,
            "per_class": self.per_class or None,
            "missing_classes": list(self.missing),
        }


def _allocate(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n split over classes in proportion to their counts (largest remainder, ties broken by the
    seed); every class gets one first when n reaches the number of classes."""
    k = len(counts)
    floor = np.minimum(counts, 1) if n >= k else np.zeros(k, np.int64)
    rest = n - int(floor.sum())
    share = rest * (counts - floor) / max(int((counts - floor).sum()), 1)
    alloc = floor + np.floor(share).astype(np.int64)
    order = np.lexsort((rng.permutation(k), -(share - np.floor(share))))
    for c in order[: n - int(alloc.sum())]:
        alloc[c] += 1
    return np.minimum(alloc, counts)


def choose(labels: np.ndarray | None, n: int, available: int, seed: int, names: list[str] | None = None) -> Selection:
    """The seeded subset of n of `available` samples (all of them when n >= available)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        idx = np.arange(available) if n >= available else np.sort(rng.choice(available, n, replace=False))
        return Selection(idx, "all" if n >= available else "random", seed, available)
    classes, counts = np.unique(labels, return_counts=True)
    if n >= available:
        idx, strategy = np.arange(available), "all"
    else:
        alloc = _allocate(counts, n, rng)
        picks = [rng.choice(np.flatnonzero(labels == c), a, replace=False) for c, a in zip(classes, alloc) if a]
        idx, strategy = np.sort(np.concatenate(picks)), "stratified"
    taken = dict(zip(*np.unique(labels[idx], return_counts=True)))

    def name(c: object) -> str:
        return names[int(c)] if names and 0 <= int(c) < len(names) else str(c)  # type: ignore[call-overload]

    per_class = {name(c): int(taken.get(c, 0)) for c in classes}
    missing = tuple(name(c) for c in classes if c not in taken)
    return Selection(idx, strategy, seed, available, per_class, missing)


def notes(selection: Selection, requested: int | None, what: str, everything: bool = False) -> list[str]:
    """The lines a user must see: how many samples when no count was given, fewer samples than
    asked for, classes left out."""
    lines = []
    count = len(selection.indices)
    if everything:
        lines.append(f"{what} not given: using all {count} samples of the data (pass {what} N for a seeded subset)")
    if requested is not None and selection.available < requested:
        lines.append(
            f"{what}: the data has {selection.available} samples, {requested} were asked for; using "
            f"{selection.available} (pass more data or a smaller count to silence this)"
        )
    if selection.missing:
        shown = ", ".join(selection.missing[:8]) + (" ..." if len(selection.missing) > 8 else "")
        lines.append(
            f"{what}: {count} samples cannot cover the data's {len(selection.per_class)} classes; "
            f"{len(selection.missing)} left out ({shown}); pass a count of at least {len(selection.per_class)}"
        )
    return lines
