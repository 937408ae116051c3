"""The planner: a decoder-only LM over the plan vocabulary (prompt chars, then plan tokens)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gestalt_jax.model.layers import StackConfig, computed_once, dense
from gestalt_jax.model.ngrams import NgramBag, NgramInput, segment_cumsum
from gestalt_jax.model.transformer import Stack, embedding, segment_mask, stack_config
from gestalt_jax.text import labels, plan_vocab


class Planner(nn.Module):
    """Logits [B, T, V] for right-padded plan-vocabulary ids; KV cache when decode=True. With
    `at_BxP` (training), the logits [B, P, V] of those positions only: the LM and copy heads, the
    n-gram bag's projection and the clause reader run at the positions the loss reads (the plan's)
    rather than at every goal byte, and each is exactly what it would be in the full [B, T, V].

    Char tokens only ever appear in a plan inside a quote, and a quote is a span of the goal,
    so their logits come from a copy head rather than the LM head: the logit of byte c is the
    logsumexp of the scores from the current position to every prompt position holding c.
    A small model learns to point at the next goal byte far sooner than to reproduce it
    through the vocabulary (copying ran at 29% char accuracy on val goals without this head).
    The prompt is every position before the first STEP or THINK.

    The LM head also reads the goal's clauses (ClauseReader: the prompt marks them, text/clauses.py).

    The LM head (tools, structure, references) also reads the bag of character n-grams of the
    goal up to each position (model/ngrams.py): evidence of each word on its own, beside the
    stack's view of the phrasing. (Added to the stack's input instead, it lowered held-out
    action and argument accuracy: BENCHMARKS.md.) The stack's input at each prompt position
    holds the n-grams ending there, as the byte encoder's does.

    With `goal_both_ways` (config.planner.goal_both_ways) the stack reads the goal as a prefix LM
    does: every position from BOS up to the clauses' end (CEND) sees the others of that block, so a
    goal byte's state, which the copy head's keys are made of, already knows the words after it
    (where a note ends, whether "concerning" frames a topic or is part of it). The plan stays causal.
    The loss reads plan positions only, so training is the same computation with another mask.

    Packed rows (`segments_BxT`, training): each example's positions count from its own
    start, and nothing (attention, copying, n-grams) crosses from one example to another.
    """
    cfg: StackConfig
    ngram_buckets: int
    train: bool = False
    decode: bool = False
    goal_both_ways: bool = False

    @nn.compact
    def __call__(self, ids_BxT, positions_BxT=None, rope_len=None, segments_BxT=None, at_BxP=None):
        cfg = self.cfg
        B, T = ids_BxT.shape
        if positions_BxT is None:
            positions_BxT = (jnp.broadcast_to(jnp.arange(T), (B, T)) if segments_BxT is None else
                             segment_cumsum(jnp.ones_like(segments_BxT), segments_BxT) - 1)
        starts_BxT = (ids_BxT == plan_vocab.STEP) | (ids_BxT == plan_vocab.THINK)
        byte_BxT = ids_BxT - plan_vocab.CHAR_OFFSET
        is_char_BxT = (byte_BxT >= 0) & (byte_BxT < 256)
        clause_BxT = clause_index(ids_BxT, positions_BxT) * is_char_BxT
        initialised = self.has_variable("cache", "cached_copy_key")
        in_prompt_BxT = self._before_first(starts_BxT, segments_BxT, initialised, "copy_in_prompt")
        if self.decode:
            source_BxS, clause_BxS, causal_BxTxS, offset = self._source_cache(byte_BxT, is_char_BxT, clause_BxT,
                                                                               in_prompt_BxT, initialised)
        else:
            causal_BxTxS = jnp.tril(jnp.ones((T, T), bool))[None]
            if segments_BxT is not None:
                causal_BxTxS = causal_BxTxS & segment_mask(segments_BxT)[:, 0]
            source_BxS, offset = jnp.where(is_char_BxT & in_prompt_BxT, byte_BxT, -1), 0
            clause_BxS = clause_BxT * in_prompt_BxT
        x = embedding(plan_vocab.VOCAB_SIZE, cfg, "embed")(ids_BxT)
        # Each prompt position's input also holds the goal's n-grams ending there.
        local_BxSxD = NgramInput(self.ngram_buckets, cfg, name="ngram_input")(source_BxS, source_BxS >= 0,
                                                                              segments_BxT)
        x = x + jax.lax.dynamic_slice_in_dim(local_BxSxD, offset, T, axis=1).astype(x.dtype)
        both_ways_BxT = None
        if self.goal_both_ways:  # the goal block: BOS up to CEND (the goal's clauses with their frame)
            both_ways_BxT = computed_once(self._before_first(ids_BxT == plan_vocab.CEND, segments_BxT, initialised,
                                                             "goal_open") & (ids_BxT != plan_vocab.PAD))
        h_BxTxD = Stack(cfg, self.train, self.decode, name="stack")(x, positions_BxT, rope_len=rope_len or T,
                                                                    segments_BxL=segments_BxT,
                                                                    both_ways_BxL=both_ways_BxT)
        # The LM head also reads the n-grams of the goal so far (all of it from the prompt's end on).
        bag_BxSxD = NgramBag(self.ngram_buckets, cfg, pool="prefix", name="ngrams")(source_BxS, source_BxS >= 0,
                                                                                   segments_BxT)
        bag_BxTxD = jax.lax.dynamic_slice_in_dim(bag_BxSxD, offset, T, axis=1)
        step_BxT = self._step_number(ids_BxT, segments_BxT, initialised)
        k_BxTxD = dense(cfg.d_model, ("embed", "mlp"), cfg, "copy_key")(h_BxTxD)  # every position is a source
        if at_BxP is not None:  # the heads read only these positions: from here on T means P
            h_BxTxD, bag_BxTxD, step_BxT, causal_BxTxS = (_at(x, at_BxP) for x in (h_BxTxD, bag_BxTxD, step_BxT,
                                                                                  causal_BxTxS))
        lm_in_BxTxD = h_BxTxD + dense(cfg.d_model, ("mlp", "embed"), cfg, "ngram_proj")(bag_BxTxD)
        lm_in_BxTxD = lm_in_BxTxD + ClauseReader(self.ngram_buckets, cfg, name="clauses")(
            h_BxTxD, step_BxT, source_BxS, clause_BxS, causal_BxTxS)
        logits_BxTxV = dense(plan_vocab.VOCAB_SIZE, ("embed", "vocab"), cfg, "lm_head")(lm_in_BxTxD)
        logits_BxTxV = logits_BxTxV.astype(jnp.float32)

        q_BxTxD = dense(cfg.d_model, ("embed", "mlp"), cfg, "copy_query")(h_BxTxD)
        k_BxSxD = self._key_cache(k_BxTxD, initialised) if self.decode else k_BxTxD
        scores_BxTxS = jnp.einsum("btd,bsd->bts", q_BxTxD, k_BxSxD,
                                  preferred_element_type=jnp.float32) / jnp.sqrt(cfg.d_model)
        scores_BxTxS = jnp.where((source_BxS >= 0)[:, None, :] & causal_BxTxS, scores_BxTxS, -jnp.inf)
        top_BxTx1 = jnp.maximum(jnp.max(scores_BxTxS, axis=-1, keepdims=True), -1e4)  # finite with no chars
        onehot_BxSx256 = jax.nn.one_hot(source_BxS, 256, dtype=jnp.float32)  # -1 (not a source): all zero
        mass_BxTx256 = jnp.einsum("bts,bsc->btc", jnp.exp(scores_BxTxS - top_BxTx1), onehot_BxSx256)
        # A byte absent from the prompt gets ~ -69 below the best copy score: finite, never chosen.
        copy_BxTx256 = jnp.log(mass_BxTx256 + 1e-30) + top_BxTx1
        logits_BxTxV = jax.lax.dynamic_update_slice(logits_BxTxV, copy_BxTx256, (0, 0, plan_vocab.CHAR_OFFSET))
        return nn.with_logical_constraint(logits_BxTxV, ("batch", "length", "vocab"))

    def _step_number(self, ids_BxT, segments_BxT, initialised):
        """How many STEP tokens the plan has had at each position, this one included (the step
        whose tool, arguments or end the position predicts); carried between decoding calls."""
        is_step_BxT = (ids_BxT == plan_vocab.STEP).astype(jnp.int32)
        if not self.decode:
            return jnp.cumsum(is_step_BxT, axis=1) if segments_BxT is None else segment_cumsum(is_step_BxT,
                                                                                                segments_BxT)
        B = ids_BxT.shape[0]
        fed = self.variable("cache", "steps_fed", lambda: jnp.zeros((B,), jnp.int32))
        steps_BxT = fed.value[:, None] + jnp.cumsum(is_step_BxT, axis=1)
        if initialised:  # not the init call
            fed.value = steps_BxT[:, -1]
        return steps_BxT

    def _before_first(self, marks_BxT, segments_BxT, initialised, name):
        """Whether each position comes before the first mark (True in `marks_BxT`) of its example:
        the prompt before the first STEP or THINK, the goal block before CEND. When decoding, a row
        past its mark stays past it from one call to the next (the cache variable `name`); the goal
        block must then come whole in the prefill, the calls after it being past CEND."""
        marks_BxT = marks_BxT.astype(jnp.int32)
        if not self.decode:
            return (jnp.cumsum(marks_BxT, axis=1) if segments_BxT is None else
                    segment_cumsum(marks_BxT, segments_BxT)) == 0
        open_ = self.variable("cache", name, lambda: jnp.ones((marks_BxT.shape[0],), bool))
        before_BxT = open_.value[:, None] & (jnp.cumsum(marks_BxT, axis=1) == 0)
        if initialised:  # not the init call
            open_.value = open_.value & ~jnp.any(marks_BxT > 0, axis=1)
        return before_BxT

    def _source_cache(self, byte_BxT, is_char_BxT, clause_BxT, in_prompt_BxT, initialised):
        """Decoding: the source byte (-1 where none) and the clause (0 where none) of the last
        cfg.train_len positions before this call, then of the new ones; which of them each new
        position may see; and where the new positions start. Only that window is kept, not the
        whole KV cache's length: no prompt and plan is longer than the training length, and the
        n-grams, the clauses and the copy head, recomputed over it at every step, then cost the
        same however long the cache is. `in_prompt_BxT`: whether each new position is still in its
        row's prompt (_before_first)."""
        B, T = byte_BxT.shape
        W = self.cfg.train_len
        cs = self.variable("cache", "cached_copy_source", lambda: jnp.full((B, W), -1, jnp.int32))
        cc = self.variable("cache", "cached_clause", lambda: jnp.zeros((B, W), jnp.int32))
        source_BxT = jnp.where(is_char_BxT & in_prompt_BxT, byte_BxT, -1)
        clause_BxT = clause_BxT * in_prompt_BxT
        if not initialised:  # init call: allocate only
            return source_BxT, clause_BxT, jnp.tril(jnp.ones((T, T), bool))[None], 0
        source_BxS = jnp.concatenate([cs.value, source_BxT], axis=1)
        clause_BxS = jnp.concatenate([cc.value, clause_BxT], axis=1)
        cs.value, cc.value = source_BxS[:, T:], clause_BxS[:, T:]
        causal_TxS = jnp.arange(W + T)[None, :] <= (W + jnp.arange(T))[:, None]
        return source_BxS, clause_BxS, causal_TxS[None], W

    def _key_cache(self, k_BxTxD, initialised):
        """Decoding: the copy keys of the positions _source_cache returned (its window, then the
        new ones)."""
        B, T, D = k_BxTxD.shape
        ck = self.variable("cache", "cached_copy_key", jnp.zeros, (B, self.cfg.train_len, D), k_BxTxD.dtype)
        if not initialised:
            return k_BxTxD
        k_BxSxD = jnp.concatenate([ck.value, k_BxTxD], axis=1)
        ck.value = k_BxSxD[:, T:]
        return k_BxSxD


