"""`gestalt check`: gradient guarantees, finite differences, compiled memory and FLOPs per component.

For each component (brain with memory, brain without memory, planner, policy): a real
loss on a real batch from the built-in data, and every parameter leaf must get a finite,
nonzero gradient (the original trained twelve runs with none reaching its encoder). The
train step is compiled from abstract values at the tier's batch shape, so memory and
FLOPs are reported even for tiers too large to execute on the host.
"""

from __future__ import annotations

import dataclasses
import time

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from gestalt_jax import config as config_lib
from gestalt_jax.data import examples, formats, packing
from gestalt_jax.model.brain import Brain
from gestalt_jax.train import grad_check, losses, optim, perf, phases
from gestalt_jax.train import step as step_lib

CHECKS = (("brain+memory", "brain", True), ("brain", "brain", False),
          ("planner", "planner", False), ("policy", "policy", False))


@dataclasses.dataclass
class Row:
    component: str
    params: int
    leaves: int
    min_grad: float | None = None
    min_grad_path: str = "-"
    fd_error: float | None = None
    memory_mb: float = 0.0
    gflops: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def covering(goals: list[dict], n: int) -> list[dict]:
    """n goals chosen greedily to cover the most intents, tools and argument kinds (spans and
    step references): a head that no example exercises would rightly get no gradient."""
    def features(r):
        args = [v for a in (r.get("args") or []) for v in a.values()]
        return ({r["intent"], *r["actions"]} | {"span" for v in args if isinstance(v, str)}
                | {"from" for v in args if isinstance(v, dict)})
    chosen, seen = [], set()
    for _ in range(min(n, len(goals))):
        best = max((i for i in range(len(goals)) if i not in chosen),
                   key=lambda i: (len(features(goals[i]) - seen), -i))
        chosen.append(best)
        seen |= features(goals[best])
    return [goals[i] for i in chosen]


def real_batches(c: ml_collections.ConfigDict, n: int) -> dict[str, dict]:
    """n real examples per component from the configured data files, packed as training packs
    them (in n rows), plus the prompts whose concept vectors serve as memory."""
    talk = formats.load_talk(c.data.talk_files)[0][0]  # the loaders training uses: every import format
    goals = covering(examples.load_goals(c.data.goals_file), n)
    order = np.resize(np.random.default_rng(c.seed).permutation(len(talk)), 2 * n + c.brain.mem_k - 1)
    batch, pool = [talk[i] for i in order[:n]], [talk[i] for i in order[n:]]

    def packed(name, records):
        fn, layout = phases.example_fn(c, name), phases.layout(c, name)
        return packing.pack_all([fn(r) for r in records], layout, n)[0][0]
    return dict(brain=packed("brain", batch), memory_pool=examples.talk_batch(pool, c.brain.enc_len, 1)["enc"],
                planner=packed("planner", goals), policy=packed("policy", goals))


def attach_memory(model: Brain, params, batch: dict, pool_ids, k: int) -> dict:
    """Memory = concept vectors of other prompts, K distinct ones per packed example, as the SFT
    pool gives.

    Identical memory vectors would make cross-attention uniform whatever its queries and
    keys, and those would rightly get no gradient: the check needs distinct ones.
    """
    encode = jax.jit(lambda p, ids: model.apply({"params": p}, ids, method=Brain.encode))
    concept_PxD = encode(params, pool_ids)
    B, n = batch["enc"].shape[0], model.segments
    order_BxnxK = (np.arange(B * n).reshape(B, n, 1) + np.arange(k)) % concept_PxD.shape[0]
    return dict(batch, memory=jax.lax.stop_gradient(concept_PxD[order_BxnxK]))


def _abstract(batch: dict, size: int) -> dict:
    return {k: jax.ShapeDtypeStruct((size,) + v.shape[1:], v.dtype) for k, v in batch.items()}


def compiled_cost(loss_fn, phase: ml_collections.ConfigDict, params_shape, batch: dict) -> tuple[float, float]:
    """(per-device MB, GFLOPs) of the jitted train step at the phase's batch size."""
    optimizer = optim.make_optimizer(phase)
    state = jax.eval_shape(lambda p: step_lib.init_state(p, optimizer, jax.random.key(0)), params_shape)
    train_step = jax.jit(step_lib.make_train_step(loss_fn, optimizer), donate_argnums=0)
    mb, flops = perf.compiled_cost(train_step.lower(state, _abstract(batch, phase.batch_size)).compile())
    return mb, flops / 1e9


