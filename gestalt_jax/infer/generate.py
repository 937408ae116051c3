"""Replies from the brain: prompt → concept → prefix (+ memory) → decoder, in one compiled loop.

The cached path prefills the decoder's KV cache with [N prefix] + BOS in one call, then
feeds one token per step. The uncached path recomputes the whole [prefix] + BOS + text
buffer every step; it exists to check the cached one and to measure what the cache buys.
Both stop a row at EOS and the loop when every row has stopped or after max_new tokens.
Both build RoPE for max_new text positions, the ones whose logits are read (BOS at 0 to the
token before the last): a reply of up to dec_len tokens sees exactly the training forward's
rotations, with no YaRN scaling or attention temperature (those apply beyond dec_len only).

`generate_ranked` is sample-and-rank: the argmax reply and several sampled ones per prompt,
of which it keeps the one the brain itself finds most likely (mean log-probability per token,
which the decode loop sums as it goes; `reply_log_likelihood` computes it for given replies).
An argmax reply to a prompt between two training prompts can switch from one memorised reply
to the other mid-word; a whole reply scores higher than such a blend.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gestalt_jax.infer.sampling import Sampling, sample
from gestalt_jax.model.brain import Brain, LanguageDecoder
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text.bytes import BOS, EOS, PAD

# step(state, token_B, t) -> (state, logits_BxV): feeds generated token t, returns the logits for t+1.
StepFn = Callable[[object, jax.Array, jax.Array], tuple[object, jax.Array]]


def decode_loop(step: StepFn, state, logits_BxV, key, max_new: int, sampling: Sampling, temperature=None):
    """Generated ids [B, max_new] (EOS ends a row, PAD after it), the number of steps run, and each
    reply's mean log-probability per token [B] (f32) under the raw logits (no sampling penalty),
    the tokens up to and including EOS counted: what `reply_log_likelihood` scores the ids with.

    logits_BxV predict token 0; `step` feeds each chosen token and returns the next logits.
    The loop stops once every row has ended, so `steps` can be below max_new. `temperature`
    replaces sampling.temperature when given (see `sample`).
    """
    B = logits_BxV.shape[0]

    def running(carry):
        t, _, done_B, _, _, _, _ = carry
        return (t < max_new) & ~jnp.all(done_B)

    def body(carry):
        t, out_BxM, done_B, logp_B, state, logits_BxV, key = carry
        key, sub = jax.random.split(key)
        token_B = jnp.where(done_B, PAD, sample(logits_BxV, out_BxM, t, sub, sampling, temperature))
        token_logp_B = jnp.take_along_axis(jax.nn.log_softmax(logits_BxV.astype(jnp.float32)),
                                           token_B[:, None], axis=-1)[:, 0]
        logp_B = logp_B + jnp.where(done_B, 0.0, token_logp_B)
        out_BxM = out_BxM.at[:, t].set(token_B)
        done_B = done_B | (token_B == EOS)
        state, logits_BxV = step(state, token_B, t)
        return t + 1, out_BxM, done_B, logp_B, state, logits_BxV, key

    out_BxM = jnp.full((B, max_new), PAD, jnp.int32)
    carry = (jnp.int32(0), out_BxM, jnp.zeros((B,), bool), jnp.zeros((B,), jnp.float32), state, logits_BxV, key)
    t, out_BxM, _, logp_B, _, _, _ = jax.lax.while_loop(running, body, carry)
    return out_BxM, t, logp_B / jnp.maximum(jnp.sum(out_BxM != PAD, axis=1), 1)


def _cached(decoder: LanguageDecoder, dec_params, prefix_BxNxD, memory_BxKxD, max_new: int):
    """Prefilled KV cache and the logits after BOS, plus the step that feeds one token at a time."""
    B = prefix_BxNxD.shape[0]
    text_len = 1 + max_new  # BOS + every generated token: the cache's text capacity
    dec = LanguageDecoder(decoder.cfg, decoder.vocab, decode=True)
    # Initialising at the full length allocates the cache with room for N + 1 + max_new keys.
    init = functools.partial(dec.init, rope_len=max_new)  # rope_len must stay a Python int
    shapes = jax.eval_shape(init, jax.random.key(0), jnp.zeros((B, text_len), jnp.int32),
                            prefix_BxNxD)["cache"]
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def run(cache, tokens_BxT, prefix, positions_BxT):
        logits_BxTxV, state = dec.apply({"params": dec_params, "cache": cache}, tokens_BxT, prefix,
                                        memory_BxKxD, positions_BxT, rope_len=max_new, mutable=["cache"])
        return state["cache"], logits_BxTxV[:, -1]

    bos_Bx1 = jnp.full((B, 1), BOS, jnp.int32)
    cache, logits_BxV = run(cache, bos_Bx1, prefix_BxNxD, jnp.zeros((B, 1), jnp.int32))

    def step(cache, token_B, t):
        # Generated token t sits at text position t + 1 (BOS is 0).
        return run(cache, token_B[:, None], None, jnp.full((B, 1), t + 1, jnp.int32))

    return cache, logits_BxV, step


def _uncached(decoder: LanguageDecoder, dec_params, prefix_BxNxD, memory_BxKxD, max_new: int):
    """A BOS + PAD text buffer and the logits after BOS, plus the full-recompute step.

    The buffer has the cache's text length; causal masking keeps the PAD slots ahead of a
    query from affecting it.
    """
    B = prefix_BxNxD.shape[0]
    buf_BxT = jnp.full((B, 1 + max_new), PAD, jnp.int32).at[:, 0].set(BOS)

    def logits_at(buf_BxT, t):
        logits_BxTxV = decoder.apply({"params": dec_params}, buf_BxT, prefix_BxNxD, memory_BxKxD,
                                     rope_len=max_new)
        return jax.lax.dynamic_index_in_dim(logits_BxTxV, t, axis=1, keepdims=False)

    def step(buf_BxT, token_B, t):
        buf_BxT = jax.lax.dynamic_update_slice(buf_BxT, token_B[:, None], (0, t + 1))
        return buf_BxT, logits_at(buf_BxT, t + 1)

    return buf_BxT, logits_at(buf_BxT, 0), step


def _conditioned(brain: Brain, params, enc_ids_BxL, memory_BxKxD):
    """The decoder's concept prefix [B, N, D] and projected memory (None: none) for byte prompts
    [B, L], and the decoder module."""
    concept_BxD = brain.apply({"params": params}, enc_ids_BxL, method=Brain.encode)
    prefix_BxNxD = brain.apply({"params": params}, concept_BxD, method=Brain.prefix)
    memory_BxKxD = brain.apply({"params": params}, memory_BxKxD, method=Brain.memory)
    return prefix_BxNxD, memory_BxKxD, LanguageDecoder(brain.dec, brain.dec_vocab)


@functools.partial(jax.jit, static_argnames=("brain", "max_new", "sampling", "cached"))
def generate_ids(brain: Brain, params, enc_ids_BxL, memory_BxKxD, key, temperature, *, max_new: int,
                 sampling: Sampling, cached: bool):
    """Generated ids [B, max_new] (EOS, then PAD) for left-padded byte prompts [B, L], and their
    mean log-probability per token [B] (see decode_loop).

    memory_BxKxD holds K raw concept vectors per row (None: no memory); `params` are the
    Brain's parameters; `temperature` (f32 scalar) is the sampling temperature, so that one
    compiled program serves `sampling.compiled()` at every temperature.
    """
    prefix_BxNxD, memory_BxKxD, decoder = _conditioned(brain, params, enc_ids_BxL, memory_BxKxD)
    start = _cached if cached else _uncached
    state, logits_BxV, step = start(decoder, params["decoder"], prefix_BxNxD, memory_BxKxD, max_new)
    ids_BxM, _, logp_B = decode_loop(step, state, logits_BxV, key, max_new, sampling, temperature)
    return ids_BxM, logp_B


def generate(brain: Brain, params, prompts: Sequence[str], max_new: int, sampling: Sampling = Sampling(),
             rng: jax.Array | None = None, memory_BxKxD=None, cached: bool = True,
             encode_len: int | None = None) -> np.ndarray:
    """Token ids [B, max_new] (int32; EOS ends a row, PAD after it) replying to prompts.

    encode_len defaults to the encoder's training length; longer prompts keep their end.
    rng is required unless sampling is greedy.
    """
    return generate_scored(brain, params, prompts, max_new, sampling, rng, memory_BxKxD, cached, encode_len)[0]


def generate_scored(brain: Brain, params, prompts: Sequence[str], max_new: int, sampling: Sampling = Sampling(),
                    rng: jax.Array | None = None, memory_BxKxD=None, cached: bool = True,
                    encode_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`generate`'s ids and each reply's mean log-probability per token [B] (f32; see decode_loop)."""
    if max_new < 1:
        raise ValueError(f"max_new={max_new}: generate at least one token")
    if rng is None:
        if not sampling.greedy:
            raise ValueError(f"sampling at temperature {sampling.temperature} needs an rng key")
        rng = jax.random.key(0)  # never drawn from: greedy decoding ignores it
    enc_ids_BxL = jnp.asarray(byte_tok.encode_left(prompts, encode_len or brain.enc.train_len))
    if memory_BxKxD is not None:
        memory_BxKxD = jnp.asarray(memory_BxKxD)
        if memory_BxKxD.shape[0] != len(prompts):
            raise ValueError(f"memory has {memory_BxKxD.shape[0]} rows for {len(prompts)} prompts")
    ids, logp = generate_ids(brain, params, enc_ids_BxL, memory_BxKxD, rng, jnp.float32(sampling.temperature),
                             max_new=max_new, sampling=sampling.compiled(), cached=cached)
    return np.asarray(ids), np.asarray(logp)


