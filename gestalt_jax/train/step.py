"""The train state and one optimizer step, pure functions for `jax.jit`.

A step takes a global batch of `accum × micro` examples, scans over the micro-batches,
and applies one optimizer update with the gradient of the weighted mean loss over the
whole batch (each micro-batch weighs by its trained positions, so 4×2 equals 1×8).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from gestalt_jax.train.losses import LossFn

# prepare(state, batch, rng) -> batch: on-device changes to a batch (noise, memory).
Prepare = Callable[[Any, dict, jax.Array], dict]
# absorb(extra, aux) -> extra: what a step leaves behind besides parameters (memory pool).
Absorb = Callable[[Any, dict], Any]


@flax.struct.dataclass
class TrainState:
    """Everything a resumed run needs besides the data iterator. `rng` is raw uint32 key
    data (not a typed key) so that it checkpoints like any other array; `extra` holds
    component state that must survive a resume (the brain's pool of concept vectors)."""
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    extra: Any = None


def init_state(params, optimizer: optax.GradientTransformation, rng: jax.Array, extra=None) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                      rng=jax.random.key_data(rng), extra=extra)


def _micro(batch: dict, accum: int) -> dict:
    """Rows split into `accum` micro-batches; a scalar (a schedule value) goes to each."""
    return jax.tree.map(lambda x: x.reshape(accum, x.shape[0] // accum, *x.shape[1:]) if jnp.ndim(x)
                        else jnp.broadcast_to(x, (accum,)), batch)


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, accum: int = 1,
                    prepare: Prepare | None = None, absorb: Absorb | None = None,
                    token_keys: tuple[str, ...] = ()):
    """step(state, batch) -> (state, metrics).

    Loss functions report the weight of their mean in aux["weight"] (trained tokens or
    examples). Metrics count the positions of the `token_keys` arrays (a packed batch's slot
    ids): `tokens` those holding an example, `positions` all. `leaf_norms` holds every gradient
    leaf's norm for the host's zero-gradient check (a few scalars: every step computes them, so a
    run with the check compiles one step, not a second variant for the steps it checks).
    """
    def step(state: TrainState, batch: dict):
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        prep_rng, loss_rng = jax.random.split(rng)
        if prepare is not None:
            batch = prepare(state, batch, prep_rng)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def micro_step(carry, xs):
            g_sum, l_sum, w_sum = carry
            mb, i = xs
            (loss, aux), g = grad_fn(state.params, mb, jax.random.fold_in(loss_rng, i))
            w = aux["weight"]
            g_sum = jax.tree.map(lambda a, b: a + b * w, g_sum, g)
            return (g_sum, l_sum + loss * w, w_sum + w), aux

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
        carry = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        (g_sum, l_sum, w_sum), aux = jax.lax.scan(micro_step, carry, (_micro(batch, accum), jnp.arange(accum)))
        w_sum = jnp.maximum(w_sum, 1e-6)
        grads = jax.tree.map(lambda g, p: (g / w_sum).astype(p.dtype), g_sum, state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # Per-example arrays [accum, micro, ...] -> [B, ...]; per-micro-batch scalars -> their mean.
        aux = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]) if x.ndim >= 2 else x.mean(), aux)
        extra = absorb(state.extra, aux) if absorb is not None else state.extra
        metrics = dict(loss=l_sum / w_sum, grad_norm=optax.tree.norm(grads), weight=w_sum,
                       tokens=jnp.asarray(sum(jnp.sum(batch[k] > 0) for k in token_keys), jnp.float32),
                       positions=jnp.asarray(sum(batch[k].size for k in token_keys), jnp.float32),
                       leaf_norms=jax.tree.map(lambda g: jnp.linalg.norm(g.astype(jnp.float32).ravel()), grads))
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state, extra=extra)
        return new, metrics
    return step


def make_eval_step(loss_fn: LossFn):
    """eval(params, batch) -> (weighted loss sum, weight, aux); sums add up over a val set."""
    def evaluate(params, batch):
        loss, aux = loss_fn(params, batch, jax.random.key(0))
        return loss * aux["weight"], aux["weight"], aux
    return evaluate
