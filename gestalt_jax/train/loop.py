"""One training phase: sharded state, compiled steps and the step loop.

The loop dispatches step n+1 before it pulls step n's metrics to the host, so the device
never waits on Python (nanodo); the periodic work (validation, logging, checkpoints, early
stopping, the debug stop) runs as small hooks when due (train/hooks.py, as Levanter's).
Every batch is packed to one shape (data/packing.py), so each step variant compiles once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections

from gestalt_jax import config as config_lib
from gestalt_jax.data import masks, pipeline
from gestalt_jax.data.examples import DataError
from gestalt_jax.train import checkpoint as ckpt_lib
from gestalt_jax.train import hooks, losses, optim, perf
from gestalt_jax.train import mesh as mesh_lib
from gestalt_jax.train import step as step_lib
from gestalt_jax.train.hooks import TrainingError
from gestalt_jax.train.metrics import MetricsWriter, log
from gestalt_jax.train.phases import PhaseSpec
from gestalt_jax.train.validate import global_batch

MASK_CHECK_BATCHES = 3  # training batches whose masks are checked before a phase


@dataclasses.dataclass
class PhaseResult:
    params: Any                 # best parameters; None when the phase was stopped early
    best_score: float           # PhaseSpec.score of the best evaluation (lower is better)
    best_step: int | None
    finished: bool = True


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


def train_iterator(c: ml_collections.ConfigDict, spec: PhaseSpec):
    """This process's packed training batches of the phase."""
    return pipeline.train_iterator(spec.sources, spec.example_fn, spec.layout, c[spec.phase].batch_size, c.seed,
                                   jax.process_index(), jax.process_count(), augment=spec.augment,
                                   pack_rows=c.data.pack_rows)


def check_masks(c: ml_collections.ConfigDict, spec: PhaseSpec, val_batch: dict) -> None:
    """The mask and packing checks (data/masks.py) on the first training batches, augmented as the
    phase draws them (from an iterator of their own), and on the first val batch."""
    it = train_iterator(c, spec)
    for _ in range(MASK_CHECK_BATCHES):
        masks.validate(spec.name, next(it), c.brain.n_prefix)
    log(masks.summary(spec.name, masks.validate(spec.name, val_batch, c.brain.n_prefix)))


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
    val_batches = pipeline.eval_batches(spec.val, spec.example_fn, spec.layout, p.batch_size, pid, nproc)
    fit_batches = (pipeline.eval_batches(spec.fit, spec.example_fn, spec.layout, p.batch_size, pid, nproc)
                   if spec.fit else [])
    if spec.check is not None:
        spec.check()
    check_masks(c, spec, val_batches[0][0])
    train_iter = train_iterator(c, spec)

    with mesh_lib.activate(mesh):
        state, shardings = create_state(c, spec, model, optimizer, val_batches[0][0], mesh)
        checkpoints = ckpt_lib.PhaseCheckpoints(workdir / "checkpoints" / spec.directory, p.keep_checkpoints)
        try:
            start = 0
            if resume:
                _check_shapes_match(c, spec.name, checkpoints, ckpt_lib.LATEST)
                restored = checkpoints.restore_latest(ckpt_lib.abstract_like(state, shardings))
                if restored is not None:
                    state, start = restored
                    where, saved = checkpoints.data_states(start)
                    try:
                        train_iter.set_state(pipeline.merge_states(saved))
                    except DataError as e:
                        raise ckpt_lib.CheckpointError(f"{where}: {e}") from e
                    log(f"[{spec.name}] resumed at step {start} from {checkpoints.directory}")
            steps = CompiledSteps(c, spec, loss_fn, optimizer, shardings)
            eval_fn = compiled_eval(spec.name, eval_loss_fn, state.params, val_batches[0][0], mesh)
            run = hooks.Run(c, spec, state, train_iter, checkpoints, writer, start=start,
                            evaluate=hooks.validator(eval_fn, val_batches, fit_batches, mesh, spec),
                            best=checkpoints.best_score(), best_step=checkpoints.best_step())
            _train(run, steps, mesh)
            if run.stop == "interrupted":
                return PhaseResult(None, checkpoints.best_score(), checkpoints.best_step(), finished=False)
            checkpoints.wait()
            if checkpoints.best_step() is None:
                raise TrainingError(f"[{spec.name}] no checkpoint with a finite validation score")
            state = checkpoints.restore_best(ckpt_lib.abstract_like(run.state, shardings))
            result = PhaseResult(state.params, checkpoints.best_score(), checkpoints.best_step())
            log(f"[{spec.name}] best {spec.score_name} {result.best_score:.4f} at step {result.best_step}")
            return result
        finally:  # a crash must not lose a save still in flight
            checkpoints.wait()
            checkpoints.close()


