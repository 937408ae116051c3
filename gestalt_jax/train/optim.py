"""Optimizers from a phase config: warmup + cosine, clipping, Muon for hidden matrices.

With `optimizer="muon"`, Muon takes the 2-D kernels inside transformer stacks (attention
and MLP matrices: square-ish maps between hidden features, where an orthogonalised
update is well defined). AdamW takes everything else: embeddings and LM/classifier heads
(rows are per-token or per-class and should move independently), the concept and memory
projectors (they map one vector to N prefix tokens — an output layer in all but name),
norm scales and biases (not matrices).
"""

from __future__ import annotations

import jax
import ml_collections
import optax

from gestalt_jax.train.muon import muon


def schedule(p: ml_collections.ConfigDict, peak: float) -> optax.Schedule:
    """Linear warmup over warmup_frac of the steps, then cosine to min_lr_frac·peak."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak, warmup_steps=int(p.warmup_frac * p.steps),
        decay_steps=p.steps, end_value=peak * p.min_lr_frac)


def _path(keys) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in keys)


def muon_labels(params) -> dict:
    """'muon' for 2-D kernels inside a transformer stack, 'adamw' for every other leaf."""
    def label(keys, leaf):
        path = _path(keys)
        return "muon" if leaf.ndim == 2 and "/stack/" in f"/{path}" and path.endswith("kernel") else "adamw"
    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(p: ml_collections.ConfigDict) -> optax.GradientTransformation:
    decay_matrices = lambda params: jax.tree.map(lambda x: x.ndim >= 2, params)
    adamw = optax.adamw(schedule(p, p.lr), b1=p.b1, b2=p.b2, eps=p.eps,
                        weight_decay=p.weight_decay, mask=decay_matrices)
    if p.optimizer == "adamw":
        inner = adamw
    else:
        inner = optax.multi_transform(
            {"muon": muon(schedule(p, p.muon_lr), beta=p.muon_momentum, weight_decay=p.weight_decay),
             "adamw": adamw}, muon_labels)
    return optax.chain(optax.clip_by_global_norm(p.clip_norm), inner)
