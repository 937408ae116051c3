"""One training phase: sharded state, compiled steps, validation, early stopping, checkpoints.

The loop dispatches step n+1 before it pulls step n's loss to the host, so the device
never waits on Python; a non-finite loss stops the phase naming its step, before any
checkpoint could record it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from gestalt_jax.data import masks, pipeline
from gestalt_jax.train import checkpoint as ckpt_lib
from gestalt_jax.train import grad_check, losses, optim, perf
from gestalt_jax.train import mesh as mesh_lib
from gestalt_jax.train import step as step_lib
from gestalt_jax.train.metrics import MetricsWriter, log, progress
from gestalt_jax.train.phases import PhaseSpec


@dataclasses.dataclass
class PhaseResult:
    params: Any                 # best parameters; None when the phase was stopped early
    best_score: float           # PhaseSpec.score of the best evaluation (lower is better)
    best_step: int | None
    finished: bool = True


class TrainingError(RuntimeError):
    """A phase that cannot go on (non-finite loss, dead gradients); the message says where."""


def global_batch(local: dict, mesh) -> dict:
    """This process's rows → one global array per key, batch dimension over data+fsdp."""
    return {k: jax.make_array_from_process_local_data(mesh_lib.batch_sharding(mesh, v.ndim), v)
            for k, v in local.items()}


