"""The periodic work of a training phase, as small named pieces the step loop calls.

Every step's loss joins the logging window when the loop pulls it to the host (a non-finite
loss ends the phase there, before any checkpoint can record it). After `done` steps the
loop runs, in this order, each hook that is due: validation (every eval_every steps and at
the last), the log line (every log_every steps, and with every validation or stop),
the checkpoint (with each validation and at a stop), early stopping (with each validation)
and the debug stop (config.debug.stop_after_steps).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import jax
import ml_collections

from gestalt_jax.train import checkpoint as ckpt_lib
from gestalt_jax.train import grad_check, optim, perf, validate
from gestalt_jax.train.metrics import MetricsWriter, log, progress


class TrainingError(RuntimeError):
    """A phase that cannot go on (non-finite loss, dead gradients); the message says where."""


@dataclasses.dataclass
class Window:
    """What the steps since the last log line did: their weighted loss, real and padded
    positions (positions holding an example, and all the batch's positions), and the seconds
    spent waiting for data. Throughput counts the timed steps only (not a phase's first, which
    compiles)."""
    loss: float = 0.0
    weight: float = 0.0
    steps: int = 0
    tokens: float = 0.0
    positions: float = 0.0
    data_s: float = 0.0
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, step: int, metrics: dict, timed: bool = True) -> None:
        """Step `step` (0-based) done; a non-finite loss ends the phase, naming it as the logs do."""
        loss, weight = float(metrics["loss"]), float(metrics["weight"])
        if not math.isfinite(loss):
            raise TrainingError(f"step {step + 1}: loss is {loss}; stopping before any checkpoint records it")
        self.loss += loss * weight
        self.weight += weight
        if timed:
            self.steps += 1
            self.tokens += float(metrics["tokens"])
            self.positions += float(metrics["positions"])


@dataclasses.dataclass
class Run:
    """One running phase: what the hooks read and change."""
    c: ml_collections.ConfigDict
    spec: Any                                   # phases.PhaseSpec
    state: Any                                  # step.TrainState
    train_iter: Any
    checkpoints: ckpt_lib.PhaseCheckpoints
    writer: MetricsWriter
    evaluate: Callable[[Any], dict]             # params -> validation values
    start: int                                  # the step the phase (re)started at
    flops: float = 0.0                          # FLOPs of one compiled train step
    best: float = math.inf
    best_step: int | None = None
    bad_evals: int = 0
    stop: str = ""                              # "early" or "interrupted" once the loop must end
    values: dict = dataclasses.field(default_factory=dict)  # this step's log values
    window: Window = dataclasses.field(default_factory=Window)
    started: float = dataclasses.field(default_factory=time.time)  # the ETA's clock, from step clock_step
    clock_step: int = 0

    @property
    def p(self) -> ml_collections.ConfigDict:
        return self.c[self.spec.phase]

    def is_eval(self, done: int) -> bool:
        return done % self.p.eval_every == 0 or done == self.p.steps

    def is_stop(self, done: int) -> bool:
        after = self.c.debug.stop_after_steps
        return bool(after) and done - self.start >= after


def validation(run: Run, done: int) -> None:
    run.values.update(run.evaluate(run.state.params))
    if not math.isfinite(run.values["val_loss"]):
        raise TrainingError(f"[{run.spec.name}] step {done}: validation loss is {run.values['val_loss']}")


def log_line(run: Run, done: int) -> None:
    """Loss, learning rate, gradient norm and throughput of the window; tokens_per_s and mfu
    count the positions that hold an example, padded_tokens_per_s and padded_mfu every position
    the step computes; data_wait is the window's share of time spent waiting for the next batch."""
    w, p = run.window, run.p
    elapsed = max(time.perf_counter() - w.started, 1e-9)
    step_time = elapsed / max(w.steps, 1)
    peak, _ = perf.peak_flops(run.c.compute_dtype)
    real_share = w.tokens / max(w.positions, 1.0)
    values = dict(loss=w.loss / max(w.weight, 1e-9), lr=float(optim.schedule(p, p.lr)(done - 1)),
                  grad_norm=run.values.pop("grad_norm"), tokens_per_s=w.tokens / elapsed,
                  padded_tokens_per_s=w.positions / elapsed, step_time=step_time,
                  mfu=run.flops * real_share / step_time / peak, padded_mfu=run.flops / step_time / peak,
                  data_wait=w.data_s / elapsed)
    values.update(run.values)
    log(progress(run.spec.name, done, p.steps, values, run.started, run.clock_step))
    run.writer.write(run.spec.name, done, values)
    run.window = Window()


def selecting(run: Run, done: int) -> bool:
    """Whether the validation after `done` steps may pick the best checkpoint (config select_from)."""
    return done >= run.p.select_from * run.p.steps


def checkpoint(run: Run, done: int) -> None:
    score = run.spec.score(run.values) if "val_loss" in run.values and selecting(run, done) else None
    run.checkpoints.save(done, run.state, run.train_iter, score, run.c.to_json())


def early_stop(run: Run, done: int) -> None:
    if not selecting(run, done):
        return
    score = run.spec.score(run.values)
    if score < run.best:
        run.best, run.best_step, run.bad_evals = score, done, 0
        return
    run.bad_evals += 1
    if run.bad_evals >= run.p.patience:
        log(f"[{run.spec.name}] early stop at step {done}: no {run.spec.score_name} improvement in "
            f"{run.p.patience} evaluations (best {run.best:.4f})")
        run.stop = "early"


def stop_after(run: Run, done: int) -> None:
    log(f"[{run.spec.name}] stopped at step {done} (config.debug.stop_after_steps); --resume continues")
    run.stop = "interrupted"


# (name, due after `done` steps, what runs), in the order they run.
HOOKS: tuple[tuple[str, Callable[[Run, int], bool], Callable[[Run, int], None]], ...] = (
    ("validation", Run.is_eval, validation),
    ("log", lambda run, done: done % run.c.debug.log_every == 0 or run.is_eval(done) or run.is_stop(done),
     log_line),
    ("checkpoint", lambda run, done: run.is_eval(done) or run.is_stop(done), checkpoint),
    ("early stop", Run.is_eval, early_stop),
    ("debug stop", Run.is_stop, stop_after),
)


def due(run: Run, done: int) -> list[Callable[[Run, int], None]]:
    return [fn for _, when, fn in HOOKS if when(run, done)]


def check_gradients(run: Run, step: int, metrics: dict, exempt: Callable[[str], bool]) -> None:
    """TrainingError naming every parameter that got no finite, nonzero gradient at `step`."""
    norms = grad_check.leaf_norms(jax.device_get(metrics["leaf_norms"]))  # scalars: their absolute values
    dead = [p for p, n in norms.items() if not exempt(p) and not (n > 0 and math.isfinite(n))]
    if dead:
        raise TrainingError(f"[{run.spec.name}] step {step}: no finite, nonzero gradient reaches " + ", ".join(dead))


def validator(eval_fn, val_batches: list[validate.EvalBatch], fit_batches: list[validate.EvalBatch], mesh,
              spec) -> Callable[[Any], dict]:
    """params -> the phase's validation values (train/validate.py)."""
    return lambda params: validate.evaluate(eval_fn, params, val_batches, mesh, spec.name, spec.val, fit_batches)
