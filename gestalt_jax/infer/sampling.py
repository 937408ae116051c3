"""Next-token choice from decoder logits: n-gram penalty, temperature, top-k, top-p, PAD mask.

The order is part of the behaviour (DESIGN.md "sampling"): the penalty acts on raw logits,
temperature then shapes the distribution that top-k and top-p cut, and PAD is removed last.
Below temperature 0.01 the choice is the argmax of the penalised, PAD-masked logits.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gestalt_jax.config import GREEDY_BELOW  # temperatures under this take the argmax
from gestalt_jax.text.bytes import PAD


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Static sampling settings (hashable, so jit specialises on them).

    ngram < 1 or ngram_penalty == 1 turns the repetition penalty off; top_k < 1 and
    top_p >= 1 turn their filters off.
    """
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.9
    ngram: int = 4
    ngram_penalty: float = 2.0

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def compiled(self) -> Sampling:
        """What a compiled decode depends on: these settings with the temperature set to 0 when
        greedy, else 1. The temperature itself goes to `sample` as an array, so one compiled
        program serves every sampling temperature."""
        return dataclasses.replace(self, temperature=0.0 if self.greedy else 1.0)


def repeated_ngram_tokens(history_BxT, lengths_B, n: int, vocab: int):
    """bool [B, V]: tokens that, appended to the first lengths_B ids of each row, would repeat
    an n-gram already in that row.

    A candidate is flagged only if the row's last n-1 ids, followed by it, occur earlier as
    a complete n-gram: a per-token penalty would punish the common bytes every word needs.
    """
    B, T = history_BxT.shape
    lengths_B = jnp.broadcast_to(jnp.asarray(lengths_B, jnp.int32), (B,))
    # PAD past the end keeps every slice below T long; windows touching it are masked out.
    padded_BxT2 = jnp.pad(history_BxT, ((0, 0), (0, n)), constant_values=PAD)
    suffix_idx_BxN1 = lengths_B[:, None] - (n - 1) + jnp.arange(n - 1)
    suffix_BxN1 = jnp.take_along_axis(padded_BxT2, jnp.maximum(suffix_idx_BxN1, 0), axis=1)
    # Window j is the n-gram history[j : j+n]; it must lie inside the row's length.
    match_BxT = jnp.arange(T)[None, :] + n <= lengths_B[:, None]
    for o in range(n - 1):
        match_BxT &= padded_BxT2[:, o:o + T] == suffix_BxN1[:, o:o + 1]
    next_BxT = padded_BxT2[:, n - 1:n - 1 + T]
    rows_Bx1 = jnp.arange(B)[:, None]
    hits_BxV = jnp.zeros((B, vocab), jnp.int32).at[rows_Bx1, next_BxT].add(match_BxT.astype(jnp.int32))
    return hits_BxV > 0


def _penalise(logits_BxV, hit_BxV, factor: float):
    """Make flagged logits less likely whatever their sign: shrink positives, grow negatives."""
    scaled_BxV = jnp.where(logits_BxV > 0, logits_BxV / factor, logits_BxV * factor)
    return jnp.where(hit_BxV, scaled_BxV, logits_BxV)


def _top_k(logits_BxV, sorted_BxV, k: int):
    """Keep the k most likely tokens (and any equal to the k-th): logits_BxV and its sorted copy
    (largest first), both filtered."""
    kth_Bx1 = sorted_BxV[:, k - 1:k]
    return (jnp.where(logits_BxV >= kth_Bx1, logits_BxV, -jnp.inf),
            jnp.where(sorted_BxV >= kth_Bx1, sorted_BxV, -jnp.inf))


def _top_p(logits_BxV, sorted_BxV, p: float):
    """Keep the smallest most-likely set whose probability reaches p (the top token always);
    sorted_BxV is logits_BxV sorted, largest first."""
    probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
    mass_before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
    kept_B = jnp.maximum(jnp.sum(mass_before_BxV < p, axis=-1), 1)
    cut_Bx1 = jnp.take_along_axis(sorted_BxV, kept_B[:, None] - 1, axis=-1)
    return jnp.where(logits_BxV >= cut_Bx1, logits_BxV, -jnp.inf)


def _mask_pad(logits_BxV):
    return logits_BxV.at[:, PAD].set(-jnp.inf)


def sample(logits_BxV, history_BxT, lengths_B, key, s: Sampling, temperature=None):
    """Next ids [B] (int32) from logits [B, V], given the ids generated so far.

    history_BxT holds each row's generated ids; only the first lengths_B (int or [B]) count
    for the n-gram penalty. `key` is unused when s.greedy. `temperature` (a scalar, e.g. an f32
    array) replaces s.temperature when given.
    """
    logits_BxV = logits_BxV.astype(jnp.float32)
    V = logits_BxV.shape[-1]
    if s.ngram >= 1 and s.ngram_penalty != 1.0:
        hit_BxV = repeated_ngram_tokens(history_BxT, lengths_B, s.ngram, V)
        logits_BxV = _penalise(logits_BxV, hit_BxV, s.ngram_penalty)
    best_B = jnp.argmax(_mask_pad(logits_BxV), axis=-1).astype(jnp.int32)
    if s.greedy:
        return best_B
    logits_BxV = logits_BxV / (s.temperature if temperature is None else temperature)
    # One sort serves both filters: on CPU a sort of [B, V] costs about what lax.top_k does.
    sorted_BxV = -jnp.sort(-logits_BxV, axis=-1)
    if s.top_k >= 1:
        logits_BxV, sorted_BxV = _top_k(logits_BxV, sorted_BxV, min(s.top_k, V))
    if s.top_p < 1.0:
        logits_BxV = _top_p(logits_BxV, sorted_BxV, s.top_p)
    logits_BxV = _mask_pad(logits_BxV)
    sampled_B = jax.random.categorical(key, logits_BxV, axis=-1).astype(jnp.int32)
    # PAD goes last, so a nucleus of PAD alone leaves nothing: take the best real token then.
    empty_B = jnp.all(logits_BxV == -jnp.inf, axis=-1)
    return jnp.where(empty_B, best_B, sampled_B)
