"""The train state and one optimizer step, a pure function for `jax.jit`."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import optax

from gestalt_jax.train.losses import LossFn


@flax.struct.dataclass
class TrainState:
    """Everything a resumed run needs besides the data iterator. `rng` is raw uint32 key
    data (not a typed key) so that it checkpoints like any other array."""
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array


def init_state(params, optimizer: optax.GradientTransformation, rng: jax.Array) -> TrainState:
    return TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                      opt_state=optimizer.init(params), rng=jax.random.key_data(rng))


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation):
    """step(state, batch) -> (state, metrics); dropout keys derive from the state's rng and step."""
    def step(state: TrainState, batch: dict):
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, rng)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(loss=loss, grad_norm=optax.tree.norm(grads))
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics
    return step
