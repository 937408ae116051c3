"""Validation passes over packed eval batches: loss, teacher-forced exact match, and for the
brain the concept vectors of the val prompts.

Shared by the training loop's periodic validation and by the talk metrics, so a number the
talk metrics report equals the one training logged at the best step.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.experimental import multihost_utils

from gestalt_jax.train import mesh as mesh_lib

EvalBatch = tuple[dict, np.ndarray]  # (this process's rows, the global slot -> record index)


def global_batch(local: dict, mesh) -> dict:
    """This process's rows → one global array per key, batch dimension over data+fsdp."""
    return {k: jax.make_array_from_process_local_data(mesh_lib.batch_sharding(mesh, v.ndim), v)
            for k, v in local.items()}


def concept_sim(concepts_NxD: np.ndarray) -> float:
    """Mean pairwise cosine of distinct prompts' concept vectors (lower is more discriminative)."""
    x = concepts_NxD / np.maximum(np.linalg.norm(concepts_NxD, axis=1, keepdims=True), 1e-9)
    n = len(x)
    if n < 2:
        return float("nan")
    sims = x @ x.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def _pass(eval_fn, params, batches: list[EvalBatch], mesh, concepts: dict | None = None) -> tuple[float, float]:
    """(loss, teacher-forced exact share) over `batches`; with `concepts`, each record's concept
    vector lands there under its record index."""
    total, weight, exact, count = 0.0, 0.0, 0.0, 0.0
    for local, index in batches:
        loss_sum, w, aux = eval_fn(params, global_batch(local, mesh))
        total, weight = total + float(loss_sum), weight + float(w)
        exact, count = exact + float(aux["exact"]), count + float(aux["examples"])
        if concepts is not None:
            concept = np.asarray(multihost_utils.process_allgather(aux["concept"], tiled=True))
            for (row, slot) in zip(*np.nonzero(index >= 0)):
                concepts[int(index[row, slot])] = concept[row, slot]
    return total / max(weight, 1e-9), exact / max(count, 1.0)


def evaluate(eval_fn, params, val_batches: list[EvalBatch], mesh, name: str, val_records,
             fit_batches: list[EvalBatch] = ()) -> dict[str, float]:
    """val_loss and val_exact (teacher-forced exact match) on the val batches, fit_exact on
    `fit_batches` (training examples) when given; the brain adds val_ppl and concept_sim (of
    the distinct val prompts)."""
    concepts = {} if name == "brain" else None
    val_loss, val_exact = _pass(eval_fn, params, val_batches, mesh, concepts)
    out = dict(val_loss=val_loss, val_exact=val_exact)
    if fit_batches:
        out["fit_exact"] = _pass(eval_fn, params, fit_batches, mesh)[1]
    if name == "brain":
        first = {}
        for i, r in enumerate(val_records):  # distinct prompts only
            first.setdefault(r["prompt"], i)
        out["concept_sim"] = concept_sim(np.stack([concepts[i] for i in sorted(first.values())]))
        out["val_ppl"] = math.exp(min(out["val_loss"], 50.0))
    return out
