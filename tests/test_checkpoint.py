"""Phase checkpoints: resume state, best by val loss, data iterator position, restore onto any mesh."""

import math
import os
import subprocess
import sys
import textwrap

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gestalt_jax.train.checkpoint import CheckpointError, PhaseCheckpoints, abstract_like
from gestalt_jax.train.step import init_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_state(seed: int):
    """A TrainState of a 2-layer MLP after one AdamW update, so the optimizer moments are nonzero."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = {"dense1": {"kernel": jax.random.normal(k1, (8, 16)), "bias": jnp.zeros(16)},
              "dense2": {"kernel": jax.random.normal(k2, (16, 8)), "bias": jnp.zeros(8)}}
    optimizer = optax.adamw(1e-3)
    state = init_state(params, optimizer, k3)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1 * (seed + 1)), params)
    updates, opt_state = optimizer.update(grads, state.opt_state, params)
    return state.replace(step=jnp.int32(seed), params=optax.apply_updates(params, updates),
                         opt_state=opt_state)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def saved_steps(directory):
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def test_latest_and_best_survive_restart(tmp_path):
    states = {step: make_state(step) for step in range(1, 5)}
    with PhaseCheckpoints(tmp_path, keep=2) as ckpt:
        for step, score in zip(range(1, 5), [3.0, 2.0, 2.5, 1.5]):
            ckpt.save(step, states[step], score=score, config_json='{"lr": 0.001}')
        assert ckpt.best_score() == 1.5
    assert saved_steps(tmp_path / "latest") == [3, 4]
    assert saved_steps(tmp_path / "best") == [4]

    with PhaseCheckpoints(tmp_path, keep=2) as ckpt:
        assert ckpt.best_score() == 1.5
        assert ckpt.latest_step() == 4
        state, step = ckpt.restore_latest(abstract_like(make_state(0)))
        assert step == 4
        assert_trees_equal(state, states[4])
        assert_trees_equal(ckpt.restore_best(make_state(0)), states[4])
        # A worse val loss after the restart must not replace the persisted best.
        ckpt.save(5, make_state(5), score=1.7)
        ckpt.wait()
        assert ckpt.best_score() == 1.5
    assert saved_steps(tmp_path / "best") == [4]


def test_non_finite_score_never_becomes_best(tmp_path):
    with PhaseCheckpoints(tmp_path, keep=3) as ckpt:
        ckpt.save(1, make_state(1), score=math.nan)
        ckpt.wait()
        assert ckpt.best_score() == math.inf
        with pytest.raises(FileNotFoundError):
            ckpt.restore_best(make_state(0))
        ckpt.save(2, make_state(2), score=2.0)
        ckpt.save(3, make_state(3), score=math.nan)
        ckpt.save(4, make_state(4), score=-math.inf)
        ckpt.wait()
        assert ckpt.best_score() == 2.0
        assert_trees_equal(ckpt.restore_best(make_state(0)), make_state(2))
    assert saved_steps(tmp_path / "best") == [2]


def test_data_iterator_resumes_where_it_was_saved(tmp_path):
    def batches():
        return iter(grain.MapDataset.range(100).shuffle(seed=0).batch(4).to_iter_dataset())

    data_iter = batches()
    for _ in range(3):
        next(data_iter)
    with PhaseCheckpoints(tmp_path, keep=1) as ckpt:
        ckpt.save(3, make_state(3), data_iter)
        expected = [next(data_iter) for _ in range(3)]  # advancing after save must not leak in

    resumed = batches()
    with PhaseCheckpoints(tmp_path, keep=1) as ckpt:
        state, step = ckpt.restore_latest(make_state(0))
        where, states = ckpt.data_states(step)
    assert step == 3 and where == str(tmp_path / "latest" / "3" / "data")
    assert_trees_equal(state, make_state(3))
    [saved] = states
    resumed.set_state(saved)
    for want in expected:
        np.testing.assert_array_equal(next(resumed), want)


def test_iterator_states_that_are_incomplete_are_named(tmp_path):
    with PhaseCheckpoints(tmp_path, keep=1) as ckpt:
        ckpt.save(1, make_state(1), iter(grain.MapDataset.range(10).to_iter_dataset()))
    data = tmp_path / "latest" / "1" / "data"
    (data / "process_0-of-1.json").rename(data / "process_0-of-2.json")
    with PhaseCheckpoints(tmp_path, keep=1) as ckpt:
        with pytest.raises(CheckpointError, match=rf"{data}: expected one iterator state per process .*"
                                                  r"\['process_0-of-2.json'\]"):
            ckpt.data_states(1)


def test_empty_directory(tmp_path):
    with PhaseCheckpoints(tmp_path / "phase", keep=2) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.best_score() == math.inf
        assert ckpt.restore_latest(make_state(0)) is None
        with pytest.raises(FileNotFoundError, match=str(tmp_path / "phase" / "best")):
            ckpt.restore_best(make_state(0))


CROSS_MESH = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    sys.path.insert(0, {tests!r})
    from test_checkpoint import assert_trees_equal, make_state
    from gestalt_jax.train.checkpoint import PhaseCheckpoints, abstract_like

    assert jax.device_count() == 8
    mesh = jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)

    def spec(x):
        # Kernels (and their Adam moments) split over fsdp; biases, counts, step and rng replicated.
        return {{(8, 16): P("fsdp", None), (16, 8): P(None, "fsdp")}}.get(x.shape, P())

    one_device = make_state(1)
    assert all(len(x.devices()) == 1 for x in jax.tree.leaves(one_device))
    shardings = jax.tree.map(lambda x: NamedSharding(mesh, spec(x)), one_device)
    with PhaseCheckpoints({directory!r}, keep=2) as ckpt:
        ckpt.save(1, one_device)
        ckpt.wait()
        sharded, _ = ckpt.restore_latest(abstract_like(one_device, shardings))
        assert_trees_equal(sharded, one_device)
        for x, want in zip(jax.tree.leaves(sharded), jax.tree.leaves(shardings)):
            assert x.sharding.is_equivalent_to(want, x.ndim), (x.sharding, want)
        assert sharded.params["dense1"]["kernel"].addressable_shards[0].data.shape == (2, 16)
        assert sharded.params["dense2"]["kernel"].addressable_shards[0].data.shape == (16, 2)

        ckpt.save(2, sharded)
        ckpt.wait()
        device0 = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        back, step = ckpt.restore_latest(abstract_like(one_device, jax.tree.map(lambda _: device0,
                                                                                  one_device)))
        assert step == 2
        assert_trees_equal(back, one_device)
        assert all(x.sharding == device0 for x in jax.tree.leaves(back))
    print("ok")
""")


def test_restore_onto_another_mesh_and_back(tmp_path, device_env):
    code = CROSS_MESH.format(tests=os.path.join(REPO, "tests"), directory=str(tmp_path))
    # The device count is fixed when jax initialises, hence a fresh interpreter.
    result = subprocess.run([sys.executable, "-c", code], env=device_env(8), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]
