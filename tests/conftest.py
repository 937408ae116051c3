"""Every test process, and every `gestalt` subprocess a test starts (through the tiers' default
config.compile_cache), shares one persistent XLA compilation cache: a step the suite already
compiled loads from it. Tests that need a trained model share one (`trained_workdir`)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

# The suite compiles far more than it runs (a test trains a few steps; CI starts with no compile
# cache), and LLVM's optimisation passes are most of an XLA CPU compile. Tests, and every process
# they start, compile at -O0: the whole suite on a cold cache took 795 s instead of 1,040 s at the
# default -O3 (828 s at -O1; BENCHMARKS.md, "Test suite"). They also use XLA's older CPU fusion
# emitters and one codegen module, which compile the test tier's four train steps in 13.4 s instead
# of 22.6 s: the suite took 682 s instead of 899 s. A test that sets XLA_FLAGS for a process it
# starts adds to these. Set before jax is imported.
TEST_OPT = "--xla_backend_optimization_level=0"
TEST_XLA_FLAGS = f"{TEST_OPT} --xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

from gestalt_jax import config as config_lib
from gestalt_jax import pipeline

jax.config.update("jax_compilation_cache_dir", str(Path(config_lib.base().compile_cache).expanduser()))


def _shared_trainings(item) -> set[str]:
    """The fixtures of a test that train through `train_once` (below)."""
    return {f"{defs[-1].baseid}::{name}" for name, defs in item._fixtureinfo.name2fixturedefs.items()
            if defs and "train_once" in defs[-1].argnames}


def pytest_collection_modifyitems(items):
    """The tests marked long start first: the two workers (pytest-xdist, handed one test at a time
    by --maxschedchunk=1 in pyproject.toml) share them out, then the short ones, instead of one
    waiting on a long test alone at the end. The first test of each shared training comes next:
    the other tests that need it, in their places further on, then find it trained instead of
    waiting for it on the other worker."""
    leaders, seen = set(), set()
    for item in items:
        if new := _shared_trainings(item) - seen:
            leaders.add(item.nodeid)
            seen |= new
    items.sort(key=lambda item: (item.get_closest_marker("long") is None, item.nodeid not in leaders))


# `gestalt train` of the test tier, a few steps a phase: what the end-to-end train test checks and
# what the agent's tests run goals with (the plans are not meant to be right, only real). No test
# reads its talk metrics (tests/test_talk_eval.py checks them on a run of its own).
TRAIN_ARGS = ["--config=configs/test.py", "--config.sft.steps=6", "--config.planner_sft.steps=6",
              "--config.sft.talk_metrics=False",
              "--config.policy_sft.steps=6", "--config.sft.eval_every=3", "--config.planner_sft.eval_every=3",
              "--config.policy_sft.eval_every=3",
              "--config.debug.check_grads_every=2"]  # the in-step gradient check runs and passes


@pytest.fixture(scope="session")
def decode_env() -> dict:
    """The environment of a `gestalt eval` or `gallery` process a test starts, or of a `gestalt
    train` of a few hundred steps: it runs many steps, so it compiles at -O1, whose steps run as
    fast as at -O3 (`gestalt eval` on a user bench: 46 s at -O0, 10 s at -O1; BENCHMARKS.md)."""
    return dict(os.environ, XLA_FLAGS=os.environ["XLA_FLAGS"].replace(TEST_OPT, "--xla_backend_optimization_level=1"))


@pytest.fixture(scope="session")
def test_tier():
    """A function of {section: {key: value}}: the test tier's config with those values, and the
    `--config.section.key=value` flags that give a `gestalt` command the same config."""
    def tier(overrides: dict) -> tuple:
        c = config_lib.load_tier("test")
        for section, values in overrides.items():
            c[section].update(values)
        return c, [f"--config.{section}.{k}={v}" for section, values in overrides.items() for k, v in values.items()]
    return tier


@pytest.fixture(scope="session")
def device_env():
    """A function of n: the environment of a process a test starts with n CPU devices (the
    device count is fixed when jax starts; JAX_PLATFORMS=cpu, so on a GPU machine too), the Python
    that runs the tests first on PATH and as the launch/ scripts' GESTALT_PYTHON, and this
    checkout on PYTHONPATH."""
    def env(devices: int) -> dict:
        return dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={devices}",
                    JAX_PLATFORMS="cpu", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    PYTHONPATH=str(config_lib.REPO_ROOT), GESTALT_PYTHON=sys.executable)
    return env


@pytest.fixture(scope="session")
def free_port():
    """A function returning a loopback port that nothing listens on."""
    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def train_once(tmp_path_factory, worker_id):
    """`train_once(name, args, files=None, env=None)`: the directory `name`, trained by the real
    `gestalt train *args --workdir=DIR` once for the whole test run after `files` ({file name:
    text}) are written into it ("{workdir}" in `args` is the directory). The xdist workers share it
    through a file lock: the first trains, the others wait for it. The command's output is in
    DIR/train.log, its exit status in DIR/train.status. Tests that write into it copy it first."""
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent

    def train(name: str, args: list[str], files: dict[str, str] | None = None, env: dict | None = None) -> Path:
        workdir = root / name
        with pipeline.locked(root / f"{name}.lock"):
            if not (workdir / "train.status").exists():
                workdir.mkdir(exist_ok=True)
                for file, text in (files or {}).items():
                    (workdir / file).write_text(text, encoding="utf-8")
                command = [a.replace("{workdir}", str(workdir)) for a in args]
                r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "train", *command,
                                    f"--workdir={workdir}"], capture_output=True, text=True, timeout=900,
                                   cwd=config_lib.REPO_ROOT, env=env)
                (workdir / "train.log").write_text(r.stdout + r.stderr)
                (workdir / "train.status").write_text(str(r.returncode))
        if (workdir / "train.status").read_text() != "0":
            pytest.fail(f"gestalt train of {workdir} failed:\n{(workdir / 'train.log').read_text()[-3000:]}")
        return workdir
    return train


@pytest.fixture(scope="session")
def trained_workdir(train_once) -> Path:
    """One test-tier workdir (TRAIN_ARGS) for the whole test run."""
    return train_once("trained_test_tier", TRAIN_ARGS)
