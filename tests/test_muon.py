"""Our Muon against optax.contrib.muon, plus the properties callers rely on."""

import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

from gestalt_jax.train.muon import muon, newton_schulz, scale_by_muon

# [fan_in, fan_out] kernels: square, tall (fan_out > fan_in: scaled by 2), wide, odd.
SHAPES = {"square": (128, 128), "tall": (64, 256), "wide": (256, 64), "odd": (48, 80)}
# Measured max |ours − optax| / max |optax| ≈ 2.8e-6 over 5 steps (float32 CPU).
REL_TOL = 2e-5


def _params(seed=0):
  key = jax.random.key(seed)
  return {name: jax.random.normal(jax.random.fold_in(key, i), shape)
          for i, (name, shape) in enumerate(SHAPES.items())}


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("schedule", [False, True])
def test_matches_optax_contrib_muon(weight_decay, schedule):
  lr = optax.cosine_decay_schedule(0.02, 10) if schedule else 0.02
  params = _params()
  ours = muon(lr, beta=0.95, weight_decay=weight_decay)
  # Only 2-D params are passed, so every leaf takes optax's Muon branch (its Adam
  # branch is unused); width scaling sqrt(max(1, fan_out/fan_in)) is its default
  # when consistent_rms is None.
  ref = optax.contrib.muon(lr, beta=0.95, weight_decay=weight_decay, nesterov=True,
                           adaptive=False, preconditioning="frobenius",
                           consistent_rms=None)
  ours_state, ref_state = ours.init(params), ref.init(params)
  ours_update, ref_update = jax.jit(ours.update), jax.jit(ref.update)
  key = jax.random.key(1)
  for step in range(5):
    grads = {name: jax.random.normal(jax.random.fold_in(key, 10 * step + i), p.shape)
             for i, (name, p) in enumerate(params.items())}
    ours_u, ours_state = ours_update(grads, ours_state, params)
    ref_u, ref_state = ref_update(grads, ref_state, params)
    for name in SHAPES:
      got, want = np.asarray(ours_u[name]), np.asarray(ref_u[name])
      rel = np.abs(got - want).max() / np.abs(want).max()
      assert rel < REL_TOL, (step, name, rel)
    params = optax.apply_updates(params, ours_u)


def _spread_spectrum(n, lo):
  """[n, n] matrix with singular values log-spaced over [lo, 1]·5, random bases."""
  rng = np.random.default_rng(0)
  u, _ = np.linalg.qr(rng.normal(size=(n, n)))
  v, _ = np.linalg.qr(rng.normal(size=(n, n)))
  return jnp.asarray((u * np.geomspace(lo, 1.0, n)) @ v.T * 5.0, jnp.float32)


@pytest.mark.parametrize("g", [
    # Rectangular Gaussians are well conditioned. A square Gaussian is not (its
    # smallest singular value is ~1/n of the largest, below what 5 quintic steps
    # lift), so the square case uses a known spread of two decades instead.
    jax.random.normal(jax.random.key(2), (32, 200)) * 7.0,
    jax.random.normal(jax.random.key(3), (200, 32)) * 7.0,
    _spread_spectrum(96, 1e-2),
], ids=["wide", "tall", "square_cond100"])
def test_newton_schulz_singular_values_near_one(g):
  sv = np.linalg.svd(np.asarray(newton_schulz(g)), compute_uv=False)
  assert sv.min() > 0.6 and sv.max() < 1.25, (sv.min(), sv.max())


def test_newton_schulz_in_float32_update_in_param_dtype():
  p = {"w": jnp.ones((16, 32), jnp.bfloat16)}
  g = {"w": jax.random.normal(jax.random.key(3), (16, 32)).astype(jnp.bfloat16)}
  opt = scale_by_muon()
  u, _ = opt.update(g, opt.init(p), p)
  assert u["w"].dtype == jnp.bfloat16
  assert np.isfinite(np.asarray(u["w"], np.float32)).all()


@pytest.mark.parametrize("shape", [(8,), (2, 4, 8)])
def test_non_2d_leaf_raises_with_its_shape(shape):
  params = {"w": jnp.zeros((8, 8)), "bad": jnp.zeros(shape)}
  with pytest.raises(ValueError, match=re.escape(str(shape))):
    muon(0.01).init(params)
  opt = muon(0.01)
  state = opt.init({"w": params["w"]})
  with pytest.raises(ValueError, match="shape"):
    opt.update({"w": params["bad"]}, state, {"w": params["bad"]})


def test_decoupled_weight_decay_with_zero_gradient():
  lr, wd = 0.05, 0.1
  params = _params()
  opt = muon(lr, weight_decay=wd)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = jax.jit(opt.update)(zeros, opt.init(params), params)
  for name in SHAPES:
    np.testing.assert_allclose(updates[name], -lr * wd * params[name], rtol=1e-6, atol=0)


_SHARDED_CODE = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from gestalt_jax.train.muon import muon

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((4, 2), ("data", "tensor"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 2)
    sharding = NamedSharding(mesh, P("data", "tensor"))
    p = {"w": jax.random.normal(jax.random.key(0), (64, 128))}
    g = {"w": jax.random.normal(jax.random.key(1), (64, 128))}
    opt = muon(0.02, weight_decay=0.1)
    want, _ = jax.jit(opt.update)(g, opt.init(p), p)

    p_s, g_s = jax.device_put((p, g), sharding)
    state_s = jax.jit(opt.init)(p_s)
    got, _ = jax.jit(opt.update)(g_s, state_s, p_s)
    out_sharding = got["w"].sharding
    print("MAXDIFF", float(np.abs(np.asarray(got["w"]) - np.asarray(want["w"])).max()))
    print("SHARDED", not out_sharding.is_fully_replicated,
          len(out_sharding.device_set))
    print("SPEC", out_sharding.spec)
""")


def test_sharded_update_equals_unsharded(device_env):
  result = subprocess.run([sys.executable, "-c", _SHARDED_CODE], env=device_env(8),
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
  assert float(lines["MAXDIFF"]) < 1e-6, result.stdout
  assert lines["SHARDED"] == "True 8", result.stdout
  assert lines["SPEC"] == "P('data', 'tensor')", result.stdout
