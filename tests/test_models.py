"""Behaviour of the Flax modules that users rely on (test tier sizes, CPU)."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.model.brain import LanguageDecoder, build_brain
from gestalt_jax.model.layers import apply_rope, computed_once, kernel_dot_general, rope_tables
from gestalt_jax.model.planner import Planner, build_planner
from gestalt_jax.model.transformer import ByteEncoder, Stack
from gestalt_jax.text import bytes as byte_tok


@pytest.fixture(scope="module")
def cfg():
    return config_lib.load_tier("test")


@pytest.fixture(scope="module")
def brain_parts(cfg):
    b = build_brain(cfg)
    return b.enc, b.dec


def _init(module, *args):
    return nn.meta.unbox(jax.jit(module.init)(jax.random.key(0), *args)["params"])


def _run(module, *args, **kwargs):
    """module.apply compiled whole (eager dispatch compiles and runs op by op: slower here)."""
    return jax.jit(module.apply)(*args, **kwargs)


@pytest.mark.parametrize("shape", [(2, 5, 8, 24), (40, 24, 8), (2, 5, 8, 8)])
def test_dense_kernel_gradient_is_autodiffs(shape):
    """Dense layers compute their kernel's gradient in a form XLA:CPU runs fast (wider in than
    out: the transpose's product); value and gradients stay those of the plain product."""
    *lead, i, o = shape
    x = jax.random.normal(jax.random.key(1), (*lead, i))
    w = jax.random.normal(jax.random.key(2), (i, o))
    g = jax.random.normal(jax.random.key(3), (*lead, o))
    dims = (((x.ndim - 1,), (0,)), ((), ()))

    def value_and_grads(dot):
        return jax.value_and_grad(lambda x, w: jnp.sum(jnp.sin(dot(x, w, dims)) * g), argnums=(0, 1))(x, w)

    (value, grads), want = value_and_grads(kernel_dot_general), value_and_grads(jax.lax.dot_general)
    np.testing.assert_allclose(value, want[0], rtol=1e-5)
    for got, expected in zip(grads, want[1]):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    layer = nn.Dense(o, dot_general=kernel_dot_general)
    params = layer.init(jax.random.key(0), x)
    np.testing.assert_allclose(layer.apply(params, x), x @ params["params"]["kernel"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="kernel_dot_general"):
        kernel_dot_general(w, x, (((0,), (x.ndim - 1,)), ((), ())))


def test_computed_once_returns_its_input():
    x = jax.random.randint(jax.random.key(0), (3, 17), -5, 5)
    np.testing.assert_array_equal(jax.jit(computed_once)(x), x)
    flags = x > 0
    np.testing.assert_array_equal(jax.jit(computed_once)(flags), flags)


def test_mean_pooling_ignores_left_padding(brain_parts):
    enc, _ = brain_parts
    model = ByteEncoder(enc)
    texts = ["hello world", "a much longer sentence that shifts every row's padding", "hi"]
    ids_long = jnp.asarray(byte_tok.encode_left(texts, 64))
    params = _init(model, ids_long)
    concept_long = _run(model, {"params": params}, ids_long)[1]
    concept_short = _run(model, {"params": params}, jnp.asarray(byte_tok.encode_left(texts[:1], 16)))[1]
    concept_alone = _run(model, {"params": params}, jnp.asarray(byte_tok.encode_left(texts[:1], 64)))[1]
    np.testing.assert_allclose(concept_long[0], concept_short[0], atol=1e-5)
    np.testing.assert_allclose(concept_long[0], concept_alone[0], atol=1e-5)
    assert not np.allclose(concept_long[0], concept_long[2], atol=1e-3)  # different text, different concept


def test_rope_leaves_prefix_positions_unrotated():
    x = jax.random.normal(jax.random.key(0), (2, 6, 4, 16))
    inv_freq, _ = rope_tables(16, 10000.0, 64, 6, 32.0, 1.0)
    prefix = jnp.full((2, 2), -1)
    for shift in (0, 5, 40):
        positions = jnp.concatenate([prefix, jnp.broadcast_to(jnp.arange(4) + shift, (2, 4))], 1)
        out = apply_rope(x, positions, inv_freq)
        np.testing.assert_array_equal(out[:, :2], x[:, :2])  # prefix queries/keys untouched
        if shift:
            assert not np.allclose(out[:, 2:], x[:, 2:])     # text is rotated


def test_shifting_text_positions_leaves_prefix_states_unchanged(brain_parts):
    _, dec = brain_parts
    stack = Stack(dataclasses.replace(dec, cross=False))
    N, T = 3, 8
    x = jax.random.normal(jax.random.key(1), (2, N + T, dec.d_model))
    pos = lambda shift: jnp.concatenate([jnp.full((2, N), -1), jnp.broadcast_to(jnp.arange(T) + shift, (2, T))], 1)
    params = _init(stack, x, pos(0))
    out0 = _run(stack, {"params": params}, x, pos(0))
    out7 = _run(stack, {"params": params}, x, pos(7))
    np.testing.assert_allclose(out0[:, :N], out7[:, :N], atol=1e-6)
    # Text queries see the unrotated prefix keys, so absolute text position does matter there.
    assert not np.allclose(out0[:, N:], out7[:, N:], atol=1e-4)


def test_yarn_is_identity_within_training_length():
    plain = 1.0 / 10000.0 ** (np.arange(0, 16, 2) / 16)
    for total in (1, 37, 64):
        inv_freq, scale = rope_tables(16, 10000.0, 64, total, 32.0, 1.0)
        np.testing.assert_allclose(inv_freq, plain, rtol=1e-6)
        assert scale == 1.0


def test_yarn_beyond_training_length_interpolates_only_long_wavelengths():
    plain = 1.0 / 10000.0 ** (np.arange(0, 16, 2) / 16)
    # Over 4096 positions dim 0 turns ~650 times (> beta_fast), the last dim 0.2 times (< beta_slow).
    inv_freq, scale = rope_tables(16, 10000.0, 4096, 4 * 4096, 32.0, 1.0)
    assert scale == pytest.approx(2.0)                       # sqrt(s), s = 4
    np.testing.assert_allclose(inv_freq[0], plain[0], rtol=1e-6)       # fast dims kept
    np.testing.assert_allclose(inv_freq[-1], plain[-1] / 4, rtol=1e-6)  # slow dims interpolated by s=4


def test_stack_within_training_length_matches_plain_rope(brain_parts):
    _, dec = brain_parts
    cfg = dataclasses.replace(dec, cross=False)
    x = jax.random.normal(jax.random.key(2), (2, 20, cfg.d_model))
    pos = jnp.broadcast_to(jnp.arange(20), (2, 20))
    params = _init(Stack(cfg), x, pos)
    out = Stack(cfg).apply({"params": params}, x, pos)
    out_huge_train = Stack(dataclasses.replace(cfg, train_len=10**6)).apply({"params": params}, x, pos)
    np.testing.assert_array_equal(out, out_huge_train)


def _decode_all(model_decode, params, tokens, first_extra, rope_len, positions_offset=0):
    """Prefill with the first token (plus extra args), then one token per step; logits [B, T, V]."""
    B, T = tokens.shape
    init = jax.jit(functools.partial(model_decode.init, rope_len=rope_len))
    cache = init(jax.random.key(0), jnp.zeros_like(tokens), *first_extra)["cache"]

    @jax.jit
    def step(cache, token, extra, positions):
        return model_decode.apply({"params": params, "cache": cache}, token, *extra, positions_BxT=positions,
                                  rope_len=rope_len, mutable=["cache"])

    logits = []
    for t in range(T):
        extra = first_extra if t == 0 else tuple(None if i == 0 else a for i, a in enumerate(first_extra))
        out, state = step(cache, tokens[:, t:t + 1], extra, jnp.full((B, 1), t + positions_offset))
        cache = state["cache"]
        logits.append(out[:, 0])
    return jnp.stack(logits, 1)


@pytest.mark.parametrize("train_len", [128, 6])  # 6: the sequence runs past training length (YaRN on)
def test_kv_cache_decoder_matches_full_forward(brain_parts, train_len):
    _, dec = brain_parts
    dec = dataclasses.replace(dec, train_len=train_len)
    V, N, K, T = 300, 2, 2, 10
    tokens = jax.random.randint(jax.random.key(3), (2, T), 0, V)
    prefix = jax.random.normal(jax.random.key(4), (2, N, dec.d_model))
    memory = jax.random.normal(jax.random.key(5), (2, K, dec.d_model))
    full = LanguageDecoder(dec, V)
    params = _init(full, tokens, prefix, memory)
    want = _run(full, {"params": params}, tokens, prefix, memory)
    got = _decode_all(LanguageDecoder(dec, V, decode=True), params, tokens, (prefix, memory), rope_len=T)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)