def _at(x_BxTx, at_BxP):
    """x at positions `at_BxP` of its axis 1 [B, P, ...] (a leading axis of 1 is broadcast to B)."""
    B = at_BxP.shape[0]
    x_BxTx = jnp.broadcast_to(x_BxTx, (B,) + x_BxTx.shape[1:])
    return jnp.take_along_axis(x_BxTx, at_BxP.reshape(at_BxP.shape + (1,) * (x_BxTx.ndim - 2)), axis=1)


def clause_index(ids_BxT, positions_BxT):
    """The clause (1..MAX_CLAUSES) each position's example is in at that position: k after the
    marker C<k> of its prompt (plan_vocab.encode_prompt), 0 before the first marker and from
    CEND on. `positions_BxT` count from each example's first position, so a marker of the
    example before it in a packed row is not its own; in a call that holds no marker (decoding
    one token), 0."""
    T = ids_BxT.shape[1]
    first, end = plan_vocab.CLAUSE_IDS[0], plan_vocab.CEND
    is_marker_BxT = (ids_BxT >= first) & (ids_BxT <= end)
    k_BxT = jnp.where(is_marker_BxT & (ids_BxT != end), ids_BxT - first + 1, 0)
    t_T = jnp.arange(T)
    last_BxT = jax.lax.cummax(jnp.where(is_marker_BxT, t_T, -1), axis=1)
    own_BxT = (last_BxT >= 0) & (last_BxT >= t_T - positions_BxT)
    return jnp.where(own_BxT, jnp.take_along_axis(k_BxT, jnp.maximum(last_BxT, 0), axis=1), 0)


