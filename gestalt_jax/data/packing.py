"""Sequence packing: examples of any length laid end to end in rows of a fixed length.

An example is a dict of 1-D arrays of its own length, no padding. A `Layout` groups a
component's sequences by the row they share (the brain's prompt bytes in one row, its
decoder tokens in another) and names the arrays that hold one value per example (the
policy's labels). `Packer` places examples in order, each in the first row where all its
sequences still fit and that holds fewer than `segments` examples. A packed batch holds,
for every group g, the rows of its arrays plus `g_seg` (the example's slot in its row,
1..segments; 0 on padding); a per-example array becomes [rows, segments, ...], its
positions shifted to where the example starts in the row.

The models never let attention, pooling or n-grams cross from one slot to the next, so a
packed row computes what its examples would alone, and no compute goes to padding beyond
the end of each row. data/pipeline.py packs the endless training streams into batches of
a fixed shape (one compiled step), `pack_all` a finite list (eval).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from gestalt_jax.data.examples import DataError

SEG = "_seg"  # suffix of a group's slot array


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one component's examples pack into rows.

    groups: group -> (row length, the example arrays laid along that row).
    fill: the padding value of each array (0 where not given).
    per_example: arrays with one value (or one fixed-size vector) per example.
    offsets: arrays (per-example, or laid along a group's row) holding positions in a group's
    sequence, shifted by the example's start in that group's row.
    index_groups: groups whose rows hold positions of another group's row rather than tokens of
    their own (the planner's trained positions); they fill rows like any group but are not
    counted as tokens.
    """
    groups: dict[str, tuple[int, tuple[str, ...]]]
    segments: int
    fill: dict[str, int] = dataclasses.field(default_factory=dict)
    per_example: tuple[str, ...] = ()
    offsets: dict[str, str] = dataclasses.field(default_factory=dict)
    index_groups: tuple[str, ...] = ()

    @property
    def segment_keys(self) -> tuple[str, ...]:
        """The batch's slot arrays, one per group."""
        return tuple(g + SEG for g in self.groups)

    @property
    def token_groups(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """The groups that hold tokens (every group but the index groups), as in `groups`."""
        return {g: v for g, v in self.groups.items() if g not in self.index_groups}

    @property
    def token_keys(self) -> tuple[str, ...]:
        """The slot arrays of the groups that hold tokens."""
        return tuple(g + SEG for g in self.token_groups)

    def length(self, example: dict, group: str) -> int:
        return len(example[self.groups[group][1][0]])


class Packer:
    """Fills `rows` rows of `layout`; `add` returns False when an example fits in none."""

    def __init__(self, layout: Layout, rows: int):
        self.layout, self.rows = layout, rows
        self.used = {g: np.zeros(rows, np.int64) for g in layout.groups}
        self.count = np.zeros(rows, np.int64)
        self.placed: list[tuple[int, dict]] = []  # (row, example) in the order added

    def __len__(self) -> int:
        return len(self.placed)

    def add(self, example: dict) -> bool:
        layout = self.layout
        need = {g: layout.length(example, g) for g in layout.groups}
        for g, n in need.items():
            if n > layout.groups[g][0]:
                raise DataError(f"an example's {g} sequence holds {n} positions, more than a row's "
                                f"{layout.groups[g][0]}")
        room = self.count < layout.segments
        for g, n in need.items():
            room &= self.used[g] + n <= layout.groups[g][0]
        if not room.any():
            return False
        row = int(np.argmax(room))
        for g, n in need.items():
            self.used[g][row] += n
        self.count[row] += 1
        self.placed.append((row, example))
        return True

    def batch(self, template: dict | None = None) -> dict[str, np.ndarray]:
        """The packed arrays; `template` (an example) gives dtypes and shapes when nothing was added."""
        layout, R, S = self.layout, self.rows, self.layout.segments
        first = self.placed[0][1] if self.placed else template
        if first is None:
            raise ValueError("Packer.batch: nothing packed and no template example")
        out = {}
        for g, (length, names) in layout.groups.items():
            for name in names:
                out[name] = np.full((R, length), layout.fill.get(name, 0), first[name].dtype)
            out[g + SEG] = np.zeros((R, length), np.int32)
        for name in layout.per_example:
            value = np.asarray(first[name])
            out[name] = np.full((R, S, *value.shape), layout.fill.get(name, 0), value.dtype)
        at = {g: np.zeros(R, np.int64) for g in layout.groups}
        slot = np.zeros(R, np.int64)
        for row, example in self.placed:
            start = {g: at[g][row] for g in layout.groups}
            for g, (_, names) in layout.groups.items():
                a, n = start[g], layout.length(example, g)
                for name in names:
                    out[name][row, a:a + n] = _shifted(layout, name, example[name], start)
                out[g + SEG][row, a:a + n] = slot[row] + 1
                at[g][row] += n
            for name in layout.per_example:
                out[name][row, slot[row]] = _shifted(layout, name, np.asarray(example[name]), start)
            slot[row] += 1
        return out


def _shifted(layout: Layout, name: str, value: np.ndarray, start: dict) -> np.ndarray:
    """An example's array as placed in its row: positions (layout.offsets) moved by where the
    example starts in the group they index."""
    return value + start[layout.offsets[name]].astype(value.dtype) if name in layout.offsets else value


def count_examples(batch: dict, layout: Layout) -> int:
    """Examples in `batch` (a packed batch of `layout`): each row's slots run 1..k."""
    return int(np.sum(np.max(batch[layout.segment_keys[0]], axis=1)))


def pack_all(examples: Sequence[dict], layout: Layout, rows: int) -> list[tuple[dict, np.ndarray]]:
    """Every example, in order, in batches of `rows` rows: (batch, index) where index [rows,
    segments] holds each slot's position in `examples` (-1 where empty)."""
    if not len(examples):
        raise DataError("nothing to pack")
    out, packer, members = [], Packer(layout, rows), []

    def flush():
        index = np.full((rows, layout.segments), -1, np.int64)
        slot = np.zeros(rows, np.int64)
        for (row, _), i in zip(packer.placed, members):
            index[row, slot[row]] = i
            slot[row] += 1
        out.append((packer.batch(examples[0]), index))

    for i, example in enumerate(examples):
        if not packer.add(example):
            flush()
            packer, members = Packer(layout, rows), []
            packer.add(example)
        members.append(i)
    flush()
    return out