def test_kv_cache_planner_matches_full_forward(cfg):
    planner = build_planner(cfg).clone(goal_both_ways=False)  # token by token from the first
    tokens = jax.random.randint(jax.random.key(6), (3, 12), 0, 300)
    params = _init(planner, tokens)
    want = _run(planner, {"params": params}, tokens)
    got = _decode_all(Planner(planner.cfg, planner.ngram_buckets, decode=True), params, tokens, (), rope_len=12)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)


def test_cross_attention_contributes_nothing_without_memory(cfg):
    brain = build_brain(cfg)
    enc = jnp.asarray(byte_tok.encode_left(["what is a mutex?", "hi"], cfg.brain.enc_len))
    dec_in, _, _ = byte_tok.decoder_pair(["A lock.", "Hello."], cfg.brain.dec_len)
    memory = jax.random.normal(jax.random.key(7), (2, cfg.brain.mem_k, cfg.brain.d_model))
    params = _init(brain, enc, dec_in, memory)
    with_cross, _ = _run(brain, {"params": params}, enc, dec_in, None)
    no_cross = brain.clone(dec=dataclasses.replace(brain.dec, cross=False))
    stripped = jax.tree.map(lambda x: x, params)  # a copy whose dicts we may edit
    for block in stripped["decoder"]["stack"].values():
        if isinstance(block, dict):
            block.pop("cross", None), block.pop("cross_norm", None)
    without, _ = _run(no_cross, {"params": stripped}, enc, dec_in, None)
    np.testing.assert_array_equal(with_cross, without)
    with_memory, _ = _run(brain, {"params": params}, enc, dec_in, memory)
    assert not np.allclose(with_memory, with_cross, atol=1e-4)  # and memory, when given, is used


