"""Gradient guarantees: a parameter cut off from the loss is named; finite differences can fail."""

import jax
import jax.numpy as jnp
import pytest

from gestalt_jax import check
from gestalt_jax import config as config_lib
from gestalt_jax.train import grad_check, losses


@pytest.fixture(scope="module")
def cfg():
    c = config_lib.load_tier("test")
    c.check.fd_directions = 2
    return c


@pytest.fixture(scope="module")
def batches(cfg):
    return check.real_batches(cfg, cfg.check.batch_size)


def test_policy_check_passes(cfg, batches):
    row = check.check_component(cfg, "policy", "policy", False, batches, jax.random.key(0))
    assert row.problems == []
    assert row.min_grad > 0 and row.fd_error < cfg.check.fd_tolerance


def test_parameter_behind_stop_gradient_is_reported_by_path(cfg, batches, monkeypatch):
    real = losses.component

    def cut(c, name, train):
        model, loss_fn = real(c, name, train)
        def loss(params, batch, rng):
            params = dict(params, intent=jax.tree.map(jax.lax.stop_gradient, params["intent"]))
            return loss_fn(params, batch, rng)
        return model, loss

    monkeypatch.setattr(losses, "component", cut)
    row = check.check_component(cfg, "policy", "policy", False, batches, jax.random.key(0))
    report = "\n".join(check.failures([row], cfg))
    assert "intent/kernel" in report and "intent/bias" in report
    assert "actions/kernel" not in report


def test_assert_grads_names_dead_and_nonfinite_leaves():
    grads = {"a": {"kernel": jnp.ones((2, 2))}, "b": {"bias": jnp.zeros(3)}}
    with pytest.raises(AssertionError, match="b/bias"):
        grad_check.assert_grads(grads)
    grad_check.assert_grads(grads, exempt=grad_check.matching(["b/"]))
    with pytest.raises(AssertionError):
        grad_check.assert_grads({"a": jnp.array([1.0, jnp.nan])})


def test_finite_differences_agree_and_catch_a_wrong_gradient():
    target = jax.random.normal(jax.random.key(0), (50,))
    loss = jax.jit(lambda p: jnp.sum(jnp.sin(p["w"] - target) ** 2) + jnp.sum(p["b"] ** 4))
    params = {"w": jnp.linspace(-1, 1, 50), "b": jnp.ones(3) * 0.5}
    grads = jax.grad(loss)(params)
    errors = grad_check.finite_differences(loss, params, grads, jax.random.key(1), 3, 1e-3)
    assert max(errors) < 1e-2
    wrong = jax.tree.map(lambda g: 1.5 * g, grads)
    assert min(grad_check.finite_differences(loss, params, wrong, jax.random.key(1), 3, 1e-3)) > 0.1


def test_memory_check_with_a_single_example(cfg):
    # One example still gets K distinct memory vectors; identical ones would make
    # cross-attention uniform and starve its queries and keys of gradient.
    c = config_lib.load_tier("test")
    c.check.update(batch_size=1, fd_directions=1)
    row = check.check_component(c, "brain+memory", "brain", True, check.real_batches(c, 1), jax.random.key(0))
    assert row.problems == [], row.problems
