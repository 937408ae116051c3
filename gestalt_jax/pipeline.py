"""`gestalt train`: tokenizer → brain SFT → planner → policy → summary, in one command.

Each phase writes its checkpoints under workdir/checkpoints/<phase>; `--resume` continues
every phase where it stopped (a finished phase is skipped to its best weights). On a CPU of two
or more cores the brain and the goal phases train side by side, in two processes on half the
cores each (config.parallel_phases).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import ml_collections

from gestalt_jax import config as config_lib
from gestalt_jax.data import formats
from gestalt_jax.data import pipeline as data_pipeline
from gestalt_jax.evals import talk
from gestalt_jax.text import bpe
from gestalt_jax.train import loop, phases
from gestalt_jax.train import mesh as mesh_lib
from gestalt_jax.train.metrics import MetricsWriter, log

PHASES = ("tokenizer", "brain", "planner", "policy")
GOAL_PHASES = ("planner", "policy")  # need neither the tokenizer nor the brain


# Seconds a step of each phase takes on one core (the small tier's README main job, side by side,
# the mean of its logged steps at 7e57343): what side_by_side_groups weighs each phase run by.
STEP_SECONDS = dict(brain=0.372, planner=0.187, policy=0.113)


def _member_of(p: str) -> tuple[str, int | None]:
    """"planner.2" -> ("planner", 2): one member of an ensemble; "planner" -> ("planner", None)."""
    name, dot, k = p.partition(".")
    return (name, int(k)) if dot and name in config_lib.ENSEMBLES and k.isdigit() else (p, None)


def parse_phases(spec: str) -> list[str]:
    """The phases `--phases` names, in training order; "planner.2" (or "policy.1") names one member
    of an ensemble (its checkpoints in planner_sft.2), "planner" every member."""
    chosen = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in chosen if _member_of(p)[0] not in PHASES]
    if unknown or not chosen:
        raise ValueError(f"--phases={spec!r}: unknown phase(s) {unknown}; choose from {', '.join(PHASES)} "
                         f"(or one member of an ensemble, e.g. planner.1)")
    return sorted(dict.fromkeys(chosen), key=lambda p: (PHASES.index(_member_of(p)[0]), _member_of(p)[1] or 0))


def components(chosen: list[str]) -> set[str]:
    """The components (tokenizer, brain, planner, policy) `chosen` trains, whole or a member."""
    return {_member_of(p)[0] for p in chosen}


def tokenizer(c: ml_collections.ConfigDict, workdir: Path, train: bool) -> bpe.BpeTokenizer:
    """Learn the decoder's BPE from the talk corpus's training split (or load the one beside the
    checkpoints); the val pairs stay unseen, split file by file as brain SFT splits them."""
    path = workdir / bpe.FILENAME
    if not train:
        return bpe.load(workdir)
    t0 = time.time()
    texts = [text for i, (pairs, _) in enumerate(formats.load_talk(c.data.talk_files))
             for r in data_pipeline.split(pairs, c.data.val_frac, c.data.split_seed + i)[0]
             for text in (r["prompt"], r["response"])]
    tok = bpe.train(texts, c.tokenizer.bpe_merges)
    if jax.process_index() == 0:
        tok.save(workdir)
    log(f"[tokenizer] {tok.vocab_size} ids ({tok.vocab_size - bpe.FIRST_MERGE} merges) from "
        f"{len(texts)} texts, {tok.compression(texts):.2f} bytes/token, {time.time() - t0:.1f}s -> {path}")
    return tok


def talk_metrics(c: ml_collections.ConfigDict, spec: phases.PhaseSpec, params, tok: bpe.BpeTokenizer) -> dict:
    """The talk metrics (evals/talk.py) of the brain's best parameters, config.gen.talk_eval_max prompts."""
    log(f"[brain] talk metrics on up to {c.gen.talk_eval_max} training and held-out prompts")
    # The same mesh as the one run_phase placed the parameters on.
    metrics, _ = talk.measure(c, params, tok.decode, spec, mesh_lib.make_mesh(c))
    log(talk.table(metrics))
    return metrics


def runs(c: ml_collections.ConfigDict, chosen: list[str]) -> list[tuple[str, int]]:
    """The phase runs of `chosen`, in order, as (component, member): the brain, then every member
    of the planner's ensemble, then every member of the policy's (config.<component>.members), or
    the members named ("planner.2")."""
    out = []
    for name in ("brain", "planner", "policy"):
        n = config_lib.members(c, name)
        named = sorted({k for p in chosen for m, k in [_member_of(p)] if m == name and k is not None})
        if named and named[-1] >= n:
            raise ValueError(f"--phases={name}.{named[-1]}: the {name} has {n} member(s) (config.{name}.members="
                             f"{n}), numbered 0 to {n - 1}")
        out += [(name, k) for k in (range(n) if name in chosen else named)]
    return out


