"""Sequence packing: the packer's layout, and packed rows computing exactly what each example
computes alone (attention, pooling, n-grams, prefix, memory and heads never cross examples)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.data import examples as ex
from gestalt_jax.data import formats, packing
from gestalt_jax.model.brain import build_brain
from gestalt_jax.model.planner import build_planner
from gestalt_jax.model.policy import build_policy
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.train import losses, phases

TIER = config_lib.load_tier("test")
LAYOUT = packing.Layout(groups=dict(a=(10, ("x", "w")), b=(6, ("y",))), segments=3, fill=dict(x=-1),
                        per_example=("label", "at"), offsets=dict(at="a"))


def _example(n_a, n_b, label):
    return dict(x=np.arange(n_a, dtype=np.int32) + 100 * label, w=np.ones(n_a, np.float32),
                y=np.full(n_b, label, np.int32), label=np.int32(label), at=np.int32(n_a - 1))


def test_first_fit_in_order_with_slots_offsets_and_padding():
    packer = packing.Packer(LAYOUT, rows=2)
    for ex_ in (_example(4, 2, 1), _example(7, 1, 2), _example(3, 3, 3), _example(2, 1, 4), _example(3, 1, 5)):
        assert packer.add(ex_)
    assert not packer.add(_example(4, 1, 6))  # fits in no row: a's rows hold 9 and 10 of 10
    batch = packer.batch()
    # Row 0 takes examples 1, 3 and 4 (a: 4 + 3 + 2 <= 10, b: 2 + 3 + 1 <= 6); example 2 (7 a-positions)
    # and then 5 do not fit row 0's a and go to row 1.
    np.testing.assert_array_equal(batch["a_seg"], [[1, 1, 1, 1, 2, 2, 2, 3, 3, 0], [1] * 7 + [2, 2, 2]])
    np.testing.assert_array_equal(batch["b_seg"], [[1, 1, 2, 2, 2, 3], [1, 2, 0, 0, 0, 0]])
    np.testing.assert_array_equal(batch["x"][0], [100, 101, 102, 103, 300, 301, 302, 400, 401, -1])
    np.testing.assert_array_equal(batch["w"][0], [1] * 9 + [0])
    np.testing.assert_array_equal(batch["label"], [[1, 3, 4], [2, 5, 0]])
    # A per-example position moves to where its example starts in the row.
    np.testing.assert_array_equal(batch["at"], [[3, 4 + 2, 7 + 1], [6, 7 + 2, 0]])


def test_positions_laid_along_a_row_move_with_their_example_and_count_as_no_tokens():
    layout = packing.Layout(groups=dict(a=(10, ("x",)), at=(4, ("where",))), segments=3,
                            offsets=dict(where="a"), index_groups=("at",))
    packer = packing.Packer(layout, rows=1)
    for n_a, where in ((4, [1, 3]), (3, [0]), (2, [1])):
        assert packer.add(dict(x=np.ones(n_a, np.int32), where=np.array(where, np.int32)))
    assert not packer.add(dict(x=np.ones(1, np.int32), where=np.array([0], np.int32)))  # 3 slots used
    batch = packer.batch()
    np.testing.assert_array_equal(batch["where"], [[1, 3, 4 + 0, 7 + 1]])
    np.testing.assert_array_equal(batch["at_seg"], [[1, 1, 2, 3]])
    assert layout.token_keys == ("a_seg",) and layout.segment_keys == ("a_seg", "at_seg")
    full = packing.Packer(layout, rows=1)
    assert full.add(dict(x=np.ones(1, np.int32), where=np.arange(4, dtype=np.int32)))
    assert not full.add(dict(x=np.ones(1, np.int32), where=np.array([0], np.int32)))  # its row of 4 is full


def test_segment_cap_and_an_example_longer_than_a_row():
    packer = packing.Packer(LAYOUT, rows=1)
    assert all(packer.add(_example(1, 1, i)) for i in range(3))
    assert not packer.add(_example(1, 1, 9))  # room left, but 3 slots used
    with pytest.raises(ex.DataError, match="a sequence holds 11 positions, more than a row's 10"):
        packing.Packer(LAYOUT, rows=1).add(_example(11, 1, 0))


def test_pack_all_keeps_every_example_once_and_indexes_the_slots():
    items = [_example(1 + i % 5, 1 + i % 3, i) for i in range(23)]
    out = packing.pack_all(items, LAYOUT, rows=2)
    seen = sorted(int(i) for _, index in out for i in index.ravel() if i >= 0)
    assert seen == list(range(23))
    for batch, index in out:
        for row, slot in zip(*np.nonzero(index >= 0)):
            assert batch["label"][row, slot] == index[row, slot]


# ---------------------------------------------------------------- packed == alone


def _params(model, *args):
    return nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), *args)["params"])


def _pack(c, name, records, rows=4):
    (batch, index), = packing.pack_all([phases.example_fn(c, name)(r) for r in records], phases.layout(c, name),
                                       rows)
    assert (index >= 0).sum() == len(records) and (index >= 0).sum(axis=1).max() > 1  # really packed
    return {k: jnp.asarray(v) for k, v in batch.items()}, index


def _where_in_row(batch_seg, index, i):
    """(row, positions) of record i's slot in a packed group."""
    row, slot = (int(x[0]) for x in np.nonzero(index == i))
    return row, np.flatnonzero(np.asarray(batch_seg[row]) == slot + 1), slot


