"""The training engine: accumulation, exact resume, failure handling, meshes, multi-process."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.data import examples, packing
from gestalt_jax.text import bpe
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax import pipeline
from gestalt_jax.infer import trained
from gestalt_jax.train import checkpoint as ckpt_lib
from gestalt_jax.train import hooks, loop, losses, metrics, phases
from gestalt_jax.train import mesh as mesh_lib
from gestalt_jax.train import step as step_lib
from gestalt_jax.train.checkpoint import CheckpointError
from gestalt_jax.train.phases import memory_schedule

REPO = str(config_lib.REPO_ROOT)


def _tiny(steps=8, eval_every=4):
    c = config_lib.load_tier("test")
    c.sft.update(steps=steps, eval_every=eval_every, talk_metrics=False)  # read by one test, which turns them on
    c.debug.log_every = 100
    return c


@pytest.mark.parametrize("name", ["brain", "planner", "policy"])
def test_accumulating_4x2_equals_one_batch_of_8(name):
    """Gradient accumulation is exact for every component: 4 micro-batches of 2 packed rows give the
    update of the 8 rows at once (the policy's argument terms too, whose examples with spans or
    step references are unevenly spread over the micro-batches)."""
    c = _tiny()
    model, loss_fn = losses.component(c, name, train=False)  # no dropout: same function both ways
    if name == "brain":
        records = examples.read_jsonl(c.data.talk_files, ("prompt", "response"))
    else:
        goals = examples.load_goals(c.data.goals_file)  # with and without arguments, mixed
        records = [r for r in goals if any(a for a in r.get("args") or [])][:30] + goals[:30]
        records = [records[i] for i in np.random.default_rng(0).permutation(len(records))]
    batch, _ = packing.pack_all([phases.example_fn(c, name)(r) for r in records[:60]], phases.layout(c, name), 8)[0]
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    params = model.init(jax.random.key(0), *losses.init_inputs(name, batch, c))["params"]
    params = jax.tree.map(lambda x: x.value if hasattr(x, "value") else x, params,
                          is_leaf=lambda x: hasattr(x, "names"))
    optimizer = optax.sgd(1.0)  # the update is the gradient itself: compare those, not Adam's sign-like steps
    state = step_lib.init_state(params, optimizer, jax.random.key(1))
    one, m1 = jax.jit(step_lib.make_train_step(loss_fn, optimizer, accum=1))(state, batch)
    four, m4 = jax.jit(step_lib.make_train_step(loss_fn, optimizer, accum=4))(state, batch)
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-5)
    for a, b, p in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params), jax.tree.leaves(params)):
        g1, g4 = np.asarray(p - a), np.asarray(p - b)  # the gradients, summed in another order
        rounding = 2 * np.finfo(np.float32).eps * np.max(np.abs(p))  # of p - g, where p is large
        assert np.max(np.abs(g1 - g4)) <= 1e-4 * np.max(np.abs(g1)) + rounding + 1e-9
    assert not np.allclose(jax.tree.leaves(one.params)[0], jax.tree.leaves(params)[0])  # it did train


def _latest_state(workdir, phase="sft"):
    directory = workdir / "checkpoints" / phase / "latest"
    step = max(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    return step, _restore_here(directory / str(step) / "state")


def _restore_here(path):
    """A saved state as arrays on this process's first device, whatever mesh saved it."""
    checkpointer = ocp.StandardCheckpointer()
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                          checkpointer.metadata(path).item_metadata)
    return checkpointer.restore(path, target)


