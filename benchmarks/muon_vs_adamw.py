"""Muon (hidden matrices) + AdamW (the rest) against AdamW everywhere, on one phase of a tier.

    python benchmarks/muon_vs_adamw.py --tier=small --phase=brain --steps=600 --eval_every=50

Trains the phase twice from the same seed and data order, differing only in
`config.<phase>.optimizer`, with early stopping off; reports AdamW's best validation loss
and the step at which each optimizer first reaches it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from absl import app, flags, logging

_TIER = flags.DEFINE_string("tier", "small", "Tier config in configs/.")
_PHASE = flags.DEFINE_enum("phase", "brain", ["brain", "planner", "policy"], "Component to train.")
_STEPS = flags.DEFINE_integer("steps", 600, "Steps per run.")
_EVAL = flags.DEFINE_integer("eval_every", 50, "Steps between validations.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the two runs go (default: a temporary directory).")


def val_curve(workdir: Path, phase: str) -> list[tuple[int, float]]:
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [(x["step"], x["val_loss"]) for x in lines if x["phase"] == phase and "val_loss" in x]


def first_reaching(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((step for step, loss in curve if loss <= target), None)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # checkpoint and backend INFO lines would bury the table
    from gestalt_jax import config as config_lib
    from gestalt_jax import pipeline

    root = Path(_WORKDIR.value or tempfile.mkdtemp(prefix="muon_vs_adamw_"))
    curves = {}
    for optimizer in ("adamw", "muon"):
        c = config_lib.load_tier(_TIER.value)
        section = c[config_lib.PHASE_OF[_PHASE.value]]
        section.update(optimizer=optimizer, steps=_STEPS.value, eval_every=_EVAL.value, patience=10**6)
        c.debug.log_every = _EVAL.value
        workdir = root / optimizer
        pipeline.train(c, workdir, f"tokenizer,{_PHASE.value}", resume=False)
        curves[optimizer] = val_curve(workdir, _PHASE.value)
    _, best = min(curves["adamw"], key=lambda x: x[1])
    print(f"\n{_TIER.value} tier, {_PHASE.value}, {_STEPS.value} steps, validation every {_EVAL.value}:")
    print("| optimizer | best val loss (step) | first step at or below AdamW's best |")
    print("|---|---|---|")
    for name, curve in curves.items():
        step, loss = min(curve, key=lambda x: x[1])
        print(f"| {name} | {loss:.4f} ({step}) | {first_reaching(curve, best)} |")
    print(f"runs in {root}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