class ClauseReader(nn.Module):
    """What the LM head reads of the goal's clauses: attention from each position (its state and
    the number of the step it is in) over the clauses it can see, each clause one key and value
    (its bag of n-grams, model/ngrams.py, and its number k), read at the clause's last byte. A
    plan's k-th step most often asks for the k-th clause's request, but not always ("..., but
    check the build first"; a greeting clause asks for nothing): the attention learns which
    clause a step is about, and the clause's own words, not the whole goal's, then say which
    tool it asks for."""
    buckets: int
    cfg: StackConfig

    @nn.compact
    def __call__(self, h_BxTxD, step_BxT, source_BxS, clause_BxS, causal_BxTxS):
        cfg = self.cfg
        # Each run of equal clause numbers is one clause: a packed row's examples and their
        # frames (clause 0) lie between, so neither n-grams nor bags cross a clause.
        S = clause_BxS.shape[1]
        change_BxS = clause_BxS != jnp.pad(clause_BxS, ((0, 0), (1, 0)), constant_values=-1)[:, :S]
        run_BxS = jnp.cumsum(change_BxS, axis=1)
        is_text_BxS = (clause_BxS > 0) & (source_BxS >= 0)
        bag_BxSxD = NgramBag(self.buckets, cfg, pool="prefix", name="ngrams")(source_BxS, is_text_BxS, run_BxS)
        nxt_BxS = jnp.pad(clause_BxS, ((0, 0), (0, 1)), constant_values=-1)[:, 1:]
        last_BxS = (clause_BxS > 0) & (nxt_BxS != clause_BxS)
        key_BxSxD = (dense(cfg.d_model, ("embed", "mlp"), cfg, "key")(bag_BxSxD)
                     + embedding(plan_vocab.CEND - plan_vocab.CLAUSE_IDS[0] + 1, cfg, "number")(clause_BxS))
        value_BxSxD = dense(cfg.d_model, ("embed", "mlp"), cfg, "value")(bag_BxSxD)
        steps = labels.MAX_STEPS + 1
        query_BxTxD = (dense(cfg.d_model, ("embed", "mlp"), cfg, "query")(h_BxTxD)
                       + embedding(steps + 1, cfg, "step")(jnp.minimum(step_BxT, steps)))
        scores_BxTxS = jnp.einsum("btd,bsd->bts", query_BxTxD, key_BxSxD,
                                  preferred_element_type=jnp.float32) / jnp.sqrt(cfg.d_model)
        seen_BxTxS = last_BxS[:, None, :] & causal_BxTxS
        scores_BxTxS = jnp.where(seen_BxTxS, scores_BxTxS, -jnp.inf)
        top_BxTx1 = jnp.max(scores_BxTxS, axis=-1, keepdims=True)
        weights_BxTxS = jnp.exp(scores_BxTxS - jnp.where(jnp.isfinite(top_BxTx1), top_BxTx1, 0.0))
        weights_BxTxS = weights_BxTxS / jnp.maximum(jnp.sum(weights_BxTxS, axis=-1, keepdims=True), 1e-30)
        read_BxTxD = jnp.einsum("bts,bsd->btd", weights_BxTxS.astype(value_BxSxD.dtype), value_BxSxD)
        return dense(cfg.d_model, ("mlp", "embed"), cfg, "out")(read_BxTxD)


def build_planner(c: ml_collections.ConfigDict, train: bool = False) -> Planner:
    p = c.planner
    return Planner(stack_config(p, c, layers=p.layers, dropout=p.dropout, causal=True, cross=False,
                                train_len=p.max_len), p.ngram_buckets, train,
                   goal_both_ways=p.goal_both_ways)
