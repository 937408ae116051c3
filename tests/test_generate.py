"""Generation with the brain (KV cache vs full recompute) and the sampling rules."""

from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax import config
from gestalt_jax.infer import compiles
from gestalt_jax.infer import generate as generate_lib
from gestalt_jax.infer.generate import (decode_loop, generate, generate_ranked, generate_scored, generate_text,
                                        reply_log_likelihood)
from gestalt_jax.infer.sampling import Sampling, repeated_ngram_tokens, sample
from gestalt_jax.model.brain import build_brain
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text.bytes import EOS, PAD

PROMPTS = ["what is a mutex?", "hi", "", "please list the files in src and read main.py"]
MAX_NEW = 12
GREEDY = Sampling(ngram=0)  # plain argmax, so the training forward's argmax is a reference


TIER = config.load_tier("test")


@pytest.fixture(scope="module")
def brain_params():
    brain = build_brain(TIER)
    enc = jnp.asarray(byte_tok.encode_left(["x"], TIER.brain.enc_len))
    dec, _, _ = byte_tok.decoder_pair(["y"], TIER.brain.dec_len)
    memory = jnp.zeros((1, TIER.brain.mem_k, TIER.brain.d_model))  # creates the cross-attention params
    params = nn.meta.unbox(jax.jit(brain.init)(jax.random.key(0), enc, dec, memory)["params"])
    return brain, params


def _memory(seed=1):
    return jax.random.normal(jax.random.key(seed), (len(PROMPTS), TIER.brain.mem_k, TIER.brain.d_model))


def _until_eos(ids_BxM):
    """bool [B, M]: positions up to and including each row's first EOS."""
    ended_before = np.cumsum(ids_BxM == EOS, axis=1) - (ids_BxM == EOS)
    return ended_before == 0


@pytest.mark.parametrize("with_memory", [False, True])
@pytest.mark.parametrize("extra", [0, 8])  # 8: BOS + text runs past dec_len, so YaRN scaling is on
def test_cached_equals_uncached_and_the_training_forward(brain_params, with_memory, extra):
    brain, params = brain_params
    memory = _memory() if with_memory else None
    max_new = MAX_NEW if extra == 0 else TIER.brain.dec_len + extra
    cached = generate(brain, params, PROMPTS, max_new, GREEDY, memory_BxKxD=memory)
    uncached = generate(brain, params, PROMPTS, max_new, GREEDY, memory_BxKxD=memory, cached=False)
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape == (len(PROMPTS), max_new)
    assert len({tuple(r) for r in cached}) > 1, "different prompts should condition different replies"

    # Teacher-forcing BOS + the generated text but its last token through Brain.__call__
    # (rope_len = max_new, as in generation) must pick the same tokens at every position up to EOS.
    enc = jnp.asarray(byte_tok.encode_left(PROMPTS, brain.enc.train_len))
    dec_in = np.concatenate([np.full((len(PROMPTS), 1), byte_tok.BOS), cached[:, :-1]], axis=1)
    logits_BxTxV, _ = jax.jit(brain.apply)({"params": params}, enc, jnp.asarray(dec_in), memory)
    want = np.asarray(jnp.argmax(logits_BxTxV.at[..., PAD].set(-jnp.inf), axis=-1))
    keep = _until_eos(cached)
    np.testing.assert_array_equal(cached[keep], want[keep])


def test_replies_up_to_the_training_length_use_the_training_rope(brain_params):
    """A reply of dec_len tokens is decoded at the positions training saw, so it is the training
    forward's argmax continuation, and the ranking scores it with the training forward's logits
    (no YaRN scaling or attention temperature, which only apply beyond dec_len)."""
    brain, params = brain_params
    max_new = TIER.brain.dec_len
    ids = generate(brain, params, PROMPTS, max_new, GREEDY)
    enc = jnp.asarray(byte_tok.encode_left(PROMPTS, brain.enc.train_len))
    dec_in = np.concatenate([np.full((len(PROMPTS), 1), byte_tok.BOS), ids[:, :-1]], axis=1)  # dec_len long
    logits_BxTxV, _ = jax.jit(brain.apply)({"params": params}, enc, jnp.asarray(dec_in))
    want = np.asarray(jnp.argmax(logits_BxTxV.at[..., PAD].set(-jnp.inf), axis=-1))
    keep = _until_eos(ids)
    np.testing.assert_array_equal(ids[keep], want[keep])
    logp = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits_BxTxV)), ids[..., None], axis=-1)[..., 0]
    counted = keep & (ids != PAD)
    want_score = [logp[b][counted[b]].mean() for b in range(len(PROMPTS))]
    np.testing.assert_allclose(reply_log_likelihood(brain, params, enc, jnp.asarray(ids)), want_score, rtol=1e-5)


