"""launch/: the same two-process test-tier training started by each engine CI has: Open MPI's
mpirun and sbatch on a real single-node SLURM cluster. The local launcher (N processes on this
machine) starts the two-process run that tests/test_train.py resumes in one process on other
meshes: a checkpoint's format does not depend on the engine that wrote it."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gestalt_jax import config as config_lib

REPO = config_lib.REPO_ROOT
LAUNCH = REPO / "launch"
# One evaluation, at the last step: it writes the best checkpoint the checks look for. The engine
# is what these tests check: one train step variant (no memory), no talk metrics.
TRAIN = ["--config=configs/test.py", "--phases=tokenizer,brain", "--config.sft.steps=4", "--config.sft.eval_every=4",
         "--config.sft.memory_prob=0", "--config.sft.talk_metrics=False"]


def _check_two_processes(workdir: Path, output: str) -> None:
    """Two processes took part, the loss stayed finite, and the checkpoint holds each process's
    iterator state."""
    for i in range(2):
        assert f"[distributed] process {i} of 2: 1 local device(s), 2 in all" in output, output[-3000:]
    losses = [json.loads(line)["loss"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses and all(math.isfinite(x) for x in losses)
    data = workdir / "checkpoints" / "sft" / "latest" / "4" / "data"
    assert sorted(p.name for p in data.iterdir() if p.suffix == ".json") == ["process_0-of-2.json",
                                                                             "process_1-of-2.json"]
    assert (workdir / "checkpoints" / "sft" / "best").is_dir()


@pytest.mark.long
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="Open MPI is not installed (apt install openmpi-bin)")
def test_mpirun(tmp_path, device_env):
    workdir = tmp_path / "run"
    done = subprocess.run([str(LAUNCH / "mpi" / "train.sh"), "--allow-run-as-root", "--oversubscribe", "-np", "2",
                           "--", *TRAIN, f"--workdir={workdir}"], cwd=REPO, env=device_env(1), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_two_processes(workdir, done.stdout + done.stderr)


def _slurm_missing() -> str:
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch", "sinfo") if shutil.which(t) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing: apt install slurmctld slurmd munge)"
    if os.geteuid() != 0:
        return "starting a SLURM cluster needs root"
    return ""


@pytest.fixture
def slurm_cluster(tmp_path):
    if why := _slurm_missing():
        pytest.skip(why)
    state = tmp_path / "slurm"
    script = LAUNCH / "slurm" / "ci" / "cluster.sh"
    started = subprocess.run([str(script), "start", str(state)], capture_output=True, text=True, timeout=120)
    if started.returncode:  # installed but not startable here (a container without what slurmd needs)
        pytest.skip(f"the single-node SLURM cluster did not start: {(started.stdout + started.stderr)[-1500:]}")
    yield state
    subprocess.run([str(script), "stop", str(state)], capture_output=True, text=True, timeout=60)
    for name in ("slurmd", "slurmctld", "munged"):
        assert not (state / f"{name}.pid").exists()


@pytest.mark.long
def test_sbatch_on_a_single_node_cluster(slurm_cluster, tmp_path, device_env):
    workdir, jobs = tmp_path / "run", tmp_path / "jobs"
    jobs.mkdir()
    done = subprocess.run(["sbatch", "--wait", "--ntasks-per-node=2", f"--chdir={jobs}", "--export=ALL",
                           str(LAUNCH / "slurm" / "train.sbatch"), *[a.replace("configs/", f"{REPO}/configs/")
                                                                     for a in TRAIN], f"--workdir={workdir}"],
                          env=device_env(1), capture_output=True, text=True, timeout=900)
    outputs = {p.name: p.read_text() for p in jobs.iterdir()}
    assert done.returncode == 0, done.stdout + done.stderr + json.dumps(outputs)[-3000:]
    job_out = next(text for name, text in outputs.items() if name.endswith(".out"))
    assert "1 node(s), 2 task(s)" in job_out
    assert sorted(name.rsplit("-", 1)[1] for name in outputs if "-task" in name) == ["task0.log", "task1.log"]
    _check_two_processes(workdir, "".join(outputs.values()))


def _train_process(i: int, port: int, workdir: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gestalt_jax.main", "train", *TRAIN, f"--workdir={workdir}",
                             f"--coordinator=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_an_unreachable_coordinator_is_named_after_the_timeout(tmp_path, free_port, device_env):
    done = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "train", *TRAIN, f"--workdir={tmp_path}",
                           f"--coordinator=127.0.0.1:{free_port()}", "--num_processes=2", "--process_id=1",
                           "--config.distributed.init_timeout_s=3"],
                          cwd=REPO, env=device_env(1), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "did not answer within 3 s (config.distributed.init_timeout_s)" in done.stderr


@pytest.mark.long
def test_when_a_process_dies_the_other_stops_with_an_error(tmp_path, free_port, device_env):
    port, beat = free_port(), "--config.distributed.heartbeat_timeout_s=5"
    long_run = ["--config.sft.steps=100000", "--config.sft.eval_every=100000"]
    procs = [_train_process(i, port, tmp_path, device_env(1), beat, *long_run) for i in range(2)]
    try:
        for line in procs[0].stdout:  # until training runs on both
            if line.startswith("[brain] [") or "step" in line and "loss" in line:
                break
        procs[1].kill()
        out, _ = procs[0].communicate(timeout=120)  # not forever: JAX's heartbeat ends it
        assert procs[0].returncode != 0
        assert "another task died" in out
    finally:
        for p in procs:
            p.kill()


@pytest.mark.parametrize("override, message", [
    ("--config.sft.batch_size=3", "config.sft.batch_size=3: must be a multiple of the data-parallel size"),
    ("--config.mesh.data=4", "config.mesh"),
])
def test_multi_process_settings_that_cannot_work_say_so(tmp_path, free_port, device_env, override, message):
    port = free_port()
    procs = [_train_process(i, port, tmp_path, device_env(1), override) for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode in (1, 2) and message in out and "Traceback" not in out, out[-2000:]