def state_init(c, spec: PhaseSpec, model, optimizer, sample: dict, mesh):
    """(init(key) -> TrainState, the TrainState's shardings by the rules table)."""
    inputs = losses.init_inputs(spec.name, sample, c)
    boxed = jax.eval_shape(lambda k: model.init(k, *inputs)["params"], jax.random.key(0))
    p_shard = mesh_lib.param_shardings(boxed, mesh)
    params_shape = jax.tree.map(lambda x: x.unbox(apply_constraint=False), boxed,
                                is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
    opt_shape = jax.eval_shape(optimizer.init, params_shape)
    rep = mesh_lib.replicated(mesh)
    shardings = step_lib.TrainState(
        step=rep, params=p_shard, opt_state=mesh_lib.opt_shardings(optimizer, opt_shape, p_shard, mesh),
        rng=rep, extra=jax.tree.map(lambda _: rep, spec.extra))

    def init(key):
        params = nn.meta.unbox(model.init(key, *inputs)["params"])
        return step_lib.init_state(params, optimizer, jax.random.fold_in(key, 1), spec.extra)
    return init, shardings


def create_state(c, spec: PhaseSpec, model, optimizer, sample: dict, mesh):
    """The TrainState created directly in its shardings (no full copy on one device first)."""
    init, shardings = state_init(c, spec, model, optimizer, sample, mesh)
    return jax.jit(init, out_shardings=shardings)(jax.random.key(c.seed)), shardings


def concept_sim(concepts_NxD: np.ndarray) -> float:
    """Mean pairwise cosine of distinct prompts' concept vectors (lower is more discriminative)."""
    x = concepts_NxD / np.maximum(np.linalg.norm(concepts_NxD, axis=1, keepdims=True), 1e-9)
    n = len(x)
    if n < 2:
        return float("nan")
    sims = x @ x.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def _eval_pass(eval_fn, params, batches: list[dict], mesh, on_aux=None) -> tuple[float, float]:
    """(loss, teacher-forced exact share) over `batches`; on_aux(aux) sees each batch's aux."""
    total, weight, exact, count = 0.0, 0.0, 0.0, 0.0
    for local in batches:
        loss_sum, w, aux = eval_fn(params, global_batch(local, mesh))
        total, weight = total + float(loss_sum), weight + float(w)
        exact, count = exact + float(aux["exact"]), count + float(aux["examples"])
        if on_aux is not None:
            on_aux(aux)
    return total / max(weight, 1e-9), exact / max(count, 1.0)


def evaluate(eval_fn, params, val_batches: list[dict], mesh, name: str, val_records,
             fit_batches: list[dict] = ()) -> dict[str, float]:
    """val_loss and val_exact (teacher-forced exact match) on the val batches, fit_exact on
    `fit_batches` (training examples) when given; the brain adds val_ppl and concept_sim."""
    concepts = []

    def keep_concepts(aux):
        concepts.append(np.asarray(multihost_utils.process_allgather(aux["concept"], tiled=True)))
    val_loss, val_exact = _eval_pass(eval_fn, params, val_batches, mesh,
                                     keep_concepts if name == "brain" else None)
    out = dict(val_loss=val_loss, val_exact=val_exact)
    if fit_batches:
        out["fit_exact"] = _eval_pass(eval_fn, params, fit_batches, mesh)[1]
    if name == "brain":
        prompts, first = {}, []
        for i, r in enumerate(val_records):  # distinct prompts only
            if prompts.setdefault(r["prompt"], i) == i:
                first.append(i)
        out["concept_sim"] = concept_sim(np.concatenate(concepts)[first])
        out["val_ppl"] = math.exp(min(out["val_loss"], 50.0))
    return out


def _dead_leaves(leaf_norms, exempt) -> list[str]:
    norms = grad_check.leaf_norms(leaf_norms)  # norms of scalars are their absolute values
    return [p for p, n in norms.items() if not exempt(p) and not (n > 0 and math.isfinite(n))]


def run_phase(c: ml_collections.ConfigDict, spec: PhaseSpec, workdir: Path, resume: bool,
              writer: MetricsWriter) -> PhaseResult:
    """Train one phase to the end, an early stop or `debug.stop_after_steps`; returns the best
    parameters (or, when stopped, None: the latest checkpoint holds the state to resume)."""
    p = c[spec.phase]
    mesh = mesh_lib.make_mesh(c)
    pid, nproc = jax.process_index(), jax.process_count()
    model, loss_fn = losses.component(c, spec.name, train=True)
    _, eval_loss_fn = losses.component(c, spec.name, train=False)
    optimizer = optim.make_optimizer(p)
    val_batches = pipeline.eval_batches(spec.val, spec.example_fn, p.batch_size, pid, nproc)
    fit_batches = (pipeline.eval_batches(spec.fit, spec.example_fn, p.batch_size, pid, nproc)
                   if spec.fit else [])
    log(masks.summary(spec.name, masks.validate(spec.name, val_batches[0])))
    train_iter = pipeline.train_iterator(spec.sources, spec.example_fn, p.batch_size, c.seed, pid, nproc,
                                         augment=spec.augment)

    with mesh_lib.activate(mesh):
        state, shardings = create_state(c, spec, model, optimizer, val_batches[0], mesh)
        checkpoints = ckpt_lib.PhaseCheckpoints(workdir / "checkpoints" / spec.phase, p.keep_checkpoints)
        try:
            start = 0
            if resume:
                restored = checkpoints.restore_latest(ckpt_lib.abstract_like(state, shardings), train_iter)
                if restored is not None:
                    state, start = restored
                    log(f"[{spec.name}] resumed at step {start} from {checkpoints.directory}")
            steps = CompiledSteps(c, spec, loss_fn, optimizer, shardings)
            eval_fn = jax.jit(step_lib.make_eval_step(eval_loss_fn))
            state, stopped = _train(c, spec, state, start, train_iter, steps, eval_fn, val_batches, fit_batches,
                                    mesh, checkpoints, writer)
            if stopped:
                return PhaseResult(None, checkpoints.best_score(), checkpoints.best_step(), finished=False)
            checkpoints.wait()
            if checkpoints.best_step() is None:
                raise TrainingError(f"[{spec.name}] no checkpoint with a finite validation score")
            state = checkpoints.restore_best(ckpt_lib.abstract_like(state, shardings))
            result = PhaseResult(state.params, checkpoints.best_score(), checkpoints.best_step())
            log(f"[{spec.name}] best {spec.score_name} {result.best_score:.4f} at step {result.best_step}")
            return result
        finally:  # a crash must not lose a save still in flight
            checkpoints.wait()
            checkpoints.close()


def restore_best_params(c: ml_collections.ConfigDict, spec: PhaseSpec, workdir: Path, mesh):
    """The best parameters of a trained phase, placed on `mesh` by the rules table (call inside
    `mesh_lib.activate(mesh)`); FileNotFoundError naming the directory when it was never trained."""
    directory = Path(workdir) / "checkpoints" / spec.phase
    if not (directory / ckpt_lib.BEST).is_dir():
        raise FileNotFoundError(f"no trained {spec.name} in {directory}: run `gestalt train "
                                f"--phases={spec.name}` with this --config and --workdir first")
    model, _ = losses.component(c, spec.name, train=False)
    optimizer = optim.make_optimizer(c[spec.phase])
    sample = {k: v[None] for k, v in spec.example_fn(spec.val[0] if spec.val else spec.sources[0][0][0]).items()}
    init, shardings = state_init(c, spec, model, optimizer, sample, mesh)
    target = ckpt_lib.abstract_like(jax.eval_shape(init, jax.random.key(0)), shardings)
    with ckpt_lib.PhaseCheckpoints(directory, keep=1) as checkpoints:
        _check_shapes_match(c, spec.name, checkpoints)
        return checkpoints.restore_best(target).params


def _check_shapes_match(c: ml_collections.ConfigDict, name: str, checkpoints: ckpt_lib.PhaseCheckpoints):
    """CheckpointError naming every setting that sizes a parameter and differs from the one the
    checkpoint was trained with (a failed Orbax restore says less, and leaves its async tasks behind)."""
    saved = checkpoints.best_config()
    if saved is None:
        return
    # The keys model/*.py sizes parameters by: widths, block counts, the concept prefix, the n-gram
    # tables' rows and the decoder vocabulary. Heads split d_model without resizing a kernel and the
    # lengths only set RoPE's training length; the rest steer training or decoding.
    sizes = ("d_model", "d_ff", "layers", "enc_layers", "dec_layers", "n_prefix", "ngram_buckets")
    keys = [(name, k) for k in sizes if k in c[name]] + ([("tokenizer", "bpe_merges")] if name == "brain" else [])
    diff = [f"config.{s}.{k}={c[s][k]!r} (trained with {saved[s][k]!r})" for s, k in keys
            if k in saved.get(s, {}) and saved[s][k] != c[s][k]]
    if diff:
        raise ckpt_lib.CheckpointError(f"{checkpoints.directory} does not fit this config: " + ", ".join(diff))


class CompiledSteps:
    """Compiled train steps, one per (memory attached, gradient check) variant, compiled on first use."""

    def __init__(self, c, spec: PhaseSpec, loss_fn, optimizer, shardings):
        self.c, self.spec, self.loss_fn, self.optimizer, self.shardings = c, spec, loss_fn, optimizer, shardings
        self.p = c[spec.phase]
        self.compiled = {}
        self.flops = 0.0

    def __call__(self, state, batch, with_memory: bool, check: bool):
        key = (with_memory, check)
        if key not in self.compiled:
            spec, p = self.spec, self.p
            fn = step_lib.make_train_step(self.loss_fn, self.optimizer, p.accum_steps,
                                          spec.prepare(with_memory) if spec.prepare else None,
                                          spec.absorb, leaf_norms=check)
            jitted = jax.jit(fn, in_shardings=(self.shardings, None), out_shardings=(self.shardings, None),
                             donate_argnums=0)
            self.compiled[key] = jitted.lower(state, batch).compile()
            if not self.flops:
                self.flops = _report_compiled(spec.name, self.compiled[key], self.c, p)
        return self.compiled[key](state, batch)


def _train(c, spec: PhaseSpec, state, start: int, train_iter, steps: CompiledSteps, eval_fn, val_batches,
           fit_batches, mesh, checkpoints: ckpt_lib.PhaseCheckpoints, writer: MetricsWriter):
    """The step loop; returns (state, stopped by debug.stop_after_steps)."""
    p = c[spec.phase]
    lr_at = optim.schedule(p, p.lr)
    best, best_step = checkpoints.best_score(), checkpoints.best_step()
    bad_evals = 0 if best_step is None else max(0, (start - best_step) // p.eval_every)
    if start >= p.steps or bad_evals >= p.patience:
        log(f"[{spec.name}] already finished at step {start}")
        return state, False
    peak, _ = perf.peak_flops(c.compute_dtype)
    config_json = c.to_json()
    t_phase, t_last, pending = time.time(), time.time(), None
    window = dict(loss=0.0, weight=0.0, steps=0)
    tokens_per_step = None
    for step in range(start, p.steps):
        local = next(train_iter)
        batch = global_batch(local, mesh)
        tokens_per_step = tokens_per_step or spec.tokens(batch)
        check = bool(c.debug.check_grads_every) and step % c.debug.check_grads_every == 0
        with_memory = spec.uses_memory(step)
        state, metrics = steps(state, batch, with_memory, check)
        if pending is not None:  # step n+1 is dispatched; now pull step n's loss to the host
            _absorb(window, *pending)
        pending = (step, metrics)
        if check:
            dead = _dead_leaves(jax.device_get(metrics["leaf_norms"]), spec.grad_exempt(with_memory, local))
            if dead:
                raise TrainingError(f"[{spec.name}] step {step}: no finite, nonzero gradient reaches "
                                    + ", ".join(dead))
        done = step + 1
        is_eval = done % p.eval_every == 0 or done == p.steps
        stop = bool(c.debug.stop_after_steps) and done - start >= c.debug.stop_after_steps
        if done % c.debug.log_every and not is_eval and not stop:
            continue
        _absorb(window, *pending)
        pending = None
        elapsed = time.time() - t_last
        values = dict(loss=window["loss"] / max(window["weight"], 1e-9), lr=float(lr_at(step)),
                      grad_norm=float(metrics["grad_norm"]),
                      tokens_per_s=tokens_per_step * window["steps"] / elapsed,
                      step_time=elapsed / window["steps"])
        values["mfu"] = steps.flops / values["step_time"] / peak
        if is_eval:
            values.update(evaluate(eval_fn, state.params, val_batches, mesh, spec.name, spec.val, fit_batches))
        log(progress(spec.name, done, p.steps, values, t_phase, start))
        writer.write(spec.name, done, values)
        window, t_last = dict(loss=0.0, weight=0.0, steps=0), time.time()
        val = spec.score(values) if is_eval else None
        if is_eval and not math.isfinite(values["val_loss"]):
            raise TrainingError(f"[{spec.name}] step {done}: validation loss is {values['val_loss']}")
        if is_eval or stop:
            checkpoints.save(done, state, train_iter, val, config_json)
        if stop:
            log(f"[{spec.name}] stopped at step {done} (config.debug.stop_after_steps); --resume continues")
            return state, True
        if not is_eval:
            continue
        if val < best:
            best, bad_evals = val, 0
        else:
            bad_evals += 1
            if bad_evals >= p.patience:
                log(f"[{spec.name}] early stop at step {done}: no {spec.score_name} improvement in "
                    f"{p.patience} evaluations (best {best:.4f})")
                break
    return state, False


def _absorb(window: dict, step: int, metrics: dict) -> None:
    """Add one step's loss to the logging window; a non-finite loss ends the phase here."""
    loss, weight = float(metrics["loss"]), float(metrics["weight"])
    if not math.isfinite(loss):
        raise TrainingError(f"step {step}: loss is {loss}; stopping before any checkpoint records it")
    window["loss"] += loss * weight
    window["weight"] += weight
    window["steps"] += 1


def _report_compiled(name: str, compiled, c, p) -> float:
    """Print the compiled step's per-device memory and FLOPs (MaxText style); returns the FLOPs."""
    mb, flops = perf.compiled_cost(compiled)
    peak, source = perf.peak_flops(c.compute_dtype)
    log(f"[{name}] compiled step: {mb:,.1f} MB per device, {flops / 1e9:,.2f} GFLOP per step "
        f"(batch {p.batch_size} = {p.accum_steps} x {p.batch_size // p.accum_steps}); "
        f"peak {peak / 1e9:,.1f} GFLOP/s ({source})")
    return flops


def write_json(path: Path, data: dict) -> None:
    if jax.process_index() == 0:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
