"""Loading a trained workdir: the one way eval, gallery, the agent and the benchmarks get a model.

Each component is rebuilt with the config saved beside its best checkpoint, so a run trained with
`--config.planner.layers=4` is evaluated, and run, without repeating it. Only what may change at
inference comes from the command line: decoding and batch sizes, the eval files, the agent's
settings, the mesh and the caches (INFERENCE_SECTIONS, INFERENCE_KEYS).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from gestalt_jax import config as config_lib
from gestalt_jax.infer import replies
from gestalt_jax.model.brain import Brain, build_brain
from gestalt_jax.text import bpe
from gestalt_jax.train import checkpoint as ckpt_lib
from gestalt_jax.train import loop, phases
from gestalt_jax.train import mesh as mesh_lib
from gestalt_jax.train.metrics import log

COMPONENTS = ("brain", "planner", "policy")
INFERENCE_SECTIONS = ("gen", "eval", "agent", "serve", "mesh", "debug", "check")
INFERENCE_KEYS = ("compile_cache", "huge_pages", "data.goals_held_out", "planner.follow_intent",
                  "planner.clause_steps", "planner.clause_steps_conf", "planner.clause_steps_open")
# Training data files: the trained ones rebuild the split; the command line's when those are gone
# (a clone moved or removed since training).
DATA_FILES = ("talk_files", "talk_paraphrases", "goals_file", "goals_extra", "goals_chat")
_TRAINS = dict(brain="tokenizer,brain", planner="planner", policy="policy")


class NotTrained(FileNotFoundError):
    """A component with no best checkpoint in the workdir; the message names the command that trains it."""

    def __init__(self, component: str, workdir: str | Path, member: int = 0):
        directory = Path(workdir) / "checkpoints" / config_lib.checkpoint_dir(component, member)
        what = f"member {member} of the {component} ensemble" if member else component
        resume = " --resume" if member else ""
        super().__init__(f"no trained {what} in {directory}: run `gestalt train --phases={_TRAINS[component]}"
                         f"{resume} --workdir={workdir}` (with the --config you train with) first")
        self.component = component


def is_trained(workdir: str | Path, component: str, member: int = 0) -> bool:
    return (Path(workdir) / "checkpoints" / config_lib.checkpoint_dir(component, member) / ckpt_lib.BEST).is_dir()


def _set(c: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    *path, key = dotted.split(".")
    for part in path:
        c = c[part]
    with c.ignore_type():
        c[key] = value


def _merge(into: ml_collections.ConfigDict, saved: dict, prefix: str = "") -> None:
    """Saved values onto the base config's keys (JSON made tuples lists: they become tuples again);
    keys the base no longer has are ignored, keys it gained keep their defaults."""
    for key, value in saved.items():
        if key not in into:
            continue
        if isinstance(into[key], ml_collections.ConfigDict) and isinstance(value, dict):
            _merge(into[key], value, f"{prefix}{key}.")
        else:
            _set(into, key, tuple(value) if isinstance(into[key], tuple) and isinstance(value, list) else value)


def saved_onto_base(saved: dict) -> ml_collections.ConfigDict:
    """The base config with a checkpoint's saved values; a key the checkpoint was saved without
    keeps its default, but for those in config.BEFORE_THE_KEY (trained the older way)."""
    c = config_lib.base()
    _merge(c, saved)
    for dotted, value in config_lib.BEFORE_THE_KEY.items():
        *path, key = dotted.split(".")
        section = saved
        for part in path:
            section = section.get(part, {}) if isinstance(section, dict) else {}
        if key not in section:
            _set(c, dotted, value)
    return c


def config_for(cli: ml_collections.ConfigDict, workdir: str | Path, component: str) -> ml_collections.ConfigDict:
    """`component`'s training config (saved with its best checkpoint) with the inference settings of
    `cli`; `cli` itself when the checkpoint saved none."""
    directory = Path(workdir) / "checkpoints" / config_lib.PHASE_OF[component]
    with ckpt_lib.PhaseCheckpoints(directory, keep=1) as checkpoints:
        saved = checkpoints.saved_config(ckpt_lib.BEST)
    if saved is None:
        return cli
    c = saved_onto_base(saved)
    _say_ignored(cli, c, component)
    replaced = []
    for key in DATA_FILES:
        trained_with = c.data[key]
        paths = ([p for p, _ in config_lib.weighted_files(trained_with, f"data.{key}")]
                 if f"data.{key}" in config_lib.FILE_LISTS else [trained_with])
        gone = [path for path in paths if not Path(path).is_file()]
        if gone and trained_with != cli.data[key]:
            replaced.append((key, gone[0]))
            c.data[key] = cli.data[key]
    if replaced:
        log(f"[{component}] data files it was trained with are gone ({replaced[0][1]}, ...): using "
            f"{', '.join('config.data.' + k for k, _ in replaced)} from the command line")
    for section in INFERENCE_SECTIONS:
        c[section] = ml_collections.ConfigDict(cli[section].to_dict())
    for dotted in INFERENCE_KEYS:
        value = cli
        for part in dotted.split("."):
            value = value[part]
        _set(c, dotted, value)
    return c


def _say_ignored(cli: ml_collections.ConfigDict, c: ml_collections.ConfigDict, component: str) -> None:
    """One line per setting of the component's own model section that the command line sets
    otherwise: the trained value is the one used."""
    section = component
    for key, value in c[section].items():
        if key in cli[section] and cli[section][key] != value and f"{section}.{key}" not in INFERENCE_KEYS:
            log(f"[{component}] config.{section}.{key}={cli[section][key]!r} is not used: the trained "
                f"{component} has {value!r} (its config is saved with its checkpoint)")


def identity(workdir: str | Path, component: str, members: int = 1) -> str:
    """A string naming exactly this trained component: its best step and the checkpoint's own
    metadata (which holds when it was written), so a retrained brain gets a new identity; a planner
    ensemble's names every member's, joined by "+"."""
    return "+".join(_identity(workdir, component, k) for k in range(members))


def _identity(workdir: str | Path, component: str, member: int) -> str:
    best = Path(workdir) / "checkpoints" / config_lib.checkpoint_dir(component, member) / ckpt_lib.BEST
    step = max((p for p in best.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    meta = step / "_CHECKPOINT_METADATA"
    digest = hashlib.sha256(meta.read_bytes() if meta.exists() else b"").hexdigest()[:16]
    return f"{component}@{step.name}:{digest}"


@dataclasses.dataclass
class Trained:
    """One trained component: its config (training + inference settings), phase spec (data, split),
    parameters on `mesh` and on the host (generation runs outside the mesh), and identity."""
    name: str
    config: ml_collections.ConfigDict
    spec: phases.PhaseSpec
    mesh: jax.sharding.Mesh
    params: Any
    host_params: Any
    identity: str
    # An ensemble's parameters, member by member (`params` is member 0's); () for one model.
    members: tuple = ()

    @property
    def decides_with(self):
        """What plan.decode and policy.predict take: the members' parameters, or the one model's."""
        return self.members or self.params


@dataclasses.dataclass
class TrainedBrain(Trained):
    """The brain with its tokenizer: replies (greedy or ranked, optionally with memory) and concepts."""
    module: Brain = None
    tokenizer: bpe.BpeTokenizer = None

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    def replies(self, prompts: Sequence[str], how=None, rng=None, memory=None) -> list[str]:
        how = replies.ARGMAX if how is None else how
        return replies.replies(self.config, self.module, self.host_params, self.decode, prompts, how, rng, memory)

    def ranked(self, prompts: Sequence[str], memory=None) -> list[str]:
        """Sample-and-rank replies (config.gen.candidates), or the argmax ones when that is 0."""
        if not self.config.gen.candidates:
            return self.replies(prompts, memory=memory)
        return replies.ranked_replies(self.config, self.module, self.host_params, self.decode, prompts, memory)

    def concepts(self, prompts: Sequence[str]) -> np.ndarray:
        return replies.concepts(self.config, self.module, self.host_params, prompts)

    def concept(self, text: str) -> tuple[np.ndarray, str]:
        """The concept of `text` and this brain's identity: what episodic memory stores and compares."""
        return self.concepts([text])[0], self.identity