def test_packed_brain_matches_each_example_alone():
    c = TIER
    pairs = formats.load_talk(c.data.talk_files)[0][0][:5]
    batch, index = _pack(c, "brain", pairs)
    brain = build_brain(c)
    memory = jax.random.normal(jax.random.key(1), (4, c.sft.segments, c.brain.mem_k, c.brain.d_model))
    params = _params(brain, batch["enc"], batch["dec_in"], memory, batch["enc_seg"], batch["dec_seg"])
    apply = jax.jit(brain.apply)  # one compile per shape: eager dispatch compiles op by op
    logits, concept = apply({"params": params}, batch["enc"], batch["dec_in"], memory,
                            batch["enc_seg"], batch["dec_seg"])
    N = c.brain.n_prefix
    for i, pair in enumerate(pairs):
        alone = ex.talk_batch([pair], c.brain.enc_len, c.brain.dec_len)
        row, pos, slot = _where_in_row(batch["dec_seg"], index, i)
        want_logits, want_concept = apply({"params": params}, jnp.asarray(alone["enc"]),
                                          jnp.asarray(alone["dec_in"]), memory[row:row + 1, slot])
        T = len(pos) - N  # the example's text positions, after its N concept slots
        np.testing.assert_allclose(concept[row, slot], want_concept[0], atol=2e-5)
        np.testing.assert_allclose(logits[row, pos[N:]], want_logits[0, :T], atol=2e-4)


@pytest.mark.parametrize("both_ways", [False, True])
def test_packed_planner_matches_each_example_alone(both_ways):
    c = TIER.copy_and_resolve_references()
    c.planner.goal_both_ways = both_ways
    goals = ex.load_goals(c.data.goals_file)[:6]
    batch, index = _pack(c, "planner", goals)
    planner = build_planner(c)
    params = _params(planner, batch["inputs"], None, None, batch["plan_seg"])
    apply = jax.jit(planner.apply)
    logits = apply({"params": params}, batch["inputs"], segments_BxT=batch["plan_seg"])
    for i, goal in enumerate(goals):
        alone = ex.planner_batch([goal], c.planner.max_len)
        row, pos, _ = _where_in_row(batch["plan_seg"], index, i)
        want = apply({"params": params}, jnp.asarray(alone["inputs"]))
        np.testing.assert_allclose(logits[row, pos], want[0, :len(pos)], atol=2e-4)


