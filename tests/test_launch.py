"""launch/: the same two-process test-tier training started by each engine CI has: N processes on
this machine, Open MPI's mpirun, and sbatch on a real single-node SLURM cluster."""

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
TRAIN = ["--config=configs/test.py", "--phases=tokenizer,brain", "--config.sft.steps=4", "--config.sft.eval_every=2"]


def _env():
    """One CPU device per process, the Python that runs the tests first on PATH."""
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
                GESTALT_PYTHON=sys.executable)


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
def test_local_processes(tmp_path):
    workdir = tmp_path / "run"
    done = subprocess.run([str(LAUNCH / "local" / "train.sh"), "2", *TRAIN, f"--workdir={workdir}"], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=900)
    logs = "".join((workdir / f"process_{i}.log").read_text() for i in range(2))
    assert done.returncode == 0, done.stderr + logs[-3000:]
    _check_two_processes(workdir, logs)


@pytest.mark.long
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="Open MPI is not installed (apt install openmpi-bin)")
def test_mpirun(tmp_path):
    workdir = tmp_path / "run"
    done = subprocess.run([str(LAUNCH / "mpi" / "train.sh"), "--allow-run-as-root", "--oversubscribe", "-np", "2",
                           "--", *TRAIN, f"--workdir={workdir}"], cwd=REPO, env=_env(), capture_output=True,
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
def test_sbatch_on_a_single_node_cluster(slurm_cluster, tmp_path):
    workdir, jobs = tmp_path / "run", tmp_path / "jobs"
    jobs.mkdir()
    done = subprocess.run(["sbatch", "--wait", "--ntasks-per-node=2", f"--chdir={jobs}", "--export=ALL",
                           str(LAUNCH / "slurm" / "train.sbatch"), *[a.replace("configs/", f"{REPO}/configs/")
                                                                     for a in TRAIN], f"--workdir={workdir}"],
                          env=_env(), capture_output=True, text=True, timeout=900)
    outputs = {p.name: p.read_text() for p in jobs.iterdir()}
    assert done.returncode == 0, done.stdout + done.stderr + json.dumps(outputs)[-3000:]
    job_out = next(text for name, text in outputs.items() if name.endswith(".out"))
    assert "1 node(s), 2 task(s)" in job_out
    assert sorted(name.rsplit("-", 1)[1] for name in outputs if "-task" in name) == ["task0.log", "task1.log"]
    _check_two_processes(workdir, "".join(outputs.values()))
