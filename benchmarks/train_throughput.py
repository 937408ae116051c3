"""Train-step throughput and compiled memory per component and tier, padded against packed;
FSDP memory for phase2.

    python benchmarks/train_throughput.py --tiers=small --steps=10
    python benchmarks/train_throughput.py --fsdp_memory --fake_devices=8

Prints Markdown tables (the ones in BENCHMARKS.md). For each component, two layouts of the
same data in one run: "padded" puts one example in each row, padded to the row length (the
layout before packing: --padded_rows examples a step), "packed" is the tier's own config
(data/packing.py). Step time is the median of `--steps` timed steps after one warm-up step.
tokens/s counts the positions that hold an example (real tokens); padded tokens/s every
position the step computes. MFU is the compiled step's FLOPs, scaled by the real share of
the positions, per second against a measured f32 matmul peak on CPU (or the device's
published peak); padded MFU is not scaled.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

_TIERS = flags.DEFINE_list("tiers", ["test", "default"], "Tiers whose train steps are timed.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per component.")
_FSDP = flags.DEFINE_bool("fsdp_memory", False, "Compile phase2 on 1 device and with FSDP over all devices.")
_FAKE = flags.DEFINE_integer("fake_devices", 0, "Fake this many CPU devices (must precede jax import).")
_PADDED_ROWS = flags.DEFINE_integer("padded_rows", 32, "Examples a step in the padded layout.")


def main(argv):
    del argv
    from gestalt_jax import huge_pages
    huge_pages.rerun()  # timed as `gestalt` runs (config.huge_pages)
    logging.set_verbosity(logging.WARNING)  # checkpoint and backend INFO lines would bury the table
    if _FAKE.value:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={_FAKE.value}"
    import statistics
    import tempfile
    import time
    from pathlib import Path

    import jax

    from gestalt_jax import config as config_lib
    from gestalt_jax.data import packing, pipeline
    from gestalt_jax.train import loop, losses, optim, perf, phases
    from gestalt_jax import pipeline as train_pipeline
    from gestalt_jax.train import mesh as mesh_lib

    def setup(c, name, devices):
        if name == "brain":  # the decoder's BPE, as training learns it
            with tempfile.TemporaryDirectory() as tmp:
                spec = phases.brain_spec(c, train_pipeline.tokenizer(c, Path(tmp), train=True).encode)
        else:
            spec = phases.goal_spec(c, name)
        p = c[spec.phase]
        mesh = mesh_lib.make_mesh(c, devices)
        model, loss_fn = losses.component(c, name, train=True)
        optimizer = optim.make_optimizer(p)
        sample = pipeline.eval_batches(spec.val, spec.example_fn, spec.layout, p.batch_size)[0][0]
        return spec, p, mesh, model, loss_fn, optimizer, sample

    if _FSDP.value:
        n = len(jax.devices())
        print(f"| phase2 component | 1 device: MB/device | FSDP over {n}: MB/device |")
        print("|---|---|---|")
        for name in ("brain", "planner", "policy"):
            row = []
            for fsdp in (1, n):
                c = config_lib.load_tier("phase2")
                c.mesh.update(data=1, fsdp=fsdp, tensor=1)
                spec, p, mesh, model, loss_fn, optimizer, sample = setup(c, name, jax.devices()[:fsdp])
                with mesh_lib.activate(mesh):
                    row.append(_compiled_mb(c, spec, model, loss_fn, optimizer, sample, mesh, loop))
            print(f"| {name} | {row[0]:,.0f} | {row[1]:,.0f} |", flush=True)
        return

    peak, source = perf.peak_flops("float32")
    print(f"peak: {peak / 1e9:,.1f} GFLOP/s ({source}); devices: {jax.devices()[0].device_kind} "
          f"x{len(jax.devices())}")
    print("| tier | component | layout | rows x length | examples/step | step ms | tokens/s | padded tokens/s "
          "| MFU | padded MFU | MB/device | GFLOP/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for tier in _TIERS.value:
        for name in ("brain", "planner", "policy"):
            for layout in ("padded", "packed"):
                c = config_lib.load_tier(tier)
                c.compute_dtype = "float32"  # CPU has no fast bf16 path; the peak is an f32 matmul
                phase = c[config_lib.PHASE_OF[name]]
                if layout == "padded":  # one example a row: the batches before packing
                    phase.update(segments=1, batch_size=_PADDED_ROWS.value)
                spec, p, mesh, model, loss_fn, optimizer, sample = setup(c, name, jax.devices()[:1])
                it = loop.train_iterator(c, spec)
                with mesh_lib.activate(mesh):
                    state, shardings = loop.create_state(c, spec, model, optimizer, sample, mesh)
                    steps = loop.CompiledSteps(c, spec, loss_fn, optimizer, shardings)
                    times, real, examples = [], [], []
                    for i in range(_STEPS.value + 1):
                        local = next(it)
                        batch = loop.global_batch(local, mesh)
                        t = time.perf_counter()
                        state, metrics = steps(state, batch, False)
                        jax.block_until_ready(metrics)
                        if i:
                            times.append(time.perf_counter() - t)
                            real.append(float(metrics["tokens"]) / float(metrics["positions"]))
                            examples.append(packing.count_examples(local, spec.layout))
                step_s, share = statistics.median(times), statistics.mean(real)
                positions = sum(local[k].size for k in spec.layout.token_keys)
                mb, _ = perf.compiled_cost(next(iter(steps.compiled.values())))
                shape = " + ".join(f"{local[k].shape[0]}x{local[k].shape[1]}" for k in spec.layout.token_keys)
                print(f"| {tier} | {name} | {layout} | {shape} | {statistics.mean(examples):.1f} | "
                      f"{step_s * 1e3:,.1f} | {share * positions / step_s:,.0f} | {positions / step_s:,.0f} | "
                      f"{steps.flops * share / step_s / peak:.1%} | {steps.flops / step_s / peak:.1%} | "
                      f"{mb:,.1f} | {steps.flops / 1e9:,.2f} |", flush=True)


def _compiled_mb(c, spec, model, loss_fn, optimizer, sample, mesh, loop) -> float:
    """Per-device MB of the compiled train step, from abstract values only (nothing executes)."""
    import jax

    from gestalt_jax.train import mesh as mesh_lib
    from gestalt_jax.train import perf
    from gestalt_jax.train import step as step_lib

    p = c[spec.phase]
    init, shardings = loop.state_init(c, spec, model, optimizer, sample, mesh)
    state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                         jax.eval_shape(init, jax.random.key(0)), shardings)
    batch = {k: jax.ShapeDtypeStruct((p.batch_size,) + v.shape[1:], v.dtype,
                                     sharding=mesh_lib.batch_sharding(mesh, v.ndim))
             for k, v in sample.items()}
    fn = step_lib.make_train_step(loss_fn, optimizer, p.accum_steps,
                                  spec.prepare(False) if spec.prepare else None, spec.absorb)
    compiled = jax.jit(fn, out_shardings=(shardings, None), donate_argnums=0).lower(state, batch).compile()
    return perf.compiled_cost(compiled)[0]


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