@pytest.mark.long
def test_interrupted_run_resumes_to_identical_parameters(tmp_path):
    c = _tiny(steps=8, eval_every=4)
    assert any(memory_schedule(c, s) for s in range(8)) and not all(memory_schedule(c, s) for s in range(8))
    pipeline.train(c, tmp_path / "straight", "tokenizer,brain", resume=False)
    c.debug.stop_after_steps = 3
    summary = pipeline.train(c, tmp_path / "resumed", "tokenizer,brain", resume=False)
    assert summary["phases"]["brain"]["finished"] is False
    assert _latest_state(tmp_path / "resumed")[0] == 3
    c.debug.stop_after_steps = 0
    pipeline.train(c, tmp_path / "resumed", "tokenizer,brain", resume=True)
    step_a, a = _latest_state(tmp_path / "straight")
    step_b, b = _latest_state(tmp_path / "resumed")
    assert step_a == step_b == 8
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b):  # params, optimizer state, rng, memory pool
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def test_the_gradient_check_stops_naming_a_parameter_no_gradient_reaches(tmp_path, monkeypatch):
    """With debug.check_grads_every, a step whose gradient misses a parameter ends the phase naming it
    (here the planner's final norm, cut off by a stop_gradient), at the first step checked."""
    c = _tiny()
    c.planner_sft.update(steps=4, eval_every=4)
    c.debug.check_grads_every = 2
    component = losses.component

    def cut(c, name, train):
        model, loss_fn = component(c, name, train)
        stop = lambda path, x: jax.lax.stop_gradient(x) if "final_norm" in jax.tree_util.keystr(path) else x
        return model, lambda params, batch, rng: loss_fn(jax.tree_util.tree_map_with_path(stop, params), batch, rng)
    monkeypatch.setattr(losses, "component", cut)
    with pytest.raises(loop.TrainingError,
                       match=r"\[planner\] step 0: no finite, nonzero gradient reaches \S*final_norm/scale$"):
        pipeline.train(c, tmp_path, "planner", resume=False)


def test_diverging_loss_stops_naming_the_step_and_saves_nothing_bad(tmp_path):
    c = _tiny(steps=6, eval_every=1)
    # The warmup starts at lr 0, so step 0 changes nothing and the state after it is saved;
    # step 1's lr of 3e29 diverges.
    c.sft.update(lr=1e30, clip_norm=1e30, warmup_frac=0.5)
    # With eval_every=1 every step's loss is pulled, and the state it leaves validated, before
    # that state is saved: the first non-finite number is the validation loss after step k, and
    # the saves are steps 1 .. k-1, of which latest/ keeps the newest keep_checkpoints.
    with pytest.raises(loop.TrainingError, match=r"step \d+: validation loss is ") as e:
        pipeline.train(c, tmp_path, "tokenizer,brain", resume=False)
    k = int(re.search(r"step (\d+)", str(e.value)).group(1))
    assert k >= 2
    directory = tmp_path / "checkpoints" / "sft"

    def saved(kind):
        return {int(p.name) for p in (directory / kind).iterdir() if p.name.isdigit()}
    assert saved("latest") == set(range(max(1, k - c.sft.keep_checkpoints), k))
    for step in saved("latest"):
        state = _restore_here(directory / "latest" / str(step) / "state")
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"])), step
    assert saved("best") and max(saved("best")) < k
    for step in saved("best"):
        metrics = json.loads((directory / "best" / str(step) / "metrics" / "metrics").read_text())
        assert math.isfinite(metrics["score"]), (step, metrics)


@pytest.mark.long
def test_train_command_end_to_end(trained_workdir):
    tmp_path = trained_workdir  # the shared run of `gestalt train` (conftest.TRAIN_ARGS)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["phases"]) == {"brain", "planner", "policy"}
    assert (tmp_path / "tokenizer.json").exists()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "step_time", "mfu"} <= set(lines[-1])
    assert any("concept_sim" in x for x in lines if x["phase"] == "brain")
    assert any(p.name.startswith("events") for p in (tmp_path / "tensorboard").iterdir())


