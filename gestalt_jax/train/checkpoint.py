"""Phase checkpoints with Orbax: the newest few for resume, the single best by its score for the result.

One phase owns one directory with two `CheckpointManager`s, `latest/` and `best/`. They are separate
because with `best_fn` set, Orbax's `max_to_keep` keeps the N best and deletes the newest when it is
worse, which would leave nothing to resume from. Every step directory holds the items `state` (the
TrainState), `metrics` (step and score, JSON), `config` (JSON, when given) and, in `latest/` only,
`data` (the grain iterator state, one JSON file per process).

Multi-host: every process calls every method with the same arguments (Orbax synchronises the
processes and each one writes its shards); only the iterator state differs per process. Arrays
restore onto any mesh and any number of processes (the target's shardings place them), and
`data_states` returns every process's iterator state for the new processes to share out.
A score is the phase's validation result, lower is better (val loss, or the goal phases' error).
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

LATEST, BEST = "latest", "best"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read into the current model; the message names its directory."""


def abstract_like(tree: Any, shardings: Any = None) -> Any:
    """ShapeDtypeStructs shaped like `tree` (concrete or abstract), carrying `shardings` (a matching
    tree) or else each leaf's own sharding; this is the restore target that places arrays on a mesh."""
    def one(x, sharding=None):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding or getattr(x, "sharding", None))
    if shardings is None:
        return jax.tree.map(one, tree)
    return jax.tree.map(one, tree, shardings)


class PhaseCheckpoints:
    """`<directory>/latest` keeps the newest `keep` checkpoints, `<directory>/best` the lowest score."""

    def __init__(self, directory: str | os.PathLike, keep: int):
        if keep < 1:
            raise ValueError(f"checkpoints in {directory}: keep must be >= 1, got {keep}")
        self.directory = os.path.abspath(directory)
        # Async: save() returns once arrays are copied off the device; the files are written
        # in a background thread while training continues.
        self._latest = self._manager(LATEST, keep)
        self._best = self._manager(BEST, 1)
        self._best_score = self._read_best_score()

    def _manager(self, kind: str, keep: int) -> ocp.CheckpointManager:
        # Multi-process saves synchronise on barriers named by step: two managers saving the
        # same step (latest and best) need distinct names or the second finds the first's
        # barrier "already ongoing".
        prefix = f"{os.path.basename(self.directory)}_{kind}"
        return ocp.CheckpointManager(
            os.path.join(self.directory, kind),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=True,
                multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)))

    def latest_step(self) -> int | None:
        return self._latest.latest_step()

    def best_step(self) -> int | None:
        return self._best.latest_step()

    def best_score(self) -> float:
        """The lowest finite score saved so far in this directory (inf when none)."""
        return self._best_score

    def save(self, step: int, state: Any, data_iter: grain.DatasetIterator | None = None,
             score: float | None = None, config_json: str | None = None) -> bool:
        """Saves into latest, and into best when `score` beats every earlier best. Returns False
        (nothing saved) when `step` is not newer than the latest saved step, as Orbax does."""
        step = int(step)
        score = None if score is None else float(score)
        items = {"state": ocp.args.StandardSave(state),
                 "metrics": ocp.args.JsonSave({"step": step, "score": score})}
        if config_json is not None:
            items["config"] = ocp.args.JsonSave(json.loads(config_json))
        best_items = dict(items)
        if data_iter is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iter)
        if not self._latest.save(step, args=ocp.args.Composite(**items)):
            logging.warning("checkpoint step %d not saved in %s: latest saved step is %s",
                            step, self._latest.directory, self._latest.latest_step())
            return False
        # NaN < x is False, but say it: a diverged run must never become the result.
        if score is not None and math.isfinite(score) and score < self._best_score:
            if self._best.save(step, args=ocp.args.Composite(**best_items)):
                self._best_score = score
        return True

    def restore_latest(self, target_state: Any) -> tuple[Any, int] | None:
        """(state, step) from the newest checkpoint, or None when there is nothing to resume.
        `target_state` (ShapeDtypeStructs with shardings, or arrays) decides where arrays land."""
        step = self._latest.latest_step()
        if step is None:
            return None
        items = {"state": ocp.args.StandardRestore(abstract_like(target_state))}
        return self._restore(self._latest, step, items)["state"], step

    def data_states(self, step: int) -> tuple[str, list[dict]]:
        """(the directory, the iterator states) every process saved at latest `step`, whatever
        the number of processes that saved them; a CheckpointError when there are none."""
        directory = self._latest.directory / str(step) / "data"
        files = sorted(directory.glob("process_*-of-*.json")) if directory.is_dir() else []
        counts = {f.stem.rpartition("-of-")[2] for f in files}
        if not files or len(counts) != 1 or len(files) != int(counts.pop()):
            raise CheckpointError(f"{directory}: expected one iterator state per process "
                                  f"(process_<i>-of-<n>.json), found {[f.name for f in files]}")
        try:
            return str(directory), [json.loads(f.read_text()) for f in files]
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{directory}: cannot read an iterator state: {e}") from e

    def restore_best(self, target_state: Any) -> Any:
        """The state with the lowest score; `target_state` as in `restore_latest`."""
        step = self._best.latest_step()
        if step is None:
            raise FileNotFoundError(
                f"no best checkpoint in {self._best.directory}: no save with a finite score yet")
        items = {"state": ocp.args.StandardRestore(abstract_like(target_state))}
        return self._restore(self._best, step, items)["state"]

    def saved_config(self, kind: str = BEST) -> dict | None:
        """The config (as JSON data) saved with the best (or, kind=LATEST, the newest) checkpoint,
        or None when there is none."""
        manager = self._best if kind == BEST else self._latest
        step = manager.latest_step()
        if step is None or not (manager.directory / str(step) / "config").exists():
            return None
        return self._restore(manager, step, {"config": ocp.args.JsonRestore()})["config"]

    def wait(self) -> None:
        """Blocks until every pending async save is on disk."""
        self._latest.wait_until_finished()
        self._best.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases Orbax's threads."""
        self._latest.close()
        self._best.close()

    def __enter__(self) -> PhaseCheckpoints:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read_best_score(self) -> float:
        step = self._best.latest_step()
        if step is None:
            return math.inf
        metrics = self._restore(self._best, step, {"metrics": ocp.args.JsonRestore()})["metrics"]
        if "score" not in metrics:
            raise CheckpointError(f"{self._best.directory / str(step)}: its metrics hold no 'score' "
                                  f"(keys {sorted(metrics)}); it was written by an older version")
        return float(metrics["score"])

    @staticmethod
    def _restore(manager: ocp.CheckpointManager, step: int, items: dict) -> Any:
        # Orbax's errors name an item or a leaf; name the step directory the user can inspect.
        try:
            return manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:
            raise CheckpointError(f"cannot restore {sorted(items)} from {manager.directory / str(step)}: "
                               f"{type(e).__name__}: {e}") from e