def check_gradients(row: Row, c: ml_collections.ConfigDict, name: str, with_memory: bool, batch: dict,
                    params) -> None:
    """Nonzero/finite gradients in the configured precision; finite differences in f32.

    Finite differences test the gradient code, not bf16 rounding (which alone puts a few
    percent of noise on a bf16 loss), so they run on an f32-compute copy of the model.
    """
    _, loss_fn = losses.component(c, name, train=False)  # deterministic: no dropout
    rng = jax.random.key(1)
    grads, _ = jax.jit(jax.grad(loss_fn, has_aux=True))(params, batch, rng)
    exempt = phases.brain_grad_exempt(with_memory, batch) if name == "brain" else grad_check.NOTHING
    try:
        grad_check.assert_grads(grads, exempt)
    except AssertionError as e:  # collected, so every component is still checked
        row.problems.append(str(e))
    norms = grad_check.leaf_norms(grads)
    if name == "brain" and not with_memory:  # absent memory must contribute exactly nothing
        row.problems += [f"memory parameter {p} got a gradient without memory"
                         for p, n in norms.items() if exempt(p) and n != 0.0]
    live = {p: n for p, n in norms.items() if not exempt(p)}
    row.min_grad_path = min(live, key=live.get)
    row.min_grad = live[row.min_grad_path]
    if c.compute_dtype != "float32":
        c = ml_collections.ConfigDict(c.to_dict())
        c.compute_dtype = "float32"
        _, loss_fn = losses.component(c, name, train=False)
        grads, _ = jax.jit(jax.grad(loss_fn, has_aux=True))(params, batch, rng)
    loss_of = jax.jit(lambda p: loss_fn(p, batch, rng)[0])
    errors = grad_check.finite_differences(loss_of, params, grads, jax.random.key(2),
                                           c.check.fd_directions, c.check.fd_eps)
    row.fd_error = max(errors) if errors else None


def check_component(c: ml_collections.ConfigDict, label: str, name: str, with_memory: bool,
                    batches: dict, key: jax.Array) -> Row:
    t0 = time.time()
    model, loss_fn = losses.component(c, name, train=False)
    batch = batches[name]
    init = lambda k: nn.meta.unbox(model.init(k, *losses.init_inputs(name, batch, c))["params"])
    params_shape = jax.eval_shape(init, key)
    row = Row(label, grad_check.count_params(params_shape), len(jax.tree.leaves(params_shape)))
    if c.check.execute:
        params = jax.jit(init)(key)
        if with_memory:
            batch = attach_memory(model, params, batch, batches["memory_pool"], c.brain.mem_k)
        check_gradients(row, c, name, with_memory, batch, params)
    elif with_memory:
        batch = dict(batch, memory=np.zeros((batch["enc"].shape[0], c.sft.segments, c.brain.mem_k, c.brain.d_model),
                                            np.float32))
    row.memory_mb, row.gflops = compiled_cost(loss_fn, c[config_lib.PHASE_OF[name]], params_shape, batch)
    row.seconds = time.time() - t0
    return row


def format_table(rows: list[Row]) -> str:
    head = ("component", "params", "leaves", "min |grad|", "at", "fd rel err", "step MB/dev", "GFLOP/step", "s")
    fmt = lambda x, f: "-" if x is None else format(x, f)
    lines = [head] + [(r.component, f"{r.params:,}", str(r.leaves), fmt(r.min_grad, ".2e"), r.min_grad_path,
                       fmt(r.fd_error, ".1e"), f"{r.memory_mb:,.1f}", f"{r.gflops:,.2f}", f"{r.seconds:.1f}")
                      for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def failures(rows: list[Row], c: ml_collections.ConfigDict) -> list[str]:
    out = []
    for r in rows:
        out += [f"{r.component}: {p}" for p in r.problems]
        if r.fd_error is not None and r.fd_error > c.check.fd_tolerance:
            out.append(f"{r.component}: finite-difference relative error {r.fd_error:.2e} "
                       f"exceeds config.check.fd_tolerance={c.check.fd_tolerance}")
    return out


def run(c: ml_collections.ConfigDict, log=print) -> int:
    """Check every component; print the table; return the process exit code."""
    batches = real_batches(c, c.check.batch_size)
    rows = []
    for i, (label, name, with_memory) in enumerate(CHECKS):
        log(f"[check {i + 1}/{len(CHECKS)}] {label} ...")
        rows.append(check_component(c, label, name, with_memory, batches, jax.random.key(c.seed)))
    log(format_table(rows))
    problems = failures(rows, c)
    if not c.check.execute:
        log("config.check.execute=False: gradients were not computed, only compiled.")
    for p in problems:
        log(f"FAIL {p}")
    if not problems:
        log(f"OK: every parameter of {len(rows)} components got a finite, nonzero gradient.")
    return 1 if problems else 0
