"""The gestalt command line, run as a user would (subprocess, test tier)."""

import subprocess
import sys

import pytest

from gestalt_jax import config as config_lib
from gestalt_jax import pipeline

TEST_CONFIG = str(config_lib.REPO_ROOT / "configs" / "test.py")


def gestalt(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "gestalt_jax.main", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=config_lib.REPO_ROOT)


@pytest.mark.long
def test_check_passes_for_every_component_and_prints_the_table():
    r = gestalt("check", f"--config={TEST_CONFIG}")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.split()}
    for component in ("brain+memory", "brain", "planner", "policy"):
        assert component in rows, r.stdout
        fd_error = float(rows[component][5])
        assert fd_error < 5e-2
    assert "OK: every parameter" in r.stdout


def test_serve_without_a_trained_workdir_names_what_to_train(tmp_path):
    r = gestalt("serve", f"--config={TEST_CONFIG}", f"--workdir={tmp_path}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"gestalt serve: no trained brain in {tmp_path}" in r.stderr and "--phases=policy" in r.stderr


def test_invalid_override_names_the_key():
    r = gestalt("check", f"--config={TEST_CONFIG}", "--config.brain.heads=5")
    assert r.returncode == 2
    assert "config.brain.heads=5" in r.stderr


def test_unknown_override_key_is_rejected():
    r = gestalt("check", f"--config={TEST_CONFIG}", "--config.sft.learning_rate=1e-4")
    assert r.returncode != 0
    assert "learning_rate" in r.stderr


def test_unknown_command():
    r = gestalt("fly", f"--config={TEST_CONFIG}")
    assert r.returncode != 0
    assert "unknown command 'fly'" in r.stderr


def test_train_resuming_a_checkpoint_that_does_not_fit_says_where_in_one_line(tmp_path):
    c = config_lib.load_tier("test")
    c.sft.update(steps=2, eval_every=2, talk_metrics=False)
    assert "talk" not in pipeline.train(c, tmp_path, "tokenizer,brain", resume=False)["phases"]["brain"]
    r = gestalt("train", f"--config={TEST_CONFIG}", f"--workdir={tmp_path}", "--phases=brain", "--resume",
                "--config.sft.steps=4", "--config.brain.d_model=32")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("gestalt train:")]
    assert errors == [f"gestalt train: {tmp_path}/checkpoints/sft does not fit this config: "
                      "config.brain.d_model=32 (trained with 64)"], r.stderr[-3000:]


def test_commands_rerun_themselves_on_huge_pages(monkeypatch):
    """On Linux with glibc, a command execs itself again with glibc's malloc on transparent huge
    pages (the same command line, the rest of the environment kept), and only once."""
    from gestalt_jax import huge_pages
    calls = []
    monkeypatch.setattr(huge_pages.os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    command = ["python3", "-X", "utf8", "-m", "gestalt_jax.main", "train", "--config=configs/test.py"]
    monkeypatch.setattr(huge_pages.sys, "orig_argv", command)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
    monkeypatch.setattr(huge_pages.sys, "platform", "linux")
    monkeypatch.setattr(huge_pages.platform, "libc_ver", lambda: ("glibc", "2.36"))
    huge_pages.rerun()
    (path, argv, env), = calls
    assert path == sys.executable and argv == [sys.executable, *command[1:]]
    assert env["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0:glibc.malloc.hugetlb=1" and env["PATH"]
    monkeypatch.setenv("GLIBC_TUNABLES", env["GLIBC_TUNABLES"])  # the re-run: no second exec
    huge_pages.rerun()
    monkeypatch.setattr(huge_pages.platform, "libc_ver", lambda: ("", ""))  # musl, macOS: nothing to do
    monkeypatch.delenv("GLIBC_TUNABLES")
    huge_pages.rerun()
    assert len(calls) == 1


def test_a_ctrl_c_inside_a_garbage_collection_callback_still_stops_the_command():
    # A Ctrl-C that lands while XLA's garbage-collection callback runs is raised inside it, where
    # Python can only print "Exception ignored" and drop it: the command went on as if never stopped.
    script = """
import gc, time
from gestalt_jax import main

def interrupted_in_a_callback(argv):
    def callback(phase, info):
        gc.callbacks.remove(callback)
        raise KeyboardInterrupt
    gc.callbacks.append(callback)
    gc.collect()
    time.sleep(5)
    print("went on after the Ctrl-C")

main.main = interrupted_in_a_callback
main.run()
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 130, r.stdout + r.stderr
    assert "went on" not in r.stdout and "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    assert "gestalt: stopped (Ctrl-C)" in r.stderr
