"""grain pipelines: seeded train/val split, endless mixed training batches, padded eval batches.

The training stream is a pure function of (seed, position): each source is endless, in a
new seeded order every epoch; the sources are interleaved in proportion to their weights
(grain's deterministic mix); process p of P takes stream positions p, p + P, ... So the
global batch at step s is the same whatever P is, processes never share an example, and an
iterator restored from `get_state()` continues bitwise identically.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, Sequence

import grain
import numpy as np

from gestalt_jax.data.examples import DataError, stack

# Eval padding zeroes these: the per-position loss weights (brain, planner) and the
# per-example weight of the policy, whose losses are per example.
WEIGHT_KEYS = ("dec_w", "weights", "example_w")


def split(records: Sequence, val_frac: float, seed: int) -> tuple[list, list]:
    """(train, val), both in file order; val holds round(val_frac · n) records, at least one."""
    n = len(records)
    if n < 2:
        raise DataError(f"cannot split {n} record(s) into train and val: need at least 2")
    n_val = min(n - 1, max(1, round(val_frac * n)))
    val_idx = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return ([r for i, r in enumerate(records) if i not in val_idx],
            [r for i, r in enumerate(records) if i in val_idx])


def local_batch_size(batch_size: int, process_count: int) -> int:
    """Examples per process in a global batch; an error naming both numbers unless it divides."""
    if batch_size % process_count:
        raise ValueError(f"global batch size {batch_size} is not divisible by the process count "
                         f"{process_count}")
    return batch_size // process_count


# augment(record, rng) -> record: a per-draw rewrite (data/augment.py), seeded by the draw's index.
Augment = Callable[[object, np.random.Generator], object]


class _EpochOrder:
    """Element k of one source's endless stream: epoch k // n in its own seeded order.

    Not grain's `shuffle`: on grain 0.2.18 its index_shuffle took ~0.6 ms per element for
    50 records and ~7 ms for 4 (the smaller the source, the slower), which would stall
    training on a small corpus. A cached numpy permutation per epoch is the same pure function of
    (seed, index) at a negligible cost.
    """

    def __init__(self, records: Sequence, seed: int, source: int, augment: Augment | None = None):
        self.records, self.key, self.augment = list(records), (seed, source), augment
        self.order = functools.lru_cache(maxsize=4)(self._order)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([*self.key, epoch]).permutation(len(self.records))

    def __call__(self, k: int):
        epoch, i = divmod(int(k), len(self.records))
        record = self.records[self.order(epoch)[i]]
        if self.augment is None:
            return record
        return self.augment(record, np.random.default_rng([*self.key, int(k), 1]))


def train_dataset(sources: Sequence[tuple[Sequence, float]], example_fn: Callable[[object], dict],
                  batch_size: int, seed: int, process_index: int = 0,
                  process_count: int = 1, augment: Augment | None = None) -> grain.MapDataset:
    """The endless batched MapDataset of `train_iterator` (index = this process's step)."""
    local = local_batch_size(batch_size, process_count)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} outside [0, {process_count})")
    if not sources:
        raise DataError("no training sources")
    for i, (records, weight) in enumerate(sources):
        if not len(records):
            raise DataError(f"training source {i} has no records")
        if weight <= 0:
            raise DataError(f"training source {i} has weight {weight}; weights must be > 0")
    parts = [grain.MapDataset.range(sys.maxsize).map(_EpochOrder(records, seed, i, augment))
             for i, (records, _) in enumerate(sources)]
    mixed = parts[0] if len(parts) == 1 else grain.MapDataset.mix(parts, [w for _, w in sources])
    return mixed[process_index::process_count].map(example_fn).batch(local, drop_remainder=True,
                                                                     batch_fn=stack)


def train_iterator(sources: Sequence[tuple[Sequence, float]], example_fn: Callable[[object], dict],
                   batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                   read_options: grain.ReadOptions | None = None,
                   augment: Augment | None = None) -> grain.DatasetIterator:
    """Endless iterator of this process's batches (dicts of [batch_size // process_count, ...]).

    `sources` are (records, weight) pairs; `example_fn` maps one record to a dict of arrays;
    `augment`, when given, rewrites each drawn record first.
    Save and restore the position with `get_state()` / `set_state()`.
    """
    ds = train_dataset(sources, example_fn, batch_size, seed, process_index, process_count, augment)
    # Records are in memory and encoding takes microseconds: grain's advice for that case is
    # no reader threads (they only contend for the GIL). Callers may pass their own.
    options = read_options or grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
    return iter(ds.to_iter_dataset(options))


def eval_batches(records: Sequence, example_fn: Callable[[object], dict], batch_size: int,
                 process_index: int = 0, process_count: int = 1) -> list[dict]:
    """One pass in file order; the last batch is filled with repeats whose WEIGHT_KEYS are 0,
    so every record counts exactly once. With several processes each gets its rows of every
    global batch (process p: rows p·b .. (p+1)·b - 1, b = batch_size // process_count)."""
    local = local_batch_size(batch_size, process_count)
    if not len(records):
        raise DataError("no eval records")
    examples = [example_fn(r) for r in records]
    pad = -len(examples) % batch_size
    filler = []
    for i in range(pad):
        copy = dict(examples[i % len(examples)])
        for k in WEIGHT_KEYS:
            if k in copy:
                copy[k] = np.zeros_like(copy[k])
        filler.append(copy)
    examples += filler
    lo = process_index * local
    return [stack(examples[start + lo: start + lo + local]) for start in range(0, len(examples), batch_size)]
