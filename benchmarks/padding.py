"""How much of a batch is padding, and how many shapes compile, for three ways to batch a tier's
training examples: padding every example to the tier's maximum length (the layout before
packing), length bucketing, and sequence packing (data/packing.py, what training does).

    python benchmarks/padding.py --tier=small

Length bucketing here is the best common form: draw a window of `--window` batches from the
stream, sort it by length, cut it into batches, pad each to the smallest of the bucket lengths
(every `--bucket` positions up to the maximum) that holds it; each (encoder, decoder) bucket
pair is one more compiled step. The brain's share counts its encoder and decoder positions
together (decoder positions include the n_prefix concept slots). Prints a Markdown table.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from absl import app, flags, logging

_TIER = flags.DEFINE_string("tier", "small", "Tier config.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Training batches drawn per layout.")
_WINDOW = flags.DEFINE_integer("window", 16, "Bucketing: batches sorted together.")
_BUCKET = flags.DEFINE_integer("bucket", 16, "Bucketing: bucket lengths are multiples of this.")
_EXAMPLES = flags.DEFINE_integer("examples", 32, "Padded and bucketed batches: examples a step.")


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    import numpy as np

    from gestalt_jax import config as config_lib
    from gestalt_jax import pipeline as train_pipeline
    from gestalt_jax.data import packing, pipeline
    from gestalt_jax.train import loop, phases

    c = config_lib.load_tier(_TIER.value)
    print(f"| component | layout | real positions | compiled shapes | examples/step |")
    print("|---|---|---|---|---|")
    for name in ("brain", "planner", "policy"):
        if name == "brain":
            with tempfile.TemporaryDirectory() as tmp:
                spec = phases.brain_spec(c, train_pipeline.tokenizer(c, Path(tmp), train=True).encode)
        else:
            spec = phases.goal_spec(c, name)
        # group -> (row length, arrays), of the groups that hold tokens (not the planner's trained positions)
        groups = spec.layout.token_groups
        stream = iter(pipeline.example_stream(spec.sources, spec.example_fn, c.seed, augment=spec.augment))
        n = _BATCHES.value * _EXAMPLES.value
        lengths = np.array([[spec.layout.length(next(stream), g) for g in groups] for _ in range(n)])
        maxima = np.array([length for length, _ in groups.values()])
        real = lengths.sum()
        print(f"| {name} | padded to the maximum | {real / (n * maxima.sum()):.1%} | 1 | {_EXAMPLES.value} |")

        def bucket(x, top):
            return min(top, -(-x // _BUCKET.value) * _BUCKET.value)
        shapes, computed = set(), 0
        per_window = _WINDOW.value * _EXAMPLES.value
        for w in range(0, n, per_window):
            window = lengths[w: w + per_window]
            window = window[np.lexsort(window.T[::-1])]  # by the first group's length, then the next
            for b in range(0, len(window), _EXAMPLES.value):
                rows = window[b: b + _EXAMPLES.value]
                shape = tuple(bucket(int(m), int(top)) for m, top in zip(rows.max(axis=0), maxima))
                shapes.add(shape)
                computed += len(rows) * sum(shape)
        print(f"| {name} | length buckets of {_BUCKET.value} | {real / computed:.1%} | {len(shapes)} | "
              f"{_EXAMPLES.value} |")

        rows = c[spec.phase].batch_size
        it = loop.train_iterator(c, spec)
        held, examples = 0, []
        for _ in range(_BATCHES.value):
            batch = next(it)
            held += sum(int(np.count_nonzero(batch[k])) for k in spec.layout.token_keys)
            examples.append(packing.count_examples(batch, spec.layout))
        print(f"| {name} | packed, {rows} rows | {held / (_BATCHES.value * rows * maxima.sum()):.1%} | 1 | "
              f"{np.mean(examples):.1f} |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
