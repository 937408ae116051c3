"""Transformer building blocks: RMSNorm, RoPE with YaRN, attention with a KV cache, MLP.

Every parameter carries logical axis names (embed, mlp, heads, vocab) that one rules
table maps onto the mesh; activations are constrained with (batch, length, embed, ...).
Shapes: B batch, L query length, S key length, D model width, H heads, K head width.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = jnp.dtype


@dataclasses.dataclass(frozen=True)
class StackConfig:
    """Static sizes of one transformer stack (read from a config section)."""
    d_model: int
    heads: int
    d_ff: int
    layers: int
    dropout: float
    causal: bool
    cross: bool          # cross-attention to memory in every block
    train_len: int       # text length seen in training: RoPE is exact up to here
    rope_base: float
    yarn_beta_fast: float
    yarn_beta_slow: float
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: bool = False

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


@jax.custom_vjp
def _kernel_matmul(x_NxI, kernel_IxO):
    """x [..., I] times a kernel [I, O], whose gradient is a product over the N rows of x and
    of the output's gradient that XLA:CPU runs at half speed in some forms. Left to autodiff,
    it laid one of them out transposed (planner MLP: 6.8 ms against 3.2 for the same FLOPs);
    as [I, N] by [N, O] it is fast when I <= O, so a kernel wider in than out gets its
    transpose's product, then transposed. The small tier's train steps (benchmarks/
    train_throughput.py, both cores): brain 221.0 -> 196.3 ms, policy 76.2 -> 62.3 (BENCHMARKS.md,
    History, "issue 19, fourteenth round")."""
    return jax.lax.dot_general(x_NxI, kernel_IxO, (((x_NxI.ndim - 1,), (0,)), ((), ())))


def _kernel_matmul_fwd(x_NxI, kernel_IxO):
    return _kernel_matmul(x_NxI, kernel_IxO), (x_NxI, kernel_IxO)


def _kernel_matmul_bwd(saved, dy_NxO):
    x_NxI, kernel_IxO = saved
    dx_NxI = jax.lax.dot_general(dy_NxO, kernel_IxO, (((dy_NxO.ndim - 1,), (1,)), ((), ())))
    x_NxI, dy_NxO = x_NxI.reshape(-1, x_NxI.shape[-1]), dy_NxO.reshape(-1, dy_NxO.shape[-1])
    over_n = (((0,), (0,)), ((), ()))
    if x_NxI.shape[1] <= dy_NxO.shape[1]:
        dkernel_IxO = jax.lax.dot_general(x_NxI, dy_NxO, over_n)
    else:  # the narrower side first, then transposed (the barrier keeps XLA from folding it back)
        dkernel_IxO = jax.lax.optimization_barrier(jax.lax.dot_general(dy_NxO, x_NxI, over_n)).T
    return dx_NxI, dkernel_IxO.astype(kernel_IxO.dtype)


_kernel_matmul.defvjp(_kernel_matmul_fwd, _kernel_matmul_bwd)


def kernel_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """nn.Dense's product of its input [..., I] and kernel [I, O], with the gradient above."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    if (tuple(lhs_contract), tuple(rhs_contract), lhs_batch, rhs_batch) != ((lhs.ndim - 1,), (0,), (), ()) \
            or rhs.ndim != 2 or precision is not None or preferred_element_type is not None:
        raise ValueError(f"kernel_dot_general: expected input [..., I] by kernel [I, O], got {dimension_numbers}")
    return _kernel_matmul(lhs, rhs)


def computed_once(x_BxL):
    """x [B, L] as it is, computed once: XLA:CPU fuses cheap elementwise producers into each of
    their consumers, so a per-position flag that an attention mask broadcasts to [B, H, L, S] was
    recomputed from the ids at every element of every pass over the logits (the planner's goal
    block: four passes of 3.4 ms a step on one core). A sort is never fused into its consumers;
    sorted by position, the rows come back as they were."""
    B, L = x_BxL.shape
    return jax.lax.sort((jnp.broadcast_to(jnp.arange(L), (B, L)), x_BxL), dimension=1, num_keys=1)[1]


def dense(features: int, axes: tuple[str, str], cfg: StackConfig, name: str,
          use_bias: bool = False) -> nn.Dense:
    """A Dense layer whose kernel (and bias) carry logical axis names."""
    return nn.Dense(
        features, use_bias=use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name,
        dot_general=kernel_dot_general,
        kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(), axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), axes[1:]))


class RMSNorm(nn.Module):
    eps: float = 1e-6
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxLxD):
        scale_D = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
                             (x_BxLxD.shape[-1],), self.param_dtype)
        x = x_BxLxD.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return (x * scale_D.astype(jnp.float32)).astype(self.dtype)