def load(cli: ml_collections.ConfigDict, workdir: str | Path, component: str, mesh=None) -> Trained:
    """`component` of workdir as trained (NotTrained when it is not); the brain as a TrainedBrain."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; components: {', '.join(COMPONENTS)}")
    if not is_trained(workdir, component):
        raise NotTrained(component, workdir)
    c = config_for(cli, workdir, component)
    mesh = mesh if mesh is not None else mesh_lib.make_mesh(c)
    extra = {}
    if component == "brain":
        tok = bpe.load(workdir)
        spec = phases.brain_spec(c, tok.encode)
        extra = dict(module=build_brain(c), tokenizer=tok)
    else:
        spec = phases.goal_spec(c, component)
    n = config_lib.members(c, component)
    for member in range(1, n):
        if not is_trained(workdir, component, member):
            raise NotTrained(component, workdir, member)
    with mesh_lib.activate(mesh):
        params = loop.restore_best_params(c, spec, workdir, mesh)
        if n > 1:
            extra["members"] = (params,) + tuple(
                loop.restore_best_params(c, dataclasses.replace(spec, member=k), workdir, mesh) for k in range(1, n))
    kind = TrainedBrain if component == "brain" else Trained
    return kind(component, c, spec, mesh, params, replies.host_params(params), identity(workdir, component, n),
                **extra)