MESH_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    from gestalt_jax import config as config_lib
    from gestalt_jax.text import bytes as byte_tok
    from gestalt_jax.data import pipeline
    from gestalt_jax.train import loop, losses, optim, phases, mesh as mesh_lib

    out = {}
    for shape in [(1, 1, 1), (8, 1, 1), (2, 4, 1), (2, 2, 2)]:
        c = config_lib.load_tier("test")
        c.sft.update(steps=12, eval_every=12)
        c.mesh.update(data=shape[0], fsdp=shape[1], tensor=shape[2])
        spec = phases.brain_spec(c, byte_tok.encode)
        mesh = mesh_lib.make_mesh(c, jax.devices()[: shape[0] * shape[1] * shape[2]])
        model, loss_fn = losses.component(c, "brain", train=True)
        optimizer = optim.make_optimizer(c.sft)
        it = loop.train_iterator(c, spec)
        sample = pipeline.eval_batches(spec.val, spec.example_fn, spec.layout, c.sft.batch_size)[0][0]
        with mesh_lib.activate(mesh):
            state, shardings = loop.create_state(c, spec, model, optimizer, sample, mesh)
            steps = loop.CompiledSteps(c, spec, loss_fn, optimizer, shardings)
            curve = []
            for s in range(12):  # memory attached at every step: one train step compiled a mesh
                state, m = steps(state, loop.global_batch(next(it), mesh), True)
                curve.append(float(m["loss"]))
        kernel = state.params["decoder"]["stack"]["block_0"]["mlp"]["wi"]["kernel"]
        out["x".join(map(str, shape))] = dict(curve=curve, spec=str(kernel.sharding.spec),
                                              shards=len(kernel.addressable_shards))
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.long
def test_meshes_give_the_same_loss_curve_and_shard_as_the_rules_say(device_env):
    r = subprocess.run([sys.executable, "-c", MESH_SCRIPT], capture_output=True, text=True, timeout=900,
                       cwd=REPO, env=device_env(8))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT ", 1)[1])
    base = np.array(out["1x1x1"]["curve"])
    assert base[-1] < base[0]  # it learns
    for name in ("8x1x1", "2x4x1", "2x2x2"):
        np.testing.assert_allclose(out[name]["curve"], base, rtol=2e-4, err_msg=name)
    # The MLP input kernel is (embed, mlp): embed over fsdp, mlp over tensor, where those exist.
    assert out["2x2x2"]["spec"] == "P('fsdp', 'tensor')" and out["2x2x2"]["shards"] == 8
    assert out["2x4x1"]["spec"] == "P('fsdp', None)"
    assert out["8x1x1"]["spec"] == "P(None, None)"


def _train_args(workdir, *extra):
    """8 brain steps on the test tier (no talk metrics: the tests here compare parameters)."""
    return [f"--config={REPO}/configs/test.py", f"--workdir={workdir}", "--phases=tokenizer,brain",
            "--config.sft.steps=8", "--config.sft.eval_every=4", "--config.sft.talk_metrics=False", *extra]


