"""The device mesh, the one logical-axis-rules table, and sharded state creation.

Mesh axes: data (pure data parallel), fsdp (data parallel with parameters sharded
ZeRO-3 style), tensor (Megatron-style splits of heads, MLP width and vocabulary).
"""

from __future__ import annotations

import contextlib

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from gestalt_jax import config as config_lib

# Logical axis → mesh axes. A mesh axis already used by an earlier dimension of the same
# array is skipped, so activations (batch, length, embed) shard batch over data+fsdp and
# leave embed whole, while parameters (embed, mlp) shard embed over fsdp.
RULES = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
)
BATCH_AXES = ("data", "fsdp")


def make_mesh(c: ml_collections.ConfigDict, devices=None) -> jax.sharding.Mesh:
    """The config's (data, fsdp, tensor) mesh over `devices` (default: all), Auto axis types."""
    devices = jax.devices() if devices is None else devices
    shape = config_lib.mesh_shape(c, len(devices))
    return jax.make_mesh(shape, config_lib.MESH_AXES, devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,) * len(shape))


@contextlib.contextmanager
def activate(mesh: jax.sharding.Mesh):
    """Mesh and rules together: Linen's logical constraints need both (and `with mesh:` alone
    silently does nothing). Keep one such context around all tracing."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(RULES):
        yield


def _fit(spec: P, shape: tuple[int, ...], mesh: jax.sharding.Mesh) -> P:
    """Drop mesh axes from dimensions they do not divide (e.g. a 459-token vocabulary over 2)."""
    out = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        names = (axes,) if isinstance(axes, str) else tuple(axes or ())
        size = int(np.prod([mesh.shape[a] for a in names])) if names else 1
        out.append(axes if size > 1 and dim % size == 0 else None)
    return P(*out)


def param_shardings(boxed_shapes, mesh: jax.sharding.Mesh):
    """NamedShardings for a tree of (abstract) boxed Linen params, by the rules table."""
    specs = nn.logical_to_mesh(nn.get_partition_spec(boxed_shapes), RULES)
    shapes = jax.tree.map(lambda x: x.unbox(apply_constraint=False), boxed_shapes,
                          is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
    return jax.tree.map(lambda s, x: NamedSharding(mesh, _fit(s, x.shape, mesh)), specs, shapes,
                        is_leaf=lambda s: isinstance(s, P))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh, ndim: int = 1, leading: int = 0) -> NamedSharding:
    """Shard dimension `leading` (the batch) over data+fsdp; the rest replicated."""
    return NamedSharding(mesh, P(*([None] * leading), BATCH_AXES, *([None] * (ndim - leading - 1))))


def opt_shardings(optimizer: optax.GradientTransformation, opt_shapes, p_shardings, mesh):
    """Optimizer state shards like the parameter it tracks; counters are replicated."""
    masked = lambda x: isinstance(x, optax.MaskedNode)  # a leaf another partition owns
    return optax.tree_map_params(optimizer, lambda x, s: x if masked(x) else s, opt_shapes, p_shardings,
                                 transform_non_params=lambda _: replicated(mesh), is_leaf=masked)