def test_packed_policy_matches_each_example_alone():
    c = TIER
    goals = [g for g in ex.load_goals(c.data.goals_file) if g.get("args") and any(
        isinstance(v, str) for a in g["args"] for v in a.values())][:5]
    batch, index = _pack(c, "policy", goals)
    policy = build_policy(c)
    params = _params(policy, batch["ids"], batch["goal_seg"])
    apply = jax.jit(policy.apply)
    out = apply({"params": params}, batch["ids"], batch["goal_seg"])
    for i, goal in enumerate(goals):
        alone = ex.policy_batch([goal], c.policy.max_len)
        row, pos, slot = _where_in_row(batch["goal_seg"], index, i)
        want = apply({"params": params}, jnp.asarray(alone["ids"]))
        for head in ("intent", "actions", "arg_kind", "from_step", "pick"):
            np.testing.assert_allclose(out[head][row, slot], want[head][0], atol=2e-4, err_msg=head)
        L, shift = c.policy.max_len, c.policy.max_len - len(pos)  # alone: left-padded
        for head in ("span_start", "span_end"):
            np.testing.assert_allclose(out[head][row, slot][:, pos], want[head][0][:, shift:L], atol=2e-4)
            assert np.all(np.delete(np.asarray(out[head][row, slot]), pos, axis=1) <= -1e8)  # others: never


@pytest.mark.parametrize("trained_len", [0, 40])
def test_planner_heads_at_the_trained_positions_are_the_full_logits_there(trained_len):
    """Training runs the planner's heads at the trained positions alone (planner_sft.trained_len):
    their logits, and so the loss and its gradient, are those of the full [B, T, V] there."""
    c = config_lib.load_tier("test")
    c.planner_sft.trained_len = trained_len
    goals = ex.load_goals(c.data.goals_file)[:6]
    batch, _ = _pack(c, "planner", goals)
    assert batch["trained_at"].shape[1] == (trained_len or c.planner.max_len)
    planner = build_planner(c)
    params = _params(planner, batch["inputs"], None, None, batch["plan_seg"])
    apply = jax.jit(planner.apply)
    full_BxTxV = apply({"params": params}, batch["inputs"], segments_BxT=batch["plan_seg"])
    at_BxPxV = apply({"params": params}, batch["inputs"], segments_BxT=batch["plan_seg"], at_BxP=batch["trained_at"])
    filled_BxP = np.asarray(batch["trained_seg"]) > 0
    want = np.take_along_axis(np.asarray(full_BxTxV), np.asarray(batch["trained_at"])[..., None], axis=1)
    np.testing.assert_allclose(np.asarray(at_BxPxV)[filled_BxP], want[filled_BxP], atol=2e-4)

    _, loss_fn = losses.component(c, "planner", train=False)

    def full_loss(p):
        logits = planner.apply({"params": p}, batch["inputs"], segments_BxT=batch["plan_seg"])
        return losses.weighted_ce(logits, batch["targets"], batch["weights"])
    (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, batch, jax.random.key(0))
    want_loss, want_grads = jax.jit(jax.value_and_grad(full_loss))(params)
    np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)
    np.testing.assert_allclose(float(aux["weight"]), float(np.sum(batch["weights"])), rtol=1e-6)
    for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", ["brain", "planner", "policy"])
def test_packed_loss_is_the_examples_weighted_mean(name):
    """The loss of a packed batch weighs every example as the unpacked batch of the same examples
    does: same loss, same exact count."""
    c = TIER
    if name == "brain":
        records = formats.load_talk(c.data.talk_files)[0][0][:5]
    else:
        records = ex.load_goals(c.data.goals_file)[:6]
    batch, _ = _pack(c, name, records)
    model, loss_fn = losses.component(c, name, train=False)
    loss_fn = jax.jit(loss_fn)
    params = _params(model, *losses.init_inputs(name, batch, c))
    loss, aux = loss_fn(params, batch, jax.random.key(0))
    each = [loss_fn(params, _pack_one(c, name, r), jax.random.key(0)) for r in records]
    weights = np.array([float(a["weight"]) for _, a in each])
    np.testing.assert_allclose(float(aux["weight"]), weights.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(loss), np.dot([float(x) for x, _ in each], weights) / weights.sum(), rtol=2e-5)
    assert float(aux["examples"]) == len(records)


def _pack_one(c, name, record):
    (batch, _), = packing.pack_all([phases.example_fn(c, name)(record)], phases.layout(c, name), 1)
    return {k: jnp.asarray(v) for k, v in batch.items()}