def _train_command(workdir, env, *extra):
    """`gestalt train` (_train_args) in a process with environment `env` (conftest.device_env)."""
    return subprocess.Popen([sys.executable, "-m", "gestalt_jax.main", "train", *_train_args(workdir, *extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)


def _finish(*procs):
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


@pytest.mark.long
def test_two_processes_checkpoint_and_one_process_resumes_on_other_meshes(tmp_path, device_env, request):
    """2 processes x 2 devices started by launch/local/train.sh (mesh data=2 x fsdp=2) stop at
    step 4; one process resumes on mesh (1, 2, 2) and on one device, and both end where a single
    process that trained straight through does (the batches do not depend on the process count;
    only the order of float sums differs). This is the local launcher's test (tests/test_launch.py
    starts the same run with mpirun and sbatch). The single process runs beside the two, so the
    one-device resume after them loads its compiled steps from the compile cache."""
    straight = _train_command(tmp_path / "straight", device_env(1))
    request.addfinalizer(straight.kill)  # if an assertion below ends the test first
    two = tmp_path / "two"
    launched = subprocess.run([f"{REPO}/launch/local/train.sh", "2",
                               *_train_args(two, "--config.mesh.data=2", "--config.mesh.fsdp=2",
                                            "--config.debug.stop_after_steps=4")],
                              cwd=REPO, env=device_env(2), capture_output=True, text=True, timeout=600)
    logs = [(two / f"process_{i}.log").read_text() for i in range(2)]
    assert launched.returncode == 0, launched.stderr + "".join(logs)[-3000:]
    for i, log in enumerate(logs):
        assert f"[distributed] process {i} of 2: 2 local device(s), 4 in all" in log, log[-3000:]
    assert "[brain] stopped at step 4" in logs[0]
    assert _latest_state(two)[0] == 4
    data = two / "checkpoints" / "sft" / "latest" / "4" / "data"
    assert sorted(p.name for p in data.iterdir() if p.suffix == ".json") == ["process_0-of-2.json",
                                                                             "process_1-of-2.json"]
    for name in ("mesh_1x2x2", "one_device"):
        shutil.copytree(two, tmp_path / name)
    resumed = _finish(_train_command(tmp_path / "mesh_1x2x2", device_env(4), "--config.mesh.data=1",
                                     "--config.mesh.fsdp=2", "--config.mesh.tensor=2", "--resume"),
                      _train_command(tmp_path / "one_device", device_env(1), "--resume"), straight)[:2]
    assert all("[brain] resumed at step 4" in out for out in resumed)
    step, reference = _latest_state(tmp_path / "straight")
    at_4 = jax.tree.leaves(_restore_here(two / "checkpoints" / "sft" / "latest" / "4" / "state")["params"])
    for name in ("mesh_1x2x2", "one_device"):
        assert _latest_state(tmp_path / name)[0] == step == 8
        flat = jax.tree_util.tree_leaves_with_path(_latest_state(tmp_path / name)[1]["params"])
        for (path, x), y, start in zip(flat, jax.tree.leaves(reference["params"]), at_4):
            # Within 1% of how far steps 5-8 moved the parameter (0.08% measured): other batches
            # would move it elsewhere.
            moved = np.linalg.norm(y - start)
            assert moved > 0 and np.linalg.norm(x - y) <= 0.01 * moved, f"{name} {jax.tree_util.keystr(path)}"


def test_fresh_run_refuses_a_workdir_with_checkpoints(tmp_path):
    (tmp_path / "checkpoints" / "planner_sft" / "latest").mkdir(parents=True)
    with pytest.raises(ValueError, match="--resume"):
        pipeline.train(_tiny(), tmp_path, "planner", resume=False)


def test_restore_takes_settings_that_size_no_parameter_and_refuses_a_new_width(tmp_path):
    c = _tiny()
    c.planner_sft.update(steps=2, eval_every=2)
    pipeline.train(c, tmp_path, "planner", resume=False)
    spec = phases.goal_spec(c, "planner")
    mesh = mesh_lib.make_mesh(c)

    def restore(**changes):
        changed = c.copy_and_resolve_references()
        changed.planner.update(changes)
        with mesh_lib.activate(mesh):
            return loop.restore_best_params(changed, spec, tmp_path, mesh)
    assert c.planner.follow_intent
    restore(follow_intent=False)
    restore(rope_base=2 * c.planner.rope_base, yarn_beta_fast=64.0, max_len=2 * c.planner.max_len)
    with pytest.raises(CheckpointError, match=r"config\.planner\.d_model=32 \(trained with 64\)"):
        restore(d_model=32)


def test_tokenizer_learns_from_the_training_split_only(tmp_path):
    corpus = examples.read_jsonl(config_lib.load_tier("test").data.talk_files, ("prompt", "response"))
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]

    def write(parts):
        for path, pairs in zip(files, parts):
            path.write_text("".join(json.dumps({"prompt": p["prompt"], "response": p["response"]}) + "\n"
                                    for p in pairs), encoding="utf-8")
    write([corpus[:40], corpus[40:70]])
    c = _tiny()
    c.data.update(talk_files=",".join(map(str, files)), talk_paraphrases="")
    val = {r["prompt"] for r in phases.brain_spec(c, byte_tok.encode).val}
    unseen = "quokka wallaby " * 20  # the val replies alone hold these words
    write([[dict(p, response=unseen) if p["prompt"] in val else p for p in pairs]
           for pairs in (corpus[:40], corpus[40:70])])
    spec = phases.brain_spec(c, byte_tok.encode)
    assert {r["prompt"] for r in spec.val} == val and all(r["response"] == unseen for r in spec.val)

    def texts(pairs):
        return [t for r in pairs for t in (r["prompt"], r["response"])]
    trained = texts(r for records, _ in spec.sources for r in records)
    learned = pipeline.tokenizer(c, tmp_path, train=True).tok.get_vocab()
    assert learned == bpe.train(trained, c.tokenizer.bpe_merges).tok.get_vocab()
    assert not any("quokka" in t for t in learned)
    with_val = bpe.train(trained + texts(spec.val), c.tokenizer.bpe_merges).tok.get_vocab()
    assert any("quokka" in t for t in with_val)  # the check above would see them


def test_eta_of_a_resumed_phase_follows_the_steps_run_since_it_resumed(monkeypatch):
    monkeypatch.setattr(metrics.time, "time", lambda: 1000.0)
    # Resumed at step 900: 10 steps in 10 s leave 90 steps, 90 s; not the 1 s of 910 steps in 10 s.
    assert metrics.progress("brain", 910, 1000, {}, started=990.0, start_step=900).endswith("eta 1m30s")
    assert metrics.progress("brain", 100, 1000, {}, started=990.0, start_step=0).endswith("eta 1m30s")


def test_training_one_phase_keeps_the_summary_of_the_others(tmp_path):
    # What an earlier `gestalt train --phases=tokenizer,brain` recorded, its talk metrics and all.
    brain = dict(seconds=41.0, best_score=0.5, best_step=4, finished=True,
                 talk=dict(train_exact=0.25, held_out_chrf=31.5, train_n=4))
    (tmp_path / "summary.json").write_text(json.dumps(dict(tier="test", phases=dict(brain=brain), seconds=41.0)))
    c = _tiny(steps=4, eval_every=2)
    c.planner_sft.update(steps=4, eval_every=2)
    planner_run = pipeline.train(c, tmp_path, "planner", resume=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(planner_run))  # what train returns is what it wrote
    assert summary["phases"] == dict(brain=brain, planner=summary["phases"]["planner"])
    planner = summary["phases"]["planner"]
    assert planner["finished"] and planner["best_step"] in (2, 4)
    assert planner["seconds"] <= summary["seconds"] < planner["seconds"] + brain["seconds"]  # this run's time


def test_a_planner_ensemble_trains_every_member_with_its_own_seed_and_loads_them_all(tmp_path):
    c = _tiny()
    c.planner.members = 2
    c.planner_sft.update(steps=4, eval_every=2)
    summary = pipeline.train(c, tmp_path, "planner", resume=False)
    assert summary["phases"]["planner"]["finished"] and summary["phases"]["planner.1"]["finished"]
    for directory, seed in (("planner_sft", c.seed), ("planner_sft.1", c.seed + 1)):
        with ckpt_lib.PhaseCheckpoints(tmp_path / "checkpoints" / directory, keep=1) as saved:
            assert saved.saved_config(ckpt_lib.BEST)["seed"] == seed
    planner = trained.load(c, tmp_path, "planner")
    assert len(planner.members) == 2 and planner.identity.count("+") == 1
    first, second = (jax.tree.leaves(m) for m in planner.members)
    assert all(np.array_equal(a, b) for a, b in zip(first, jax.tree.leaves(planner.params)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))  # another seed, another planner
    # Resumed, every finished member is skipped.
    assert pipeline.train(c, tmp_path, "planner", resume=True)["phases"]["planner.1"]["finished"]
    # A member without its best checkpoint is named, with the command that trains it.
    shutil.rmtree(tmp_path / "checkpoints" / "planner_sft.1" / ckpt_lib.BEST)
    with pytest.raises(trained.NotTrained, match=r"member 1 of the planner ensemble in .*planner_sft\.1: run "
                                                 r"`gestalt train --phases=planner --resume"):
        trained.load(c, tmp_path, "planner")
    # A fresh run refuses a workdir holding any member's checkpoints.
    shutil.rmtree(tmp_path / "checkpoints" / "planner_sft")
    with pytest.raises(ValueError, match=r"planner_sft\.1 already holds checkpoints"):
        pipeline.train(c, tmp_path, "planner", resume=False)


def test_a_policy_ensemble_trains_and_loads_every_member(tmp_path):
    c = _tiny()
    c.policy.members = 3
    c.policy_sft.update(steps=2, eval_every=2)
    summary = pipeline.train(c, tmp_path, "policy", resume=False)
    assert all(summary["phases"][k]["finished"] for k in ("policy", "policy.1", "policy.2"))
    policy = trained.load(c, tmp_path, "policy")
    assert len(policy.members) == 3 and policy.identity.count("+") == 2
    leaves = [jax.tree.leaves(m) for m in policy.members]
    assert not all(np.array_equal(a, b) for a, b in zip(leaves[1], leaves[2]))


@pytest.mark.parametrize("select_from", [0.0, 1.0])
def test_select_from_keeps_earlier_validations_out_of_the_best_checkpoint_and_early_stop(tmp_path, select_from):
    """A validation before select_from x steps is saved for resume only: with 1.0 the best
    checkpoint is the last step's and early stopping never ends the phase before it, however the
    val error moves."""
    c = config_lib.load_tier("test")
    c.planner_sft.update(steps=6, eval_every=2, patience=1, select_from=select_from)
    spec = types.SimpleNamespace(phase="planner_sft", name="planner", score=lambda v: v["val_loss"],
                                 score_name="val error")
    state = step_lib.TrainState(step=jnp.zeros((), jnp.int32), params={"w": jnp.ones(3)}, opt_state=(),
                                rng=jnp.zeros(2, jnp.uint32))
    with ckpt_lib.PhaseCheckpoints(tmp_path / "planner_sft", keep=3) as checkpoints:
        run = hooks.Run(c, spec, state, None, checkpoints, writer=None, evaluate=None, start=0)
        stopped = None
        for done, val_loss in ((2, 0.1), (4, 0.5), (6, 0.9)):  # the val error only grows
            run.values = {"val_loss": val_loss}
            hooks.checkpoint(run, done)
            hooks.early_stop(run, done)
            if run.stop and stopped is None:
                stopped = done
        checkpoints.wait()
        assert checkpoints.best_step() == (6 if select_from == 1.0 else 2)
        assert stopped == (None if select_from == 1.0 else 4)


def test_mask_checks_stop_a_phase_on_a_bad_augmented_training_batch(tmp_path):
    """The checks see the training batches as the phase draws them (augmented), not only val."""
    c = _tiny()
    spec = phases.goal_spec(c, "planner")
    encode = spec.example_fn

    def bad_when_rewritten(record):  # a rewritten goal trains its prompt: a wrong loss mask
        e = encode(record)
        return dict(e, weights=np.ones_like(e["weights"])) if record.get("rewritten") else e
    spec.example_fn = bad_when_rewritten
    spec.augment = lambda record, rng: dict(record, rewritten=True)
    writer = metrics.MetricsWriter(tmp_path)
    with pytest.raises(examples.DataError, match="planner mask check 'no trained prompt position'"):
        loop.run_phase(c, spec, tmp_path, resume=False, writer=writer)
    writer.close()
    assert not (tmp_path / "checkpoints").exists()  # stopped before any training


@pytest.mark.parametrize("name", ["brain", "planner", "policy"])
def test_muon_bf16_remat_and_accumulation_train_through_the_loop(tmp_path, name):
    """The options a big tier uses, as the loop wires them (Muon's labels in the multi-transform,
    its masked optimizer state sharded, bf16 compute, rematerialised blocks, 2 micro-batches):
    every parameter gets a gradient at every step, the loss falls, the best checkpoint saves."""
    c = _tiny(steps=6, eval_every=3)
    c.update(compute_dtype="bfloat16", remat=True)
    phase = c[config_lib.PHASE_OF[name]]
    phase.update(optimizer="muon", accum_steps=2, steps=6, eval_every=3, lr=3e-3)
    c.debug.check_grads_every = 1
    pipeline.train(c, tmp_path, f"tokenizer,{name}" if name == "brain" else name, resume=False)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses_ = [x["loss"] for x in lines if x["phase"] == name]
    assert len(losses_) == 2 and all(math.isfinite(x) for x in losses_) and losses_[-1] < losses_[0]
    step, state = _latest_state(tmp_path, config_lib.PHASE_OF[name])
    assert step == 6
    momentum = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_leaves_with_path(state["opt_state"])
                if "['muon']" in jax.tree_util.keystr(p) and x.ndim == 2}
    assert momentum and all("['stack']" in p and p.endswith("['kernel']") for p in momentum)  # Muon: stack matrices
    assert all(np.isfinite(x).all() and np.abs(x).max() > 0 for x in momentum.values())
