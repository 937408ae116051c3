"""Where training metrics go: the console, `workdir/metrics.jsonl` and TensorBoard event files."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import jax


class MetricsWriter:
    """Only process 0 writes; every line of metrics.jsonl is one JSON object with phase and step."""

    def __init__(self, workdir: str | Path):
        self.enabled = jax.process_index() == 0
        self.workdir = Path(workdir)
        self._jsonl = None
        self._tb = None
        if self.enabled:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.workdir / "metrics.jsonl", "a", encoding="utf-8")
            from tensorboardX import SummaryWriter  # writes event files without TensorFlow
            # Named by process too: two processes training side by side (config.parallel_phases)
            # may start their writers in the same second, which alone names the file.
            self._tb = SummaryWriter(str(self.workdir / "tensorboard"), filename_suffix=f".{os.getpid()}")

    def write(self, phase: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items()}
        self._jsonl.write(json.dumps(dict(phase=phase, step=step, time=time.time(), **clean)) + "\n")
        self._jsonl.flush()
        for k, v in clean.items():
            if math.isfinite(v):
                self._tb.add_scalar(f"{phase}/{k}", v, step)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


def progress(phase: str, step: int, total: int, values: dict[str, float], started: float,
             start_step: int) -> str:
    """One console line: a bar, the step, the key numbers and the time left, at the pace of the
    steps run since `started` (at `start_step`: a resumed phase did not just run the ones before)."""
    width = 20
    done = step / max(total, 1)
    bar = "#" * int(done * width) + "." * (width - int(done * width))
    elapsed, ran = time.time() - started, step - start_step
    eta = elapsed / ran * (total - step) if ran > 0 else float("nan")
    shown = "  ".join(f"{k} {_fmt(v)}" for k, v in values.items())
    return f"[{phase}] [{bar}] {step}/{total}  {shown}  eta {_duration(eta)}"


def _fmt(v: float) -> str:
    if v != v:
        return "nan"
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def log(line: str) -> None:
    if jax.process_index() == 0:
        print(line, file=sys.stdout, flush=True)