def test_memory_changes_the_reply(brain_params):
    brain, params = brain_params
    plain = generate(brain, params, PROMPTS, MAX_NEW, GREEDY)
    with_memory = generate(brain, params, PROMPTS, MAX_NEW, GREEDY, memory_BxKxD=_memory() * 10)
    assert not np.array_equal(plain, with_memory)


def test_sampled_generation_is_reproducible_and_cache_independent(brain_params):
    brain, params = brain_params
    hot = Sampling(temperature=1.0)
    a = generate(brain, params, PROMPTS, MAX_NEW, hot, rng=jax.random.key(5))
    b = generate(brain, params, PROMPTS, MAX_NEW, hot, rng=jax.random.key(5), cached=False)
    c = generate(brain, params, PROMPTS, MAX_NEW, hot, rng=jax.random.key(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(a == PAD, ~_until_eos(a))  # PAD exactly after EOS
    with pytest.raises(ValueError, match="rng"):
        generate(brain, params, PROMPTS, 4, hot)


def test_every_sampling_temperature_shares_one_compiled_generation(brain_params):
    brain, params = brain_params
    key = jax.random.key(5)
    warm = generate(brain, params, PROMPTS, MAX_NEW, Sampling(temperature=0.5), rng=key)
    with compiles.counted() as compiled:
        hot = generate(brain, params, PROMPTS, MAX_NEW, Sampling(temperature=3.0), rng=key)
    assert sum(compiled.values()) == 0, dict(compiled)
    assert not np.array_equal(warm, hot)  # the temperature still counts


def test_generate_text_decodes_each_row(brain_params):
    brain, params = brain_params
    ids = generate(brain, params, PROMPTS, MAX_NEW, GREEDY)
    texts = generate_text(brain, params, PROMPTS, MAX_NEW, sampling=GREEDY)
    assert texts == [byte_tok.decode(r) for r in ids] and any(texts)


def test_reply_log_likelihood_is_the_teacher_forced_mean_up_to_eos(brain_params):
    brain, params = brain_params
    memory = _memory()
    ids, scored = generate_scored(brain, params, PROMPTS, MAX_NEW, Sampling(temperature=1.0), rng=jax.random.key(3),
                                  memory_BxKxD=memory)
    enc = jnp.asarray(byte_tok.encode_left(PROMPTS, brain.enc.train_len))
    got = np.asarray(reply_log_likelihood(brain, params, enc, jnp.asarray(ids), memory))
    dec_in = np.concatenate([np.full((len(PROMPTS), 1), byte_tok.BOS), ids], axis=1)
    logits_BxTxV, _ = jax.jit(brain.apply)({"params": params}, enc, jnp.asarray(dec_in), memory)
    logp = np.asarray(jax.nn.log_softmax(logits_BxTxV[:, :-1]))
    token_logp = np.take_along_axis(logp, ids[..., None], axis=-1)[..., 0]
    keep = _until_eos(ids) & (ids != PAD)
    want = [token_logp[b][keep[b]].mean() for b in range(len(PROMPTS))]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(scored, want, rtol=1e-5)  # what generation summed as it went
    # Row 0 ended at token 5: what follows its EOS does not count, whatever it is.
    ended = ids.copy()
    ended[0, 5], ended[0, 6:] = EOS, PAD
    noisy = ended.copy()
    noisy[0, 6:] = 65
    a, b = (np.asarray(reply_log_likelihood(brain, params, enc, jnp.asarray(x), memory))
            for x in (ended, noisy))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(a[1:], got[1:], rtol=1e-6)
    assert a[0] != got[0]


def test_generate_ranked_keeps_the_candidate_the_brain_finds_most_likely(brain_params):
    brain, params = brain_params
    hot, n, key, memory = Sampling(temperature=1.0), 5, jax.random.key(7), _memory()
    ranked = generate_ranked(brain, params, PROMPTS, MAX_NEW, hot, n, key, memory)
    greedy = generate(brain, params, PROMPTS, MAX_NEW, GREEDY, memory_BxKxD=memory)
    sampled = generate(brain, params, [p for p in PROMPTS for _ in range(n)], MAX_NEW, hot, rng=key,
                       memory_BxKxD=np.repeat(np.asarray(memory), n, axis=0))
    enc = jnp.asarray(byte_tok.encode_left(PROMPTS, brain.enc.train_len))

    def score(ids):
        return np.asarray(reply_log_likelihood(brain, params, enc, jnp.asarray(ids), memory))

    candidates = [greedy] + [sampled[j::n] for j in range(n)]
    scores = np.stack([score(ids) for ids in candidates])  # [n + 1, B]
    best = scores.argmax(axis=0)
    np.testing.assert_array_equal(ranked, np.stack([candidates[k][b] for b, k in enumerate(best)]))
    assert (score(ranked) >= score(greedy) - 1e-6).all()
    # Scores that favour candidate (b + 1) % (n + 1) for prompt b, and a tie with greedy in the last row.
    crafted = np.zeros((len(PROMPTS), n + 1), np.float32)
    crafted[np.arange(len(PROMPTS)), (np.arange(len(PROMPTS)) + 1) % (n + 1)] = 1.0
    crafted[-1] = 0.0
    with mock.patch.object(generate_lib, "generate_scored", return_value=(sampled, crafted[:, 1:].reshape(-1))):
        picked = generate_ranked(brain, params, PROMPTS, MAX_NEW, hot, n, key, memory, greedy=(greedy, crafted[:, 0]))
    for b in range(len(PROMPTS) - 1):
        np.testing.assert_array_equal(picked[b], candidates[b + 1][b])
    np.testing.assert_array_equal(picked[-1], greedy[-1])
    with pytest.raises(ValueError, match="greedy"):
        generate_ranked(brain, params, PROMPTS, MAX_NEW, Sampling(temperature=0.0), n, key)


def test_eos_ends_a_row_and_the_loop_stops_when_all_rows_ended():
    V, max_new = 300, 10
    # Row 0 says 7 7 EOS; row 1 says 9 until step 4, then EOS; a PAD-free step counts calls.
    script_BxM = np.full((2, max_new + 1), 0, np.int32)
    script_BxM[0, :3] = [7, 7, EOS]
    script_BxM[0, 3:] = 7
    script_BxM[1, :] = 9
    script_BxM[1, 4] = EOS
    script = jnp.asarray(script_BxM)

    def step(calls, token_B, t):
        return calls + 1, jax.nn.one_hot(script[:, t + 1], V) * 10.0

    @jax.jit
    def run():
        return decode_loop(step, jnp.int32(0), jax.nn.one_hot(script[:, 0], V) * 10.0,
                           jax.random.key(0), max_new, Sampling(ngram=0))

    ids, steps, _ = run()
    np.testing.assert_array_equal(ids[0], [7, 7, EOS] + [PAD] * 7)
    np.testing.assert_array_equal(ids[1], [9, 9, 9, 9, EOS] + [PAD] * 5)
    assert int(steps) == 5


def _draws(logits_BxV, s: Sampling, n=400, history=None, lengths=0):
    """Sampled ids [n, B] over n keys."""
    B = logits_BxV.shape[0]
    history = jnp.full((B, 1), PAD, jnp.int32) if history is None else history
    keys = jax.random.split(jax.random.key(0), n)
    return np.asarray(jax.vmap(lambda k: sample(logits_BxV, history, lengths, k, s))(keys))


def test_top_k_samples_only_the_k_best():
    # Near-flat logits: without the filter, draws would spread over all 300 tokens.
    logits = jax.random.normal(jax.random.key(1), (3, 300)) * 0.1
    ids = _draws(logits, Sampling(temperature=1.0, top_k=5, top_p=1.0, ngram=0))
    top5 = np.asarray(jax.lax.top_k(logits, 5)[1])
    for b in range(3):
        assert set(ids[:, b]) == set(top5[b])


def test_top_p_samples_only_the_nucleus():
    probs = np.array([0.05, 0.5, 0.15, 0.3] + [0.0] * 296) + 1e-9
    logits = jnp.log(jnp.asarray(probs / probs.sum(), jnp.float32))[None]
    # Mass before each in order 0.5, 0.3, 0.15, 0.05: 0, .5, .8, .95 -> nucleus {1, 3, 2} at p = 0.9.
    ids = _draws(logits, Sampling(temperature=1.0, top_k=0, top_p=0.9, ngram=0))
    assert set(ids[:, 0]) == {1, 2, 3}
    ids = _draws(logits, Sampling(temperature=1.0, top_k=0, top_p=0.75, ngram=0))
    assert set(ids[:, 0]) == {1, 3}
    # A nucleus smaller than the top token still keeps the top token.
    ids = _draws(logits, Sampling(temperature=1.0, top_k=0, top_p=0.01, ngram=0), n=50)
    assert set(ids[:, 0]) == {1}


def test_low_temperature_is_argmax_and_pad_is_never_chosen():
    logits = jax.random.normal(jax.random.key(2), (4, 300))
    logits = logits.at[1, PAD].set(50.0)  # row 1's best is PAD
    ids = _draws(logits, Sampling(temperature=0.005), n=8)
    want = np.asarray(jnp.argmax(logits.at[:, PAD].set(-jnp.inf), axis=-1))
    assert (ids == want[None]).all() and want[1] != PAD

    # PAD alone fills the nucleus here, and it is still never sampled.
    ids = _draws(logits, Sampling(temperature=1.0))
    assert not (ids == PAD).any()
    assert (ids[:, 1] == want[1]).all()
    ids = _draws(logits.at[:, PAD].set(3.0), Sampling(temperature=2.0, top_k=0, top_p=1.0, ngram=0))
    assert not (ids == PAD).any()


def test_ngram_penalty_flags_exactly_the_token_completing_a_repeat():
    V = 300
    history = jnp.asarray([
        [1, 2, 3, 4, 1, 2, 3, 0, 0],    # "1 2 3" was followed by 4: 4 would repeat "1 2 3 4"
        [1, 2, 3, 4, 1, 2, 3, 1, 2],    # same text but only 6 ids count: ends "4 1 2", no repeat
        [5, 2, 3, 9, 2, 3, 0, 0, 0],    # "2 3 9" would repeat only a 3-gram: no 4-gram penalty
        [6, 6, 6, 6, 6, 0, 0, 0, 0],    # overlapping repeats count: 6 again repeats "6 6 6 6"
        [1, 2, 7, 4, 1, 2, 3, 0, 0],    # "1 2 7" is not "1 2 3": all n-1 ids must match
    ], jnp.int32)
    lengths = jnp.asarray([7, 6, 6, 5, 7])
    hit = np.asarray(repeated_ngram_tokens(history, lengths, 4, V))
    assert [list(np.flatnonzero(h)) for h in hit] == [[4], [], [], [6], []]

    # Through `sample`: only token 4 of row 0 changes, positive logits halve, negative ones double.
    logits = jnp.zeros((5, V)).at[:, 4].set(3.0).at[:, 9].set(2.0)
    np.testing.assert_array_equal(_draws(logits, Sampling(), n=1, history=history, lengths=lengths)[0],
                                  [9, 4, 4, 4, 4])
    negative = jnp.full((5, V), -5.0).at[:, 4].set(-1.0).at[:, 9].set(-1.5)
    np.testing.assert_array_equal(_draws(negative, Sampling(), n=1, history=history, lengths=lengths)[0],
                                  [9, 4, 4, 4, 4])
    off = Sampling(ngram_penalty=1.0)
    np.testing.assert_array_equal(_draws(logits, off, n=1, history=history, lengths=lengths)[0], [4] * 5)