def rope_tables(head_dim: int, base: float, train_len: int, total_len: int,
                beta_fast: float, beta_slow: float) -> tuple[np.ndarray, float]:
    """Inverse frequencies [K/2] and the attention-logit multiplier for a sequence of total_len.

    Within the training length this is plain RoPE and multiplier 1. Beyond it, YaRN
    (NTK-by-parts): dimensions whose wavelength is short against train_len keep their
    frequency, long ones are interpolated by s = total_len/train_len, a linear ramp
    between; logits are sharpened by sqrt(s) because attention spread over more keys
    has higher entropy than anything seen in training.
    """
    inv_freq = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    s = total_len / train_len
    if s <= 1.0:
        return inv_freq.astype(np.float32), 1.0
    rotations = train_len * inv_freq / (2 * math.pi)  # full turns over the training length
    keep = np.clip((rotations - beta_slow) / (beta_fast - beta_slow), 0.0, 1.0)
    inv_freq = inv_freq * keep + inv_freq / s * (1.0 - keep)
    return inv_freq.astype(np.float32), math.sqrt(s)


def apply_rope(x_BxLxHxK, positions_BxL, inv_freq_K2):
    """Rotate by position; positions < 0 (the concept prefix) stay unrotated."""
    angles_BxLxK2 = positions_BxL[..., None].astype(jnp.float32) * inv_freq_K2
    rotated_BxL = (positions_BxL >= 0)[..., None]
    cos = jnp.where(rotated_BxL, jnp.cos(angles_BxLxK2), 1.0)[:, :, None, :]
    sin = jnp.where(rotated_BxL, jnp.sin(angles_BxLxK2), 0.0)[:, :, None, :]
    x1, x2 = jnp.split(x_BxLxHxK.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxLxHxK.dtype)


def attend(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask_Bx1xLxS, logit_scale: float, kv: str = "bshk"):
    """Softmax attention in f32; mask True where a query may see a key (None: all).

    kv="bhsk": keys and values come head-major (the KV cache layout)."""
    scale = logit_scale / math.sqrt(q_BxLxHxK.shape[-1])
    logits_BxHxLxS = jnp.einsum(f"blhk,{kv}->bhls", q_BxLxHxK, k_BxSxHxK,
                                preferred_element_type=jnp.float32) * scale
    if mask_Bx1xLxS is not None:
        logits_BxHxLxS = jnp.where(mask_Bx1xLxS, logits_BxHxLxS, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits_BxHxLxS, axis=-1).astype(v_BxSxHxK.dtype)
    return jnp.einsum(f"bhls,{kv}->blhk", probs, v_BxSxHxK)


class SelfAttention(nn.Module):
    """Multi-head self-attention with RoPE on text positions and an optional KV cache.

    With decode=True the 'cache' collection holds keys/values for cfg-sized sequences;
    a call with L tokens writes them at the cache index (L > 1 is the prefill) and
    attends causally to everything written so far whose position is at most the query's.
    """
    cfg: StackConfig
    rope_len: int
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxLxD, positions_BxL, mask_Bx1xLxS, both_ways_BxL=None):
        cfg = self.cfg
        B, L, _ = x_BxLxD.shape
        H, K = cfg.heads, cfg.head_dim

        def heads(name):
            y = dense(H * K, ("embed", "heads"), cfg, name)(x_BxLxD).reshape(B, L, H, K)
            return nn.with_logical_constraint(y, ("batch", "length", "heads", "kv"))

        q, k, v = heads("query"), heads("key"), heads("value")
        inv_freq, logit_scale = rope_tables(K, cfg.rope_base, cfg.train_len, self.rope_len,
                                            cfg.yarn_beta_fast, cfg.yarn_beta_slow)
        q = apply_rope(q, positions_BxL, inv_freq)
        k = apply_rope(k, positions_BxL, inv_freq)
        kv = "bshk"
        if self.decode:
            k, v, mask_Bx1xLxS = self._update_cache(k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3),
                                                    positions_BxL, both_ways_BxL)
            kv = "bhsk"
        out = attend(q, k, v, mask_Bx1xLxS, logit_scale, kv).reshape(B, L, H * K)
        return dense(cfg.d_model, ("heads", "embed"), cfg, "out")(out)

    def _update_cache(self, k_BxHxLxK, v_BxHxLxK, positions_BxL, both_ways_BxL=None):
        """The cache is head-major [B, H, S, K]: a [B, S, H, K] cache made XLA transpose all of it
        in every layer at every step (17.4 ms against 2.05 ms per step at default shapes, batch 16).

        The cache also keeps each key's position: a key at a position past the query's is not
        seen. Prompts of different lengths can so share one cache index, left-padded with a
        position no query reaches (their text positions counted from each row's first token).

        With `both_ways_BxL` (Stack), those positions also see each other's keys both ways; they
        must all come in one call (the prefill)."""
        initialised = self.has_variable("cache", "cached_key")
        ck = self.variable("cache", "cached_key", jnp.zeros, k_BxHxLxK.shape, k_BxHxLxK.dtype)
        cv = self.variable("cache", "cached_value", jnp.zeros, v_BxHxLxK.shape, v_BxHxLxK.dtype)
        cp = self.variable("cache", "cached_position", jnp.zeros, positions_BxL.shape, jnp.int32)
        if both_ways_BxL is not None:
            cb = self.variable("cache", "cached_both_ways", jnp.zeros, both_ways_BxL.shape, bool)
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        if not initialised:  # init call: allocate at the given (maximum) length only
            L = k_BxHxLxK.shape[2]
            causal = jnp.tril(jnp.ones((L, L), bool))[None, None]
            return k_BxHxLxK, v_BxHxLxK, causal
        i = index.value
        L, S = k_BxHxLxK.shape[2], ck.value.shape[2]
        ck.value = jax.lax.dynamic_update_slice(ck.value, k_BxHxLxK, (0, 0, i, 0))
        cv.value = jax.lax.dynamic_update_slice(cv.value, v_BxHxLxK, (0, 0, i, 0))
        cp.value = jax.lax.dynamic_update_slice(cp.value, positions_BxL.astype(jnp.int32), (0, i))
        index.value = i + L
        written_LxS = jnp.arange(S)[None, :] <= (i + jnp.arange(L))[:, None]
        mask_BxLxS = written_LxS[None] & (cp.value[:, None, :] <= positions_BxL[:, :, None])
        if both_ways_BxL is not None:
            cb.value = jax.lax.dynamic_update_slice(cb.value, both_ways_BxL, (0, i))
            mask_BxLxS = mask_BxLxS | (both_ways_BxL[:, :, None] & cb.value[:, None, :])
        return ck.value, cv.value, mask_BxLxS[:, None]


