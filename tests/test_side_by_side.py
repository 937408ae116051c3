"""`gestalt train` on a CPU of two or more cores: the brain's phases in one process and the goal
phases in another, each pinned to its half of the cores (config.parallel_phases, --cpus)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gestalt_jax import config as config_lib
from gestalt_jax import pipeline

TEST_CONFIG = str(config_lib.REPO_ROOT / "configs" / "test.py")
CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cores = pytest.mark.skipif(len(CORES) < 2, reason="side-by-side training needs 2 cores this process may use")


# A test run started in the background by a script ignores SIGINT, and its children inherit that:
# a command started through this has SIGINT's default action restored, as at a terminal.
AT_A_TERMINAL = ["-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"]


def gestalt(*args, at_a_terminal=False, **kwargs):
    return subprocess.Popen([sys.executable, *(AT_A_TERMINAL if at_a_terminal else []), "-m", "gestalt_jax.main",
                             *args], text=True, cwd=config_lib.REPO_ROOT, **kwargs)


def read_until(r: subprocess.Popen, done) -> str:
    """What r printed until done(the text so far) holds; fails if r's output ends first."""
    text = ""
    while not done(text):
        line = r.stdout.readline()
        assert line, text
        text += line
    return text


def pinned(log: str) -> list[set[int]]:
    """The cores each process of a log says it runs on."""
    return [{int(c) for c in m.split(",")} for m in re.findall(r"^\[cpus\] this process runs on core\(s\) (\S+)$",
                                                               log, re.M)]


