"""Replies and concepts from a brain, in batches of config.gen.batch_size: what eval, gallery, the
agent and the server generate with.

Every batch has the same shape (the last repeats its final prompt), so one compiled program
serves a whole run; `reply_ids` keeps the scores that sample-and-rank compares.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from gestalt_jax.infer.generate import generate_ranked, generate_scored
from gestalt_jax.infer.sampling import Sampling
from gestalt_jax.model.brain import Brain
from gestalt_jax.text import bytes as byte_tok

ARGMAX = Sampling(temperature=0.0, ngram=0)
Decode = Callable[[Sequence[int]], str]


def sampling(c: ml_collections.ConfigDict, temperature: float | None = None) -> Sampling:
    """config.gen's decoding settings, at `temperature` when given."""
    g = c.gen
    return Sampling(temperature=g.temperature if temperature is None else temperature, top_k=g.top_k,
                    top_p=g.top_p, ngram=g.ngram, ngram_penalty=g.ngram_penalty)


def batches(n: int, c: ml_collections.ConfigDict, rows_each: int = 1):
    """(indices, real rows) of at most config.gen.batch_size rows, `rows_each` per item, over n
    items; the last batch repeats its final index up to the common size, so one compiled program
    serves every batch."""
    size = max(1, min(c.gen.batch_size // rows_each, n))
    for i in range(0, n, size):
        idx = list(range(i, min(i + size, n)))
        yield idx + [idx[-1]] * (size - len(idx)), len(idx)


def reply_ids(c: ml_collections.ConfigDict, brain: Brain, params, prompts: Sequence[str], how: Sampling = ARGMAX,
              rng: jax.Array | None = None, memory=None) -> tuple[np.ndarray, np.ndarray]:
    """Reply ids [len(prompts), dec_len] (EOS, then PAD) and their scores [len(prompts)]
    (generate_scored), generated config.gen.batch_size at a time. `memory`: K concept vectors per
    prompt [len(prompts), K, D] on the decoder's cross-attention path (None: no memory)."""
    ids, scores = [np.zeros((0, c.brain.dec_len), np.int32)], [np.zeros((0,), np.float32)]
    for i, (idx, n) in enumerate(batches(len(prompts), c)):
        key = None if rng is None else jax.random.fold_in(rng, i)
        chunk_ids, chunk_scores = generate_scored(brain, params, [prompts[j] for j in idx], c.brain.dec_len, how, key,
                                                  None if memory is None else np.asarray(memory)[idx])
        ids.append(chunk_ids[:n])
        scores.append(chunk_scores[:n])
    return np.concatenate(ids), np.concatenate(scores)


def replies(c: ml_collections.ConfigDict, brain: Brain, params, decode: Decode, prompts: Sequence[str],
            how: Sampling = ARGMAX, rng: jax.Array | None = None, memory=None) -> list[str]:
    """Decoded replies to `prompts` (max_new = dec_len), generated config.gen.batch_size at a time."""
    return [decode(row) for row in reply_ids(c, brain, params, prompts, how, rng, memory)[0]]


def ranked_replies(c: ml_collections.ConfigDict, brain: Brain, params, decode: Decode,
                   prompts: Sequence[str], memory=None) -> list[str]:
    """Sample-and-rank replies to `prompts` (config.gen.candidates sampled at rank_temperature with
    config.gen's filters, plus the argmax one; seeded by config.gen.seed), max_new = dec_len. The
    argmax candidates are generated a whole batch of prompts at a time, as `replies` does."""
    how = sampling(c, c.gen.rank_temperature)
    rng = jax.random.key(c.gen.seed)
    greedy_ids, greedy_scores = reply_ids(c, brain, params, prompts, memory=memory)
    out = []
    for i, (idx, n) in enumerate(batches(len(prompts), c, rows_each=c.gen.candidates + 1)):
        ids = generate_ranked(brain, params, [prompts[j] for j in idx], c.brain.dec_len, how, c.gen.candidates,
                              jax.random.fold_in(rng, i), None if memory is None else np.asarray(memory)[idx],
                              greedy=(greedy_ids[idx], greedy_scores[idx]))
        out += [decode(row) for row in ids[:n]]
    return out


@functools.partial(jax.jit, static_argnames="brain")
def _encode(brain: Brain, params, enc_ids_BxL):
    return brain.apply({"params": params}, enc_ids_BxL, method=Brain.encode)


def concepts(c: ml_collections.ConfigDict, brain: Brain, params, prompts: Sequence[str]) -> np.ndarray:
    """Concept vectors [len(prompts), D] (f32)."""
    out = []
    for idx, n in batches(len(prompts), c):
        enc_ids_BxL = byte_tok.encode_left([prompts[j] for j in idx], brain.enc.train_len)
        out.append(np.asarray(_encode(brain, params, enc_ids_BxL), np.float32)[:n])
    return np.concatenate(out)


def host_params(params):
    """Parameters generation can use outside the mesh. Generation is not sharded over processes:
    with several, each runs it alone on a full copy (the same replies, so the same metrics)."""
    if jax.process_count() == 1:
        return params
    return multihost_utils.process_allgather(params, tiled=True)
