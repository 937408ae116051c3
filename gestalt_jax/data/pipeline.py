"""grain pipelines: seeded train/val split, endless mixed and packed training batches, packed eval batches.

The example stream is a pure function of (seed, position): each source is endless, in a
new seeded order every epoch, and the sources are interleaved in proportion to their weights
(grain's deterministic mix). A global batch of R rows is packed in blocks of B rows
(`config.data.pack_rows`): block b of the R / B packs, first fit (data/packing.py), stream
positions b, b + R/B, b + 2R/B, ... A process packs the blocks that hold its rows of the
batch and keeps those rows. So the batch at every step is the same whatever the number of
processes; a checkpoint saved by P processes resumes on any other number (each process saves
the next position of its blocks; `merge_states` joins them), and a restored iterator
continues bitwise identically.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Sequence

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
                   seed: int, part: int = 0, parts: int = 1, augment: Augment | None = None) -> grain.MapDataset:
    """The endless MapDataset of training examples at stream positions part, part + parts, ...
    (index k = the k-th of them); see `mixed_records` for the arguments."""
    return _part(mixed_records(sources, seed, augment), example_fn, part, parts)


def mixed_records(sources: Sequence[tuple[Sequence, float]], seed: int,
                  augment: Augment | None = None) -> grain.MapDataset:
    """The endless MapDataset of drawn training records (the whole stream, before encoding).

    `sources` are (records, weight) pairs; `augment`, when given, rewrites each drawn record."""
    if not sources:
        raise DataError("no training sources")
    for i, (records, weight) in enumerate(sources):
        if not len(records):
            raise DataError(f"training source {i} has no records")
        if weight <= 0:
            raise DataError(f"training source {i} has weight {weight}; weights must be > 0")
    streams = [grain.MapDataset.range(sys.maxsize).map(_EpochOrder(records, seed, i, augment))
               for i, (records, _) in enumerate(sources)]
    return streams[0] if len(streams) == 1 else grain.MapDataset.mix(streams, [w for _, w in sources])


def _part(mixed: grain.MapDataset, example_fn: Callable[[object], dict], part: int, parts: int) -> grain.MapDataset:
    """Positions part, part + parts, ... of `mixed`, encoded by `example_fn` (one record -> a dict of arrays)."""
    if not 0 <= part < parts:
        raise ValueError(f"stream part {part} outside [0, {parts})")
    return mixed[part::parts].map(example_fn)


def block_rows(rows: int, pack_rows: int) -> int:
    """Rows packed together from one stream: `pack_rows`, or the whole batch when it is smaller."""
    block = min(rows, pack_rows)
    if block < 1 or rows % block:
        raise ValueError(f"a batch of {rows} rows does not split into blocks of {block} rows "
                         f"(config.data.pack_rows={pack_rows})")
    return block


def train_iterator(sources: Sequence[tuple[Sequence, float]], example_fn: Callable[[object], dict],
                   layout: packing.Layout, rows: int, seed: int, process_index: int = 0,
                   process_count: int = 1, augment: Augment | None = None,
                   pack_rows: int = 16) -> grain.DatasetIterator:
    """Endless iterator of this process's rows (`rows // process_count`) of each global packed
    batch of `rows` rows (see the module docstring). Save and restore its position with
    `get_state()` / `set_state()`; `merge_states` joins the states of several processes."""
    local = local_batch_size(rows, process_count)
    block = block_rows(rows, pack_rows)
    first, last = process_index * local, (process_index + 1) * local  # this process's rows
    blocks = range(first // block, -(-last // block))
    mixed = mixed_records(sources, seed, augment)  # one stream (and one epoch order) shared by the blocks
    streams = {b: _part(mixed, example_fn, b, rows // block) for b in blocks}
    packed = _BlockPackDataset(streams, layout, block, rows, first - blocks[0] * block, local)
    # One thread packs the next batches while the device computes (its state is that of the
    # batches handed out, so resume is exact).
    return iter(grain.experimental.ThreadPrefetchIterDataset(packed, prefetch_buffer_size=PREFETCH))


def merge_states(states: Sequence[dict]) -> dict:
    """One iterator state holding every block's position, from the states the processes of a
    run saved (any number of them); a block packed by several processes must agree."""
    merged: dict[str, Any] = {}
    for state in states:
        if "next" not in state:
            raise DataError(f"the data position was saved in an older format {sorted(state)}; "
                            f"start the phase again without --resume")
        shape = {k: state[k] for k in ("rows", "block_rows")}
        if merged and {k: merged[k] for k in shape} != shape:
            raise DataError(f"the processes saved different batch shapes {merged} and {shape}")
        merged.setdefault("next", {})
        for b, n in state["next"].items():
            if merged["next"].setdefault(b, n) != n:
                raise DataError(f"block {b} saved at positions {merged['next'][b]} and {n}")
        merged.update(shape)
    return merged


class _BlockPackDataset(grain.IterDataset):
    """Rows [offset, offset + local) of the blocks packed from `streams` (block -> its stream)."""

    def __init__(self, streams: dict[int, grain.MapDataset], layout: packing.Layout, block: int, rows: int,
                 offset: int, local: int):
        super().__init__()
        self.streams, self.layout, self.block, self.rows = streams, layout, block, rows
        self.offset, self.local = offset, local

    def __iter__(self) -> grain.DatasetIterator:
        return _BlockPackIterator(self)


class _BlockPackIterator(grain.DatasetIterator):
    def __init__(self, ds: _BlockPackDataset):
        super().__init__()
        self._ds = ds
        self._next = dict.fromkeys(ds.streams, 0)   # block -> position of its first example not yet emitted
        self._pending: dict[int, dict] = {}          # block -> that example, when already read

    def __next__(self) -> dict[str, np.ndarray]:
        ds, parts = self._ds, []
        for b, stream in ds.streams.items():
            packer = packing.Packer(ds.layout, ds.block)
            while True:
                example = self._pending.pop(b, None)
                if example is None:
                    example = stream[self._next[b]]
                if not packer.add(example):
                    self._pending[b] = example
                    break
                self._next[b] += 1
            parts.append(packer.batch())
        return {k: np.concatenate([p[k] for p in parts])[ds.offset:ds.offset + ds.local] for k in parts[0]}

    def get_state(self) -> dict[str, Any]:
        return {"rows": self._ds.rows, "block_rows": self._ds.block,
                "next": {str(b): n for b, n in self._next.items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        ds = self._ds
        saved = {k: state.get(k) for k in ("rows", "block_rows")}
        if saved != {"rows": ds.rows, "block_rows": ds.block}:
            raise DataError(f"the data position was saved for batches of {saved['rows']} rows packed in blocks "
                            f"of {saved['block_rows']}; this run has {ds.rows} rows in blocks of {ds.block} "
                            f"(the batch_size of the phase and config.data.pack_rows must stay as they were)")
        missing = [b for b in ds.streams if str(b) not in state["next"]]
        if missing:
            raise DataError(f"the data position of block(s) {missing} was not saved")
        self._next = {b: int(state["next"][str(b)]) for b in ds.streams}
        self._pending = {}


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