@needs_two_cores
def test_the_brain_trains_beside_the_goal_phases_on_cores_of_their_own(trained_workdir):
    log = (trained_workdir / "train.log").read_text()  # the shared run of `gestalt train` (conftest.TRAIN_ARGS)
    brain, goals = pinned(log)
    assert brain and goals and not brain & goals and brain | goals == set(CORES), log[-3000:]
    assert "[train] side by side (config.parallel_phases): tokenizer, brain on core(s)" in log
    summary = json.loads((trained_workdir / "summary.json").read_text())
    assert all(summary["phases"][p]["finished"] for p in ("brain", "planner", "policy"))
    # at the same time: the whole took less than its phases one after the other
    assert summary["seconds"] < sum(summary["phases"][p]["seconds"] for p in ("brain", "planner", "policy"))
    rows = [json.loads(line) for line in (trained_workdir / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} == {"brain", "planner", "policy"}  # both processes' lines, whole
    assert len(list((trained_workdir / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per process


def test_side_by_side_needs_both_kinds_of_phase_and_two_cores(monkeypatch):
    c = config_lib.load_tier("test")
    every = ["tokenizer", "brain", "planner", "policy"]
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert pipeline.side_by_side_cores(c, every) == ([0, 1], [2])
    assert pipeline.side_by_side_cores(c, ["brain", "policy"]) == ([0, 1], [2])
    assert pipeline.side_by_side_cores(c, ["tokenizer", "brain"]) is None
    assert pipeline.side_by_side_cores(c, ["planner", "policy"]) is None
    c.parallel_phases = False
    assert pipeline.side_by_side_cores(c, every) is None
    c.parallel_phases = True
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert pipeline.side_by_side_cores(c, every) is None


def test_a_planner_ensemble_has_the_second_core_and_the_policy_follows_the_brain():
    c = config_lib.load_tier("test")
    every = ["tokenizer", "brain", "planner", "policy"]
    assert pipeline.side_by_side_groups(c, every) == [["tokenizer", "brain"], ["planner", "policy"]]
    c.planner.members = 2
    assert pipeline.side_by_side_groups(c, every) == [["tokenizer", "brain", "policy"], ["planner"]]
    assert pipeline.side_by_side_groups(c, ["brain", "policy"]) == [["brain"], ["policy"]]
    # Three planners: one after the brain, two and the policy on the second core; the members
    # named one by one, each in its own checkpoint directory
    c.planner.members = 3
    groups = pipeline.side_by_side_groups(c, every)
    assert groups == [["tokenizer", "brain", "planner.0"], ["planner.1", "planner.2", "policy"]]
    assert [pipeline.runs(c, g) for g in groups] == [[("brain", 0), ("planner", 0)],
                                                     [("planner", 1), ("planner", 2), ("policy", 0)]]


def test_phases_name_one_member_of_an_ensemble_or_say_how_many_there_are():
    c = config_lib.load_tier("test")
    c.planner.members = 3
    assert pipeline.parse_phases("policy,planner.2,brain") == ["brain", "planner.2", "policy"]
    assert pipeline.runs(c, ["planner.2", "policy"]) == [("planner", 2), ("policy", 0)]
    with pytest.raises(ValueError, match=r"--phases=planner.3: the planner has 3 member\(s\) \(config.planner.members=3\)"):
        pipeline.runs(c, ["planner.3"])
    with pytest.raises(ValueError, match="unknown phase"):
        pipeline.parse_phases("brain.1")


@pytest.mark.skipif(not CORES, reason="this platform cannot pin a process to cores")
def test_cpus_pins_the_process_or_names_what_is_wrong():
    # Pinned before anything else: the bad --phases is reported after the [cpus] line.
    r = gestalt("train", f"--config={TEST_CONFIG}", f"--cpus={CORES[-1]}", "--phases=bogus",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = r.communicate(timeout=120)
    assert pinned(err) == [{CORES[-1]}] and r.returncode == 1 and "--phases='bogus'" in err, out + err
    for spec, why in [("a", "'a' is not a core number"), (f"0-{max(CORES) + 1}", f"core(s) [{max(CORES) + 1}] not among")]:
        r = gestalt("check", f"--config={TEST_CONFIG}", f"--cpus={spec}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = r.communicate(timeout=120)
        assert r.returncode == 2 and f"gestalt: --cpus={spec}: {why}" in err and "Traceback" not in err, err


@pytest.mark.skipif(not CORES, reason="this platform cannot pin a process to cores")
def test_each_line_leaves_in_one_write_under_pythonunbuffered():
    # Side by side, two processes print to one pipe: a line written in two pieces (Python's -u
    # writes a print's newline apart from its text) interleaved with the other process's line.
    # Each write to a SOCK_SEQPACKET socket arrives as a packet of its own.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        r = gestalt("train", f"--config={TEST_CONFIG}", f"--cpus={CORES[-1]}", "--phases=bogus",
                    stdout=theirs, stderr=theirs, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        theirs.close()
        packets = list(iter(lambda: ours.recv(1 << 16), b""))
        assert r.wait(timeout=120) == 1
    assert packets and all(p.endswith(b"\n") for p in packets), packets
    assert any(p.startswith(b"[cpus] this process runs on core(s)") for p in packets), packets


@needs_two_cores
def test_a_side_by_side_process_that_fails_is_named_and_fails_the_command(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not JSON\n", encoding="utf-8")
    r = gestalt("train", f"--config={TEST_CONFIG}", f"--workdir={tmp_path / 'run'}", f"--config.data.talk_files={bad}",
                f"--config.data.goals_file={bad}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = r.communicate(timeout=300)
    assert r.returncode == 1 and len(pinned(err)) == 2, out + err
    assert "gestalt train: the process training tokenizer, brain ended with exit code 1" in err
    assert "gestalt train: the process training planner, policy ended with exit code 1" in err
    assert err.count(f"gestalt train: {bad}:1") == 2  # each process's own one-line error


@needs_two_cores
def test_stopping_side_by_side_training_stops_both_processes(tmp_path):
    workdir = tmp_path / "run"
    r = gestalt("train", f"--config={TEST_CONFIG}", f"--workdir={workdir}", stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
    started = read_until(r, lambda text: len(pinned(text)) == 2)  # both processes started
    r.send_signal(signal.SIGTERM)
    out, _ = r.communicate(timeout=120)
    assert r.returncode == 130 and "[train] stopped; --resume continues" in out, started + out

    def running() -> list[str]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if f"--workdir={workdir}".encode() in (proc / "cmdline").read_bytes():
                    found.append(proc.name)
            except OSError:  # gone, or not a process
                pass
        return found
    deadline = time.time() + 10
    while running() and time.time() < deadline:
        time.sleep(0.2)
    assert running() == []


@needs_two_cores
def test_ctrl_c_stops_both_processes_in_a_line_each_without_a_traceback(tmp_path):
    workdir = tmp_path / "run"
    # Its own process group, as a terminal's foreground job: Ctrl-C reaches every process in it.
    r = gestalt("train", f"--config={TEST_CONFIG}", f"--workdir={workdir}", at_a_terminal=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    started = read_until(r, lambda text: "compiled the train step" in text)  # one of them is training
    os.killpg(r.pid, signal.SIGINT)
    out = started + r.communicate(timeout=120)[0]
    assert r.returncode == 130 and "Traceback" not in out, out[-3000:]
    assert out.count("gestalt: stopped (Ctrl-C); `gestalt train --resume` continues") == 2, out[-3000:]
    assert "[train] stopped; --resume continues" in out
