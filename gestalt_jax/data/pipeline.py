"""grain pipelines: seeded train/val split, endless mixed and packed training batches, packed eval batches.

The example stream is a pure function of (seed, position): each source is endless, in a
new seeded order every epoch; the sources are interleaved in proportion to their weights
(grain's deterministic mix); process p of P takes stream positions p, p + P, ..., so
processes never share an example. Each process packs its examples into its rows of every
step's batch (data/packing.py), so a batch has one shape whatever its examples' lengths,
and an iterator restored from `get_state()` continues bitwise identically.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, Sequence

import grain
import numpy as np

from gestalt_jax.data import packing
from gestalt_jax.data.examples import DataError


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
    """Rows per process in a global batch; an error naming both numbers unless it divides."""
    if batch_size % process_count:
        raise ValueError(f"global batch size {batch_size} is not divisible by the process count "
                         f"{process_count}")
    return batch_size // process_count


PREFETCH = 2  # packed batches made ahead of the step that takes them

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


def example_stream(sources: Sequence[tuple[Sequence, float]], example_fn: Callable[[object], dict],
                   seed: int, process_index: int = 0, process_count: int = 1,
                   augment: Augment | None = None) -> grain.MapDataset:
    """This process's endless MapDataset of training examples (index = its k-th example).

    `sources` are (records, weight) pairs; `example_fn` maps one record to a dict of arrays;
    `augment`, when given, rewrites each drawn record first."""
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
    return mixed[process_index::process_count].map(example_fn)


def train_iterator(sources: Sequence[tuple[Sequence, float]], example_fn: Callable[[object], dict],
                   layout: packing.Layout, rows: int, seed: int, process_index: int = 0,
                   process_count: int = 1, augment: Augment | None = None) -> grain.DatasetIterator:
    """Endless iterator of this process's packed batches: `rows // process_count` rows of
    `layout` each (`example_stream` packed in order). Save and restore the position with
    `get_state()` / `set_state()`."""
    local = local_batch_size(rows, process_count)
    stream = example_stream(sources, example_fn, seed, process_index, process_count, augment)
    # Records are in memory and encoding takes microseconds: grain's advice for that case is
    # no reader threads (they only contend for the GIL). One thread packs the next batches while
    # the device computes (its state is that of the batches handed out, so resume is exact).
    options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
    packed = packing.PackIterDataset(stream.to_iter_dataset(options), layout, local)
    return iter(grain.experimental.ThreadPrefetchIterDataset(packed, prefetch_buffer_size=PREFETCH))


def eval_batches(records: Sequence, example_fn: Callable[[object], dict], layout: packing.Layout, rows: int,
                 process_index: int = 0, process_count: int = 1) -> list[tuple[dict, np.ndarray]]:
    """Every record once, in file order, packed into global batches of `rows` rows (the last
    one's unused rows and slots are padding, every weight 0): (this process's rows of the batch,
    the global batch's record index of each slot [rows, segments], -1 where empty). Process p
    gets rows p·r .. (p+1)·r - 1, r = rows // process_count."""
    local = local_batch_size(rows, process_count)
    if not len(records):
        raise DataError("no eval records")
    lo = process_index * local
    return [({k: v[lo:lo + local] for k, v in batch.items()}, index)
            for batch, index in packing.pack_all([example_fn(r) for r in records], layout, rows)]