def test_decoder_logits_cover_text_positions_only(cfg):
    brain = build_brain(cfg)
    enc = jnp.asarray(byte_tok.encode_left(["x"], cfg.brain.enc_len))
    dec_in = jnp.asarray(byte_tok.encode_right(["abc"], 17))
    params = _init(brain, enc, dec_in)
    logits, concept = jax.eval_shape(brain.apply, {"params": params}, enc, dec_in)
    assert logits.shape == (1, 17, config_lib.decoder_vocab(cfg))
    assert concept.shape == (1, cfg.brain.d_model)


def test_concept_noise_conditions_training_only(cfg):
    brain = build_brain(cfg)
    assert brain.concept_noise > 0
    enc = jnp.asarray(byte_tok.encode_left(["what is a mutex?", "hi"], cfg.brain.enc_len))
    dec_in, _, _ = byte_tok.decoder_pair(["A lock.", "Hello."], cfg.brain.dec_len)
    params = _init(brain, enc, dec_in)
    rngs = {"dropout": jax.random.key(3)}
    noisy, concept = brain.clone(train=True).apply({"params": params}, enc, dec_in, rngs=rngs)
    quiet, concept_quiet = brain.clone(train=True, concept_noise=0.0).apply({"params": params}, enc, dec_in, rngs=rngs)
    np.testing.assert_array_equal(concept, concept_quiet)  # the concept itself is not noised
    assert not np.allclose(noisy, quiet, atol=1e-4)  # what the decoder is conditioned on is
    served, _ = brain.apply({"params": params}, enc, dec_in)
    unnoised, _ = brain.clone(concept_noise=0.0).apply({"params": params}, enc, dec_in)
    np.testing.assert_array_equal(served, unnoised)


def test_planner_reading_the_goal_both_ways_decodes_as_it_trains(cfg):
    """With planner.goal_both_ways the goal's bytes see the words after them, in training's
    forward and in decoding (the goal whole in the prefill, then one token a step) alike."""
    from gestalt_jax.data import examples as ex
    from gestalt_jax.text import plan_vocab as pv

    c = cfg.copy_and_resolve_references()
    c.planner.goal_both_ways = True
    planner = build_planner(c)
    goals = ex.load_goals(c.data.goals_file)[:3]
    ids = jnp.asarray(ex.planner_batch(goals, c.planner.max_len)["inputs"])
    params = _init(planner, ids)
    full = _run(planner, {"params": params}, ids)
    causal = _run(planner.clone(goal_both_ways=False), {"params": params}, ids)
    decoder = planner.clone(decode=True)
    init = jax.jit(functools.partial(decoder.init, rope_len=c.planner.max_len))
    step = jax.jit(functools.partial(decoder.apply, rope_len=c.planner.max_len, mutable=["cache"]))
    for b in range(len(goals)):
        row = np.asarray(ids[b])
        P = int(np.argmax((row == pv.STEP) | (row == pv.THINK)))  # the prompt's length
        n = int(np.sum(row != pv.PAD))
        cache = init(jax.random.key(0), jnp.zeros((1, n), jnp.int32))["cache"]
        _, state = step({"params": params, "cache": cache}, ids[b:b + 1, :P - 1],
                        positions_BxT=jnp.arange(P - 1)[None])
        cache, got = state["cache"], []
        for t in range(P - 1, n):
            out, state = step({"params": params, "cache": cache}, ids[b:b + 1, t:t + 1],
                              positions_BxT=jnp.full((1, 1), t))
            cache = state["cache"]
            got.append(out[0, 0])
        np.testing.assert_allclose(np.stack(got), full[b, P - 1:n], atol=2e-5, rtol=2e-5)
        # and the goal read both ways is another reading than the causal one
        assert not np.allclose(full[b, P - 1:n], causal[b, P - 1:n], atol=1e-3)
