"""Gradient guarantees: every parameter leaf gets a finite, nonzero gradient; finite differences agree."""

from __future__ import annotations

from typing import Callable, Iterable

import chex
import jax
import jax.numpy as jnp
import numpy as np


NOTHING: Callable[[str], bool] = lambda path: False  # exempts no parameter path


def path_str(keys) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in keys)


def leaf_norms(tree) -> dict[str, float]:
    """L2 norm of every leaf, by path ('encoder/stack/block_0/attn/query/kernel')."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    norms = jax.device_get([jnp.linalg.norm(jnp.ravel(x).astype(jnp.float32)) for _, x in flat])
    return {path_str(keys): float(n) for (keys, _), n in zip(flat, norms)}


def zero_grad_paths(grads, exempt: Callable[[str], bool] = NOTHING) -> list[str]:
    """Paths whose gradient is exactly zero, leaving out those `exempt` accepts."""
    return [p for p, n in leaf_norms(grads).items() if n == 0.0 and not exempt(p)]


def assert_grads(grads, exempt: Callable[[str], bool] = NOTHING) -> None:
    """chex: every gradient finite; AssertionError naming every path that got none."""
    chex.assert_tree_all_finite(grads)
    dead = zero_grad_paths(grads, exempt)
    if dead:
        raise AssertionError(f"{len(dead)} parameter(s) got no gradient:\n  " + "\n  ".join(dead))


def finite_differences(loss_of: Callable, params, grads, key: jax.Array, directions: int,
                       eps: float) -> list[float]:
    """Relative error of <grad, u> against a central difference along `directions` unit vectors.

    A purely random direction in 10^5+ dimensions has a directional derivative below f32
    resolution, so each u is half the normalised gradient and half a random unit vector:
    the random half still probes every leaf, the gradient half keeps the signal measurable.
    `loss_of(params)` should be jitted; everything here runs as two compiled functions.
    """
    errors = []
    for i in range(directions):
        plus, minus, analytic = _probe(params, grads, jax.random.fold_in(key, i), eps)
        numeric = (float(loss_of(plus)) - float(loss_of(minus))) / (2 * eps)
        analytic = float(analytic)
        errors.append(abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12))
    return errors


def _tree_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


@jax.jit
def _probe(params, grads, key, eps):
    """params ± eps·u and <grad, u> for one half-gradient, half-random unit direction u."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    rand = jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, jnp.float32) for k, x in zip(keys, leaves)])
    g_norm, r_norm = _tree_norm(grads), _tree_norm(rand)
    u = jax.tree.map(lambda g, r: 0.5 * g.astype(jnp.float32) / g_norm + 0.5 * r / r_norm, grads, rand)
    u_norm = _tree_norm(u)
    u = jax.tree.map(lambda x: x / u_norm, u)
    shift = lambda s: jax.tree.map(lambda p, d: p + (s * d).astype(p.dtype), params, u)
    analytic = sum(jnp.sum(g.astype(jnp.float32) * d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(u)))
    return shift(eps), shift(-eps), analytic


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def matching(fragments: Iterable[str]) -> Callable[[str], bool]:
    """A path predicate: true where the path contains any of `fragments`."""
    fragments = tuple(fragments)
    return lambda p: any(f in p for f in fragments)