def generate_text(brain: Brain, params, prompts: Sequence[str], max_new: int,
                  decode: Callable[[Iterable[int]], str] = byte_tok.decode, **kwargs) -> list[str]:
    """Replies as text: `generate` then the decoder tokenizer's decode (bytes.decode or
    BpeTokenizer.decode; both stop at EOS)."""
    return [decode(row) for row in generate(brain, params, prompts, max_new, **kwargs)]


@functools.partial(jax.jit, static_argnames="brain")
def reply_log_likelihood(brain: Brain, params, enc_ids_BxL, ids_BxM, memory_BxKxD=None):
    """Mean log-probability per token [B] (f32) of replies ids [B, M] (EOS, then PAD) to left-padded
    byte prompts [B, L], teacher-forced on BOS + ids[:, :-1] as generation of M tokens sees them; the
    tokens up to and including EOS count, raw logits (no sampling penalty)."""
    prefix_BxNxD, memory_BxKxD, decoder = _conditioned(brain, params, enc_ids_BxL, memory_BxKxD)
    buf_BxM = jnp.concatenate([jnp.full((ids_BxM.shape[0], 1), BOS, jnp.int32), ids_BxM[:, :-1]], axis=1)
    logits_BxMxV = decoder.apply({"params": params["decoder"]}, buf_BxM, prefix_BxNxD, memory_BxKxD)
    logp_BxMxV = jax.nn.log_softmax(logits_BxMxV.astype(jnp.float32))
    logp_BxM = jnp.take_along_axis(logp_BxMxV, ids_BxM[..., None], axis=-1)[..., 0]
    eos_BxM = ids_BxM == EOS
    counted_BxM = (jnp.cumsum(eos_BxM, axis=1) - eos_BxM == 0) & (ids_BxM != PAD)
    n_B = jnp.maximum(counted_BxM.sum(axis=1), 1)
    return jnp.where(counted_BxM, logp_BxM, 0.0).sum(axis=1) / n_B