def _train(run: hooks.Run, steps: CompiledSteps, mesh) -> None:
    """The step loop from run.start to the phase's end, an early stop or the debug stop."""
    c, spec, p = run.c, run.spec, run.p
    if run.best_step is not None:
        run.bad_evals = max(0, (run.start - run.best_step) // p.eval_every)
    if run.start >= p.steps or run.bad_evals >= p.patience:
        log(f"[{spec.name}] already finished at step {run.start}")
        return
    pending = None
    for step in range(run.start, p.steps):
        t = time.perf_counter()
        local = next(run.train_iter)
        batch = global_batch(local, mesh)
        run.window.data_s += time.perf_counter() - t
        check = bool(c.debug.check_grads_every) and step % c.debug.check_grads_every == 0
        with_memory = spec.uses_memory(step)
        run.state, metrics = steps(run.state, batch, with_memory)
        first = step == run.start
        if first:  # throughput and the ETA follow the steps after the first, which compiled
            jax.block_until_ready(metrics)
            run.flops, run.started, run.clock_step = steps.flops, time.time(), step + 1
            run.window.started, run.window.data_s = time.perf_counter(), 0.0
        if pending is not None:  # step n+1 is dispatched; now pull step n's metrics to the host
            run.window.add(*pending)
        pending = (step, metrics, not first)
        if check:
            hooks.check_gradients(run, step, metrics, spec.grad_exempt(with_memory, local))
        done = step + 1
        due = hooks.due(run, done)
        if not due:
            continue
        run.window.add(*pending)
        pending = None
        run.values = dict(grad_norm=float(metrics["grad_norm"]))
        for hook in due:
            hook(run, done)
        if run.stop:
            return


class CompiledSteps:
    """Compiled train steps, one per variant (memory attached or not), compiled on first use (the
    compile time of each is logged)."""

    def __init__(self, c, spec: PhaseSpec, loss_fn, optimizer, shardings):
        self.c, self.spec, self.loss_fn, self.optimizer, self.shardings = c, spec, loss_fn, optimizer, shardings
        self.p = c[spec.phase]
        self.compiled = {}
        self.flops = 0.0

    def __call__(self, state, batch, with_memory: bool):
        key = with_memory
        if key not in self.compiled:
            spec, p = self.spec, self.p
            fn = step_lib.make_train_step(self.loss_fn, self.optimizer, p.accum_steps,
                                          spec.prepare(with_memory) if spec.prepare else None,
                                          spec.absorb, token_keys=spec.layout.token_keys)
            jitted = jax.jit(fn, in_shardings=(self.shardings, None), out_shardings=(self.shardings, None),
                             donate_argnums=0)
            t = time.perf_counter()
            self.compiled[key] = jitted.lower(state, batch).compile()
            variant = "with memory" if with_memory else "no memory"
            log(f"[{spec.name}] compiled the train step ({variant}) in {time.perf_counter() - t:.1f} s")
            if not self.flops:
                self.flops = _report_compiled(spec.name, self.compiled[key], self.c, p, batch)
        return self.compiled[key](state, batch)


def compiled_eval(name: str, eval_loss_fn, params, sample: dict, mesh):
    """The eval step compiled once for the packed batch shape (every eval batch has it)."""
    t = time.perf_counter()
    fn = jax.jit(step_lib.make_eval_step(eval_loss_fn)).lower(params, global_batch(sample, mesh)).compile()
    log(f"[{name}] compiled the eval step in {time.perf_counter() - t:.1f} s")
    return fn


def _report_compiled(name: str, compiled, c, p, batch: dict) -> float:
    """Print the compiled step's per-device memory and FLOPs (MaxText style); returns the FLOPs."""
    mb, flops = perf.compiled_cost(compiled)
    peak, source = perf.peak_flops(c.compute_dtype)
    rows = next(iter(batch.values())).shape[0]
    log(f"[{name}] compiled step: {mb:,.1f} MB per device, {flops / 1e9:,.2f} GFLOP per step "
        f"(batch {rows} packed rows = {p.accum_steps} x {rows // p.accum_steps}); "
        f"peak {peak / 1e9:,.1f} GFLOP/s ({source})")
    return flops


def restore_best_params(c: ml_collections.ConfigDict, spec: PhaseSpec, workdir: Path, mesh):
    """The best parameters of a trained phase, placed on `mesh` by the rules table (call inside
    `mesh_lib.activate(mesh)`); FileNotFoundError naming the directory when it was never trained."""
    directory = Path(workdir) / "checkpoints" / spec.directory
    if not (directory / ckpt_lib.BEST).is_dir():
        raise FileNotFoundError(f"no trained {spec.name} in {directory}: run `gestalt train "
                                f"--phases={spec.name}` with this --config and --workdir first")
    model, _ = losses.component(c, spec.name, train=False)
    optimizer = optim.make_optimizer(c[spec.phase])
    record = spec.val[0] if spec.val else spec.sources[0][0][0]
    sample, _ = pipeline.eval_batches([record], spec.example_fn, spec.layout, c[spec.phase].batch_size)[0]
    init, shardings = state_init(c, spec, model, optimizer, sample, mesh)
    target = ckpt_lib.abstract_like(jax.eval_shape(init, jax.random.key(0)), shardings)
    with ckpt_lib.PhaseCheckpoints(directory, keep=1) as checkpoints:
        _check_shapes_match(c, spec.name, checkpoints)
        return checkpoints.restore_best(target).params


def _check_shapes_match(c: ml_collections.ConfigDict, name: str, checkpoints: ckpt_lib.PhaseCheckpoints,
                        kind: str = ckpt_lib.BEST):
    """CheckpointError naming every setting that sizes a parameter and differs from the one the
    best (or latest) checkpoint was trained with (a failed Orbax restore says less, and leaves its
    async tasks behind)."""
    saved = checkpoints.saved_config(kind)
    if saved is None:
        return
    # The keys model/*.py sizes parameters by: widths, block counts, the concept prefix, the n-gram
    # tables' rows, the decoder and plan vocabularies; and those that shape the rest of the saved
    # state (the optimizer's, the brain's memory pool). Heads split d_model without resizing a kernel
    # and the lengths only set RoPE's training length; the rest steer training or decoding.
    sizes = ("d_model", "d_ff", "layers", "enc_layers", "dec_layers", "n_prefix", "ngram_buckets", "vocab_size")
    phase = config_lib.PHASE_OF[name]
    keys = [(name, k) for k in sizes if k in c[name]] + [(phase, "optimizer")]
    if name == "brain":
        keys += [("tokenizer", "bpe_merges"), ("sft", "memory_pool")]
    diff = [f"config.{s}.{k}={c[s][k]!r} (trained with {saved[s][k]!r})" for s, k in keys
            if k in saved.get(s, {}) and saved[s][k] != c[s][k]]
    if name == "planner" and "vocab_size" not in saved.get("planner", {}):
        diff.append(f"config.planner.vocab_size={c.planner.vocab_size} (trained on the plan vocabulary before "
                    "clause markers: train the planner again, `gestalt train --phases=planner`)")
    if diff:
        raise ckpt_lib.CheckpointError(f"{checkpoints.directory} does not fit this config: " + ", ".join(diff))


def write_json(path: Path, data: dict) -> None:
    if jax.process_index() == 0:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
