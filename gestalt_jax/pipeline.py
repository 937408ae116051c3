"""`gestalt train`: tokenizer → brain SFT → planner → policy → summary, in one command.

Each phase writes its checkpoints under workdir/checkpoints/<phase>; `--resume` continues
every phase where it stopped (a finished phase is skipped to its best weights).
"""

from __future__ import annotations

import json
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


def parse_phases(spec: str) -> list[str]:
    chosen = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PHASES]
    if unknown or not chosen:
        raise ValueError(f"--phases={spec!r}: unknown phase(s) {unknown}; choose from {', '.join(PHASES)}")
    return [p for p in PHASES if p in chosen]


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
    if not resume:  # a fresh run must not mix with (or silently skip saves over) an earlier one
        for name in (n for n in chosen if n in config_lib.PHASE_OF):
            existing = workdir / "checkpoints" / config_lib.PHASE_OF[name]
            if existing.exists() and any(existing.iterdir()):
                raise ValueError(f"{existing} already holds checkpoints: pass --resume to continue that run, "
                                 f"or choose another --workdir")
    writer = MetricsWriter(workdir)
    ran = {}  # this run's phases
    started = time.time()
    try:
        if "brain" in chosen or "tokenizer" in chosen:
            tok = tokenizer(c, workdir, train="tokenizer" in chosen or not (workdir / bpe.FILENAME).exists())
        for name in ("brain", "planner", "policy"):
            if name not in chosen:
                continue
            t = time.time()
            spec = phases.brain_spec(c, tok.encode) if name == "brain" else phases.goal_spec(c, name)
            log(f"[{name}] {sum(len(r) for r, _ in spec.sources)} train / {len(spec.val)} val examples, "
                f"{c[spec.phase].steps} steps of batch {c[spec.phase].batch_size}")
            result = loop.run_phase(c, spec, workdir, resume, writer)
            ran[name] = dict(seconds=round(time.time() - t, 1), best_score=result.best_score,
                             best_step=result.best_step, finished=result.finished)
            if name == "brain" and result.finished and c.sft.talk_metrics:
                ran[name]["talk"] = talk_metrics(c, spec, result.params, tok)
            if not result.finished:
                break
    finally:
        writer.close()
    path = workdir / "summary.json"
    summary = dict(tier=c.tier, phases={**_recorded_phases(path), **ran}, seconds=round(time.time() - started, 1))
    loop.write_json(path, summary)
    for name, s in ran.items():
        state = "" if s["finished"] else " (stopped; --resume continues)"
        log(f"[summary] {name}: best score {s['best_score']:.4f} at step {s['best_step']}, "
            f"{s['seconds']:.0f}s{state}")
        if "talk" in s:
            log(f"[summary] {name} talk: {talk.brief(s['talk'])}")
    log(f"[summary] done in {summary['seconds']:.0f}s; results in {workdir}")
    return summary