def generate_ranked(brain: Brain, params, prompts: Sequence[str], max_new: int, sampling: Sampling,
                    candidates: int, rng: jax.Array, memory_BxKxD=None,
                    encode_len: int | None = None, greedy=None) -> np.ndarray:
    """Token ids [B, max_new] like `generate`: per prompt, of its argmax reply (no n-gram penalty,
    which would block the replies that repeat a 4-gram) and `candidates` replies sampled with
    `sampling`, the one with the highest mean log-probability per token (decode_loop's score, which
    `reply_log_likelihood` also gives; the first of equals, so the argmax reply wins a tie).
    `greedy`: the argmax replies' `generate_scored` (ids [B, max_new], scores [B]), when the
    caller has them."""
    if candidates < 1:
        raise ValueError(f"candidates={candidates}: rank at least one sampled reply")
    if sampling.greedy:
        raise ValueError(f"sampling at temperature {sampling.temperature} is greedy: "
                         f"every candidate would be the same reply")
    B = len(prompts)

    def each(rows, n):  # every row n times over, in order
        return None if rows is None else np.repeat(np.asarray(rows), n, axis=0)

    if greedy is None:
        argmax = dataclasses.replace(sampling, temperature=0.0, ngram=0)
        greedy = generate_scored(brain, params, prompts, max_new, argmax, memory_BxKxD=memory_BxKxD,
                                 encode_len=encode_len)
    sampled, sampled_score = generate_scored(brain, params, list(each(prompts, candidates)), max_new, sampling,
                                             rng, memory_BxKxD=each(memory_BxKxD, candidates),
                                             encode_len=encode_len)
    ids_BxCxM = np.concatenate([greedy[0][:, None], sampled.reshape(B, candidates, max_new)], axis=1)
    score_BxC = np.concatenate([np.asarray(greedy[1])[:, None], sampled_score.reshape(B, candidates)], axis=1)
    return ids_BxCxM[np.arange(B), score_BxC.argmax(axis=1)]