def refuse_mixing(c: ml_collections.ConfigDict, workdir: Path, chosen: list[str], resume: bool) -> None:
    """A fresh run must not mix with (or silently skip saves over) an earlier one in workdir."""
    if resume:
        return
    for name, member in runs(c, chosen):
        existing = workdir / "checkpoints" / config_lib.checkpoint_dir(name, member)
        if existing.exists() and any(existing.iterdir()):
            raise ValueError(f"{existing} already holds checkpoints: pass --resume to continue that run, "
                             f"or choose another --workdir")


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on `path` (created if absent) where the platform has fcntl: two
    processes training side by side update one summary."""
    try:
        import fcntl
    except ImportError:  # no side-by-side training there either
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def record(workdir: Path, tier: str, ran: dict, seconds: float) -> dict:
    """Write workdir/summary.json: the phases `ran` over those an earlier run (or the other process
    training side by side) recorded there, and `seconds` for the whole; returns it."""
    path = workdir / "summary.json"
    with locked(path) if jax.process_index() == 0 else contextlib.nullcontext():
        summary = dict(tier=tier, phases={**_recorded_phases(path), **ran}, seconds=round(seconds, 1))
        loop.write_json(path, summary)
    return summary


def _recorded_phases(path: Path) -> dict:
    """The phases an earlier run recorded in the summary at `path` ({} when there is none)."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    recorded = earlier.get("phases") if isinstance(earlier, dict) else None
    return recorded if isinstance(recorded, dict) else {}


