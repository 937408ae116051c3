"""Every test process, and every `gestalt` subprocess a test starts (through the tiers' default
config.compile_cache), shares one persistent XLA compilation cache: a step the suite already
compiled loads from it. Tests that need a trained model share one (`trained_workdir`)."""

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

# The suite compiles far more than it runs (a test trains a few steps; CI starts with no compile
# cache), and LLVM's optimisation passes are most of an XLA CPU compile. Tests, and every process
# they start, compile at -O0: the whole suite on a cold cache took 795 s instead of 1,040 s at the
# default -O3 (828 s at -O1; BENCHMARKS.md, "Test suite"). A test that sets XLA_FLAGS for a process
# it starts adds to these. Set before jax is imported.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

from gestalt_jax import config as config_lib

jax.config.update("jax_compilation_cache_dir", str(Path(config_lib.base().compile_cache).expanduser()))


def pytest_collection_modifyitems(items):
    """The tests marked long start first: the two workers (pytest-xdist) then share out the short
    ones at the end instead of one waiting on a long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


# `gestalt train` of the test tier, a few steps a phase: what the end-to-end train test checks and
# what the agent's tests run goals with (the plans are not meant to be right, only real).
TRAIN_ARGS = ["--config=configs/test.py", "--config.sft.steps=6", "--config.planner_sft.steps=6",
              "--config.policy_sft.steps=6", "--config.sft.eval_every=3", "--config.planner_sft.eval_every=3",
              "--config.policy_sft.eval_every=3",
              "--config.debug.check_grads_every=2"]  # the in-step gradient check runs and passes


@pytest.fixture(scope="session")
def decode_env() -> dict:
    """The environment of a `gestalt eval` or `gallery` process a test starts: it decodes every
    goal or prompt of its benches, token by token, so it compiles at -O1, whose steps run as fast
    as at -O3 (`gestalt eval` on a user bench: 46 s at -O0, 10 s at -O1; BENCHMARKS.md)."""
    return dict(os.environ, XLA_FLAGS=os.environ["XLA_FLAGS"].replace(TEST_XLA_FLAGS,
                                                                       "--xla_backend_optimization_level=1"))


@pytest.fixture(scope="session")
def free_port():
    """A function returning a loopback port that nothing listens on."""
    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    return port


@contextlib.contextmanager
def _exclusive(path: Path):
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory, worker_id) -> Path:
    """One test-tier workdir trained by the real `gestalt train` command for the whole test run:
    the xdist workers share it through a file lock (the first trains, the others wait for it).
    The command's output is in workdir/train.log, its exit status in workdir/train.status."""
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    workdir = root / "trained_test_tier"
    with _exclusive(root / "trained_test_tier.lock"):
        if not (workdir / "train.status").exists():
            workdir.mkdir(exist_ok=True)
            r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "train", *TRAIN_ARGS, f"--workdir={workdir}"],
                               capture_output=True, text=True, timeout=900, cwd=config_lib.REPO_ROOT)
            (workdir / "train.log").write_text(r.stdout + r.stderr)
            (workdir / "train.status").write_text(str(r.returncode))
    if (workdir / "train.status").read_text() != "0":
        pytest.fail(f"gestalt train of the shared test workdir failed:\n{(workdir / 'train.log').read_text()[-3000:]}")
    return workdir