class CrossAttention(nn.Module):
    """Attention from text to memory vectors: no RoPE; `mask_Bx1xLxM` (None: none) keeps each
    position of a packed row to the memory of its own example."""
    cfg: StackConfig

    @nn.compact
    def __call__(self, x_BxLxD, memory_BxMxD, mask_Bx1xLxM=None):
        cfg = self.cfg
        H, K = cfg.heads, cfg.head_dim
        B, L, _ = x_BxLxD.shape
        M = memory_BxMxD.shape[1]
        q = dense(H * K, ("embed", "heads"), cfg, "query")(x_BxLxD).reshape(B, L, H, K)
        k = dense(H * K, ("embed", "heads"), cfg, "key")(memory_BxMxD).reshape(B, M, H, K)
        v = dense(H * K, ("embed", "heads"), cfg, "value")(memory_BxMxD).reshape(B, M, H, K)
        out = attend(q, k, v, mask_Bx1xLxM, 1.0).reshape(B, L, H * K)
        return dense(cfg.d_model, ("heads", "embed"), cfg, "out")(out)


class Mlp(nn.Module):
    cfg: StackConfig

    @nn.compact
    def __call__(self, x_BxLxD):
        h_BxLxF = nn.gelu(dense(self.cfg.d_ff, ("embed", "mlp"), self.cfg, "wi", use_bias=True)(x_BxLxD))
        h_BxLxF = nn.with_logical_constraint(h_BxLxF, ("batch", "length", "mlp"))
        return dense(self.cfg.d_model, ("mlp", "embed"), self.cfg, "wo", use_bias=True)(h_BxLxF)


class Block(nn.Module):
    """Pre-norm block: self-attention, cross-attention to memory (if any), MLP."""
    cfg: StackConfig
    rope_len: int
    train: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxLxD, positions_BxL, mask_Bx1xLxS, memory_BxMxD, memory_mask_Bx1xLxM=None,
                 both_ways_BxL=None):
        cfg = self.cfg
        drop = nn.Dropout(cfg.dropout, deterministic=not self.train)
        norm = lambda name: RMSNorm(dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name)
        h = SelfAttention(cfg, self.rope_len, self.decode, name="attn")(
            norm("attn_norm")(x_BxLxD), positions_BxL, mask_Bx1xLxS, both_ways_BxL)
        x_BxLxD = x_BxLxD + drop(h)
        if cfg.cross and memory_BxMxD is not None:
            h = CrossAttention(cfg, name="cross")(norm("cross_norm")(x_BxLxD), memory_BxMxD, memory_mask_Bx1xLxM)
            x_BxLxD = x_BxLxD + drop(h)
        x_BxLxD = x_BxLxD + drop(Mlp(cfg, name="mlp")(norm("mlp_norm")(x_BxLxD)))
        return nn.with_logical_constraint(x_BxLxD, ("batch", "length", "embed"))