def train(c: ml_collections.ConfigDict, workdir: str | Path, phase_spec: str, resume: bool) -> dict:
    """Run the chosen phases; returns the summary also written to workdir/summary.json, where
    the phases of earlier runs that this one did not train are kept."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = parse_phases(phase_spec)
    refuse_mixing(c, workdir, chosen, resume)
    writer = MetricsWriter(workdir)
    ran = {}  # this run's phases
    started = time.time()
    try:
        if {"brain", "tokenizer"} & components(chosen):
            tok = tokenizer(c, workdir, train="tokenizer" in chosen or not (workdir / bpe.FILENAME).exists())
        for name, member in runs(c, chosen):
            t = time.time()
            cm = phases.member_config(c, member)
            spec = phases.brain_spec(c, tok.encode) if name == "brain" else phases.goal_spec(cm, name, member)
            if config_lib.members(c, name) > 1:
                log(f"[{name}] member {member + 1} of {c[name].members}: seed {cm.seed}, checkpoints in "
                    f"{workdir / 'checkpoints' / spec.directory}")
            log(f"[{name}] {sum(len(r) for r, _ in spec.sources)} train / {len(spec.val)} val examples, "
                f"{c[spec.phase].steps} steps of batch {c[spec.phase].batch_size}")
            result = loop.run_phase(cm, spec, workdir, resume, writer)
            key = name + (f".{member}" if member else "")
            ran[key] = dict(seconds=round(time.time() - t, 1), best_score=result.best_score,
                            best_step=result.best_step, finished=result.finished)
            if name == "brain" and result.finished and c.sft.talk_metrics:
                ran[key]["talk"] = talk_metrics(c, spec, result.params, tok)
            if not result.finished:
                break
    finally:
        writer.close()
    summary = record(workdir, c.tier, ran, time.time() - started)
    for name, s in ran.items():
        state = "" if s["finished"] else " (stopped; --resume continues)"
        log(f"[summary] {name}: best score {s['best_score']:.4f} at step {s['best_step']}, "
            f"{s['seconds']:.0f}s{state}")
        if "talk" in s:
            log(f"[summary] {name} talk: {talk.brief(s['talk'])}")
    log(f"[summary] done in {summary['seconds']:.0f}s; results in {workdir}")
    return summary


def side_by_side_cores(c: ml_collections.ConfigDict, chosen: list[str]) -> tuple[list[int], list[int]] | None:
    """The cores of the brain's process and of the goal phases' process when `gestalt train` trains
    them side by side (config.parallel_phases): both kinds chosen, not a multi-process run (where each
    process trains every phase), the CPU backend, and two or more cores this process may run on
    (Linux). None otherwise: one after the other."""
    if not (c.parallel_phases and hasattr(os, "sched_getaffinity")) or jax.distributed.is_initialized():
        return None
    if jax.default_backend() != "cpu" or "brain" not in chosen or not components(chosen) & set(GOAL_PHASES):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    half = (len(cores) + 1) // 2  # the brain's phase is the longer one
    return cores[:half], cores[half:]


def side_by_side_groups(c: ml_collections.ConfigDict, chosen: list[str]) -> list[list[str]]:
    """The phases of the brain's process and of the other one: of the ways to share the goal phases'
    runs (each member of an ensemble one run) between them, the one whose longer process is the
    shortest, each run weighed by its steps (STEP_SECONDS). A one-planner run trains the goal phases
    beside the brain (brain 717 s, planner then policy 743 s on a core each); two planners have the
    second core and the policy follows the brain (brain then policy 583 + 216 s, planners 388 +
    377 s); of three planners the brain's process trains one (planner.0) after the brain, the other two
    and then the policy share the second core. A component whose members all fall to one process
    is named whole ("planner"), else by member ("planner.2")."""
    rest = [(name, k) for name, k in runs(c, chosen) if name != "brain"]
    cost = lambda name: STEP_SECONDS[name] * c[config_lib.PHASE_OF[name]].steps
    brain = cost("brain") if "brain" in chosen else 0.0
    costs, total = [cost(name) for name, _ in rest], sum(cost(name) for name, _ in rest)

    def longer(sides):  # the longer process's seconds, with the runs of side 0 after the brain
        first = sum(w for w, s in zip(costs, sides) if s == 0)
        return max(brain + first, total - first)

    sides = min(itertools.product((0, 1), repeat=len(rest)), key=longer)
    groups = [[p for p in chosen if p in ("tokenizer", "brain")], []]
    for name in GOAL_PHASES:
        mine = [[k for (n, k), s in zip(rest, sides) if n == name and s == side] for side in (0, 1)]
        for side in (0, 1):
            whole = name in chosen and len(mine[side]) == config_lib.members(c, name)
            groups[side] += [name] if whole else [f"{name}.{k}" for k in mine[side]]
    return groups


def cores_flag(cores: list[int]) -> str:
    return ",".join(map(str, cores))


def train_side_by_side(c: ml_collections.ConfigDict, workdir: str | Path, chosen: list[str], resume: bool,
                       cores: tuple[list[int], list[int]]) -> int:
    """Run this `gestalt train` again as two processes, the brain's phases on cores[0] and the goal
    phases on cores[1] (each pins itself through --cpus before its devices start), and wait for
    both; returns the first nonzero exit code, else 0. Each writes its own phases' checkpoints,
    metrics and summary entries into workdir; their console lines interleave, each named by its
    phase. Stopping this process (Ctrl-C, SIGTERM) stops both."""
    workdir = Path(workdir)
    refuse_mixing(c, workdir, chosen, resume)  # one message here rather than one from each process
    groups = side_by_side_groups(c, chosen)
    log(f"[train] side by side (config.parallel_phases): {', '.join(groups[0])} on core(s) "
        f"{cores_flag(cores[0])}; {', '.join(groups[1])} on core(s) {cores_flag(cores[1])}")
    started = time.time()
    # The same command line (so the same config, overrides and workdir), one group each; for an
    # absl flag given twice the last wins.
    commands = [[sys.executable, *sys.orig_argv[1:], f"--phases={','.join(group)}", f"--cpus={cores_flag(cpus)}",
                 "--config.parallel_phases=False"] for group, cpus in zip(groups, cores)]
    procs = []

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        procs = [subprocess.Popen(cmd) for cmd in commands]
        codes = [p.wait() for p in procs]
    except (KeyboardInterrupt, SystemExit) as e:
        # A Ctrl-C at the terminal reaches both processes too: they get time to stop on it.
        _stop(procs, grace_s=10.0 if isinstance(e, KeyboardInterrupt) else 0.0)
        log("[train] stopped; --resume continues each phase from its latest checkpoint")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [(group, code) for group, code in zip(groups, codes) if code]
    for group, code in failed:
        print(f"gestalt train: the process training {', '.join(group)} ended with exit code {code}", file=sys.stderr)
    if failed:
        return failed[0][1]
    summary = record(workdir, c.tier, {}, time.time() - started)
    log(f"[summary] side by side: done in {summary['seconds']:.0f}s; results in {workdir}")
    return 0


def _stop(procs: list[subprocess.Popen], grace_s: float, kill_s: float = 30.0) -> None:
    """Stop the side-by-side processes: those still running grace_s from now get SIGTERM, which
    ends a `gestalt train` where it is, as it would end one alone (its latest checkpoint stays;
    `--resume` continues from it), and SIGKILL if they have not ended kill_s after that."""
    for wait_s, signal_rest in ((grace_s, subprocess.Popen.terminate), (kill_s, subprocess.Popen.kill)):
        deadline = time.time() + wait_s
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(deadline - time.time(), 0.0))
        for p in procs:
            if p.poll() is None:
                signal_rest(p)
    for p in procs:
        p.wait()
