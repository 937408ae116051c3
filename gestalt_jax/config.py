"""The one shared base config, derived values and the validator.

Every tier file in `configs/` starts from `base()` and overrides numbers; nothing in the
code holds a default of its own. `validate` rejects impossible or unknown settings with
an error that names the key.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import ml_collections

from gestalt_jax.text import labels, plan_vocab

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS = REPO_ROOT / "datasets"

OPTIMIZERS = ("muon", "adamw")
DTYPES = ("float32", "bfloat16")
MESH_AXES = ("data", "fsdp", "tensor")
PHASES = ("sft", "planner_sft", "policy_sft")
PHASE_OF = dict(brain="sft", planner="planner_sft", policy="policy_sft")  # component -> its phase
MAX_MEMBERS = 8  # models an ensemble may hold (config.planner.members, config.policy.members)
ENSEMBLES = ("planner", "policy")  # the components that may train several members
# Settings a checkpoint's saved config may lack (saved before the key existed) whose value then is
# not today's default: the model was trained the older way (infer/trained.py reads them so).
BEFORE_THE_KEY = {"planner.goal_both_ways": False}


def checkpoint_dir(component: str, member: int = 0) -> str:
    """The directory under workdir/checkpoints of a component's phase: member k >= 1 of an
    ensemble (config.planner.members, config.policy.members) trains into <phase>.<k>, member 0 into
    <phase>."""
    return PHASE_OF[component] + (f".{member}" if member else "")


def members(c: ml_collections.ConfigDict, component: str) -> int:
    """How many models `component` trains and decides with: config.<component>.members for an
    ensemble's (ENSEMBLES), 1 for the brain."""
    return c[component].members if component in ENSEMBLES else 1
BYTE_VOCAB = 259  # 256 bytes + PAD, BOS, EOS (text/bytes.py)
GREEDY_BELOW = 0.01  # temperatures under this take the argmax (infer/sampling.py)
# Keys holding comma-separated `path[:weight]` lists, and whether each may be empty.
FILE_LISTS = {"data.talk_files": False, "data.talk_paraphrases": True, "data.goals_extra": True,
              "data.goals_chat": True}


class ConfigError(ValueError):
    """A setting that cannot work; the message names the key."""


def _phase(steps: int, batch_size: int, eval_every: int) -> ml_collections.ConfigDict:
    """One training phase's optimisation settings (shared shape for all phases)."""
    return ml_collections.ConfigDict(dict(
        optimizer="adamw",      # "muon" (hidden matrices) + AdamW (the rest), or AdamW everywhere
        lr=3e-4,                # AdamW peak learning rate
        muon_lr=0.02,           # Muon peak learning rate
        muon_momentum=0.95,
        b1=0.9,
        b2=0.95,
        eps=1e-8,
        weight_decay=0.0,
        warmup_frac=0.1,        # share of steps spent warming up linearly
        min_lr_frac=0.01,       # cosine decays to this share of the peak
        clip_norm=1.0,          # gradient clipping by global norm
        batch_size=batch_size,  # packed rows per optimizer step (each row holds several examples)
        segments=8,             # most examples packed into one row
        accum_steps=1,          # micro-batches per optimizer step (the rows split among them)
        steps=steps,
        eval_every=eval_every,
        patience=5,             # evaluations without val improvement before stopping
        # Share of the steps before which a validation neither competes for the best checkpoint
        # nor counts toward early stopping (its checkpoint is kept for resume); 1.0 keeps the
        # last step's parameters.
        select_from=0.0,
        keep_checkpoints=2,
    ))


def _model(**sizes) -> ml_collections.ConfigDict:
    """One component's transformer sizes (shared keys) plus its own."""
    return ml_collections.ConfigDict(dict(
        d_model=64,
        heads=4,
        d_ff=128,
        rope_base=10000.0,
        yarn_beta_fast=32.0,      # YaRN: dims turning more often than this over L_train keep their frequency
        yarn_beta_slow=1.0,       # ... and those turning less often than this are fully interpolated
        **sizes,
    ))


def base() -> ml_collections.ConfigDict:
    """Every hyperparameter of every component and phase, at the test tier's sizes."""
    c = ml_collections.ConfigDict()
    c.tier = "test"
    c.seed = 0
    c.compute_dtype = "float32"   # activations and matmuls; parameters stay in param_dtype
    c.param_dtype = "float32"
    c.remat = False               # rematerialise each transformer block in the backward pass
    # XLA's persistent compilation cache ("" off): a later run, resume, eval or gallery that compiles
    # the same step loads it from here instead of compiling it again.
    c.compile_cache = "~/.cache/gestalt_jax/xla"
    # Linux: commands run with glibc's malloc on transparent huge pages. On CPU a step's buffers are
    # allocated afresh every step, and with 4 KB pages a third of the step went to page faults.
    c.huge_pages = True
    # `gestalt train` of the brain and the goal phases on a CPU of 2 or more cores (Linux, one
    # process): the brain trains in one process pinned to half the cores while the planner, then the
    # policy, train in another pinned to the other half. A small-tier step gains far less than 2x
    # from a second core (the policy's 1.1x), so the two halves at once finish sooner than the
    # phases one after another on all of them (BENCHMARKS.md, "Pipeline wall time").
    c.parallel_phases = True

    c.tokenizer = ml_collections.ConfigDict(dict(
        bpe_merges=200,           # decoder vocabulary = 259 byte ids + merges
    ))

    c.brain = _model(
        enc_layers=1,
        dec_layers=2,
        n_prefix=2,               # concept prefix tokens (N)
        mem_k=2,                  # memory vectors attached per example (K)
        mem_capacity=64,          # episodic memory size at run time
        enc_len=64,
        dec_len=128,
        enc_dropout=0.0,
        dec_dropout=0.1,
        ngram_buckets=4096,       # rows of the encoder's hashed character n-gram table (model/ngrams.py)
    )
    c.planner = _model(layers=2, max_len=160, dropout=0.1,  # longest built-in goal + plan: 146
                       ngram_buckets=4096,  # rows of the hashed character n-gram table (model/ngrams.py)
                       # decoding follows the policy's intent: a tool's intent is a one-step plan of
                       # that tool; COMPOSITE leaves the plan to the planner (infer/plan_fsm.guidance)
                       follow_intent=True,
                       # and a COMPOSITE goal's steps follow the policy's reading of each request
                       # clause, when every clause reads as one tool at this confidence (infer/decide.py),
                       # but for at most clause_steps_open clauses, whose tools the planner chooses
                       clause_steps=True, clause_steps_conf=0.9, clause_steps_open=1,
                       # the stack reads the goal (BOS up to the clauses' end) both ways, as a
                       # prefix LM: each goal byte sees the words after it; the plan stays causal.
                       # Small tier, three seeds' pairs of planners: held-out arguments 79.7% against
                       # 77.9% in the mean (more in each), plans 89.7% against 90.0%, at the same
                       # cost (BENCHMARKS.md, History, "issue 19, thirteenth round")
                       goal_both_ways=True,
                       # planners trained, member k with seed config.seed + k, each its own phase run
                       # (checkpoints/planner_sft, planner_sft.1, ...); a plan averages their
                       # log-probabilities at every token (infer/plan.py)
                       members=1,
                       # tokens of the plan vocabulary (text/plan_vocab.py): not a choice, but saved with
                       # each checkpoint, so a planner trained on another vocabulary is named as such
                       vocab_size=plan_vocab.VOCAB_SIZE)
    c.policy = _model(
        layers=1,
        max_len=128,
        dropout=0.1,
        ngram_buckets=4096,       # rows of the hashed character n-gram table (model/ngrams.py)
        pooled_dropout=0.5,       # training rows whose pooled heads see the n-gram bag alone
        intent_weight=2.0,        # loss weights: intent and actions dominate
        action_weight=2.0,
        arg_weight=0.5,
        members=1,                # policies trained, as config.planner.members; a prediction is
                                  # read off the mean of their heads' probabilities (infer/policy.py)
    )

    c.sft = _phase(steps=200, batch_size=16, eval_every=50)
    c.sft.noise_max = 0.1         # PAD-denoising rate reached at the end of the ramp
    c.sft.noise_ramp_frac = 0.3   # share of steps over which the rate ramps from 0
    c.sft.memory_warmup_frac = 0.2  # no memory attached before this share of steps
    c.sft.memory_prob = 0.5       # share of later steps that attach K memory vectors
    c.sft.memory_pool = 256       # recent concept vectors kept to draw memory from
    c.sft.fit_sample = 256        # training pairs whose teacher-forced exact match picks the best brain
    c.sft.prompt_augment = 0.5    # share of drawn training pairs whose prompt gets typos, case changes, fillers
    c.sft.concept_noise = 1.0     # Gaussian noise on the decoder's concept, relative to its RMS (model/brain.py)
    c.sft.concept_noise_ramp_frac = 0.0  # share of steps over which that noise ramps up from 0
    c.sft.talk_metrics = True     # False: brain SFT ends without the talk metrics (`gestalt eval` still measures them)
    c.planner_sft = _phase(steps=200, batch_size=16, eval_every=50)
    # Positions of a packed row whose plan tokens are trained (the loss's targets): the LM and copy
    # heads run at these alone, not at the goal's positions, whose logits nothing reads. An example
    # whose plan would overflow them starts a new row. 0: the row's length (planner.max_len).
    c.planner_sft.trained_len = 0
    c.policy_sft = _phase(steps=200, batch_size=16, eval_every=50)

    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))  # -1: the remaining devices

    c.data = ml_collections.ConfigDict(dict(
        talk_files=str(DATASETS / "talk" / "train.jsonl"),  # comma-separated path or path:weight
        # comma-separated path or path:weight: other wordings of the training prompts, for training
        # only; a pair is kept when its response is a training response of talk_files. Weight 0.5
        # draws the corpus prompts two times in three, so the replies are still memorised in time.
        talk_paraphrases=str(DATASETS / "talk" / "paraphrases.jsonl") + ":0.5",
        goals_file=str(DATASETS / "goals" / "train.jsonl"),
        goals_held_out=str(DATASETS / "goals" / "held_out.jsonl"),
        # comma-separated path or path:weight: more training goals, never validated on
        goals_extra=str(DATASETS / "goals" / "synthetic.jsonl"),
        # comma-separated path or path:weight: talk files (any talk format) whose prompts train
        # planner and policy as CONVERSATION goals (a lone TALK), drawn beside the goal files
        goals_chat=str(DATASETS / "talk" / "train.jsonl") + ":0.2",
        goal_augment=0.5,         # share of drawn training goals rewritten (new argument values, noise)
        val_frac=0.1,
        split_seed=0,
        # Rows of a training batch packed together from one stream (the whole batch when it is
        # smaller). The batches do not depend on the number of processes, so a checkpoint
        # resumes on any number of them; the batch sizes must be multiples of it.
        pack_rows=16,
    ))

    c.eval = ml_collections.ConfigDict(dict(
        batch_size=64,            # goals decoded together by `gestalt eval`
    ))

    c.gen = ml_collections.ConfigDict(dict(
        # Reply decoding (infer/sampling.Sampling); talk metrics use plain argmax instead.
        temperature=0.0,          # below 0.01: the argmax of the penalised logits
        top_k=40,                 # keep the k most likely tokens (< 1: all)
        top_p=0.9,                # then the smallest set holding this probability (1: all)
        ngram=4,                  # a token that would repeat an n-gram of the reply is penalised (< 1: off)
        ngram_penalty=2.0,        # by this factor (1: off)
        seed=0,                   # sampled gallery replies and the training prompts the talk metrics draw
        batch_size=64,            # prompts generated together (talk metrics, gallery)
        talk_eval_max=256,        # training prompts (and held-out ones) the talk metrics score at most
        held_out_file=str(DATASETS / "talk" / "held_out.jsonl"),  # {prompt, reference}; "": no held-out chrF
        gallery_file=str(DATASETS / "talk" / "gallery.jsonl"),    # {prompt, category}
        gallery_temperatures=(0.5, 0.7, 1.0),
        gallery_sampled=2,        # prompts per category also sampled at each gallery temperature
        # Sample-and-rank (infer/generate.generate_ranked): the gallery's "ranked" replies and the
        # held-out ranked metrics keep, of the argmax reply and `candidates` sampled at
        # rank_temperature, the one the brain finds most likely. 0: off.
        candidates=7,
        rank_temperature=0.7,
    ))

    c.agent = ml_collections.ConfigDict(dict(
        # Subprocess tools (RUN_TESTS, CHECK_BUILD, FIX_TESTS, PATCH_DRY_RUN, LEAN_SUITE, EVAL, TRAIN)
        timeout_s=300.0,          # wall time before the command's whole process tree is killed
        kill_grace_s=2.0,         # between SIGTERM and SIGKILL
        output_max_bytes=1 << 20,  # output kept per command: the first and last halves of this
        bubblewrap=True,          # run subprocess tools in bubblewrap where it works (False: never)
        landlock=True,            # restrict their writes and TCP with Landlock where the kernel has it
        # The workspace's own commands, as argv written as one string ("" detects them from its
        # files: pytest, cargo, npm, go, make); split like a shell would, never run by one.
        test_command="",
        build_command="",
        # Python tools
        read_max_bytes=256 << 10,  # READ_FILE reads at most this much of a file
        read_max_lines=200,       # and returns at most this many lines
        search_max_hits=200,      # SEARCH keeps this many hits (and counts the rest)
        list_max_files=2000,      # LIST_FILES keeps this many paths (and counts the rest)
        excerpt_chars=2000,       # raw output shown in a result
        # Episodic memory (agent/memory.py): one row per episode and per remembered fact
        memory_file="memory.sqlite",  # relative to the workdir
        memory_max_hits=5,        # episodes MEMORY_SEARCH (and retrieval for TALK) returns
        memory_capacity=10000,    # episodes kept; beyond it the least used, then oldest, go
        memory_merge_cosine=0.98,  # a new episode this close (concept cosine, same goal words) updates the old one
        memory_rrf_k=60,          # reciprocal rank fusion of concept and keyword rankings: 1 / (k + rank)
        # the concept ranking keeps episodes at least this close: on the small tier, related goals
        # measured 0.5-0.75 and unrelated ones 0.1-0.47 (cosine of the brain's concepts)
        memory_min_cosine=0.5,
        meta_timeout_s=3600.0,    # EVAL and TRAIN (gestalt itself, only with --allow_meta)
    ))

    c.serve = ml_collections.ConfigDict(dict(
        host="127.0.0.1",         # loopback; any other address needs --api_key
        port=8080,
        model="gestalt",          # the id /v1/models lists and replies carry
        max_body_bytes=1 << 20,   # each limit below answers its own 400
        max_messages=64,
        max_message_chars=8192,
        max_tokens=0,             # largest max_tokens a request may ask for (0: the brain's dec_len)
        request_timeout_s=120.0,  # a request still unanswered after this ends with an error
        max_queue=256,            # requests waiting for generation; beyond it 429 with Retry-After
        batch_window_ms=5.0,      # how long the scheduler collects requests into one batch
        batch_sizes=(1, 2, 4, 8, 16),  # compiled batch shapes (each compiled once at start-up)
        chunk=8,                  # tokens generated per device call between streamed deltas
    ))

    c.distributed = ml_collections.ConfigDict(dict(
        # Several processes (--coordinator or --distributed): how long a process waits for all of
        # them to connect, and after how long without a heartbeat a process counts as dead (the
        # others then stop with an error instead of waiting on it forever).
        init_timeout_s=300,
        heartbeat_timeout_s=100,
    ))

    c.debug = ml_collections.ConfigDict(dict(
        check_grads_every=0,      # 0: never; N: chex gradient check every N train steps
        log_every=10,             # steps between console progress lines
        stop_after_steps=0,       # 0: run on; N: stop each phase after N steps as if interrupted
    ))

    c.check = ml_collections.ConfigDict(dict(
        batch_size=4,             # examples in the batch whose gradients `check` inspects
        fd_directions=3,          # random directions of the finite-difference check
        fd_eps=1e-3,
        fd_tolerance=5e-2,        # largest accepted relative error of finite differences
        execute=True,             # False: only compile (memory, FLOPs) for tiers too big for the host
    ))
    return c


def load_tier(name: str) -> ml_collections.ConfigDict:
    """get_config() of configs/<name>.py (for tests and scripts; the CLI uses --config)."""
    return load_file(REPO_ROOT / "configs" / f"{name}.py")


def load_file(path: str | Path) -> ml_collections.ConfigDict:
    """get_config() of a tier file anywhere (what --config takes)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no tier config {path}")
    spec = importlib.util.spec_from_file_location(f"gestalt_tier_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def decoder_vocab(c: ml_collections.ConfigDict) -> int:
    return BYTE_VOCAB + c.tokenizer.bpe_merges


def _keys(d: ml_collections.ConfigDict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        if isinstance(v, ml_collections.ConfigDict):
            out.update(_keys(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def mesh_shape(c: ml_collections.ConfigDict, num_devices: int) -> tuple[int, int, int]:
    """Mesh sizes with -1 resolved against the device count."""
    sizes = [c.mesh[a] for a in MESH_AXES]
    fixed = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1:
        raise ConfigError(f"config.mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
    if num_devices % fixed:
        raise ConfigError(f"config.mesh: fixed axes {dict(zip(MESH_AXES, sizes))} need a multiple of "
                          f"{fixed} devices, have {num_devices}")
    sizes = [num_devices // fixed if s == -1 else s for s in sizes]
    if math.prod(sizes) != num_devices:
        raise ConfigError(f"config.mesh: {dict(zip(MESH_AXES, sizes))} uses {math.prod(sizes)} devices, "
                          f"have {num_devices}")
    return tuple(sizes)


def validate(c: ml_collections.ConfigDict, num_devices: int | None = None,
             check_files: bool = True) -> None:
    """Raise ConfigError naming the first key at fault."""
    known, given = _keys(base()), _keys(c)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join('config.' + k for k in unknown)}")
    missing = sorted(set(known) - set(given))
    if missing:
        raise ConfigError(f"missing config key(s): {', '.join('config.' + k for k in missing)}")
    for key, value in given.items():
        want = type(known[key])
        ok = isinstance(value, want) or (want is float and isinstance(value, int))
        if not ok or (want is not bool and isinstance(value, bool)):  # a bool is an int to isinstance
            raise ConfigError(f"config.{key}={value!r}: expected {want.__name__}")

    def need(cond: bool, key: str, why: str) -> None:
        if not cond:
            raise ConfigError(f"config.{key}={given[key]!r}: {why}")

    for dtype_key in ("compute_dtype", "param_dtype"):
        need(given[dtype_key] in DTYPES, dtype_key, f"expected one of {DTYPES}")
    need(given["tokenizer.bpe_merges"] >= 0, "tokenizer.bpe_merges", "must be >= 0")
    for model in ("brain", "planner", "policy"):
        m = c[model]
        for k, v in m.items():
            if k.endswith("dropout"):
                need(0.0 <= v < 1.0, f"{model}.{k}", "must lie in [0, 1)")
            elif isinstance(v, int) and not isinstance(v, bool):
                need(v >= 1, f"{model}.{k}", "must be >= 1")
            elif isinstance(v, float):
                need(v > 0, f"{model}.{k}", "must be > 0")
        need(m.d_model % m.heads == 0, f"{model}.heads",
             f"must divide config.{model}.d_model={m.d_model}")
        need((m.d_model // m.heads) % 2 == 0, f"{model}.heads",
             f"head dim config.{model}.d_model/heads={m.d_model // m.heads} must be even for RoPE")
    need(c.brain.mem_k <= c.brain.mem_capacity, "brain.mem_k",
         f"cannot exceed config.brain.mem_capacity={c.brain.mem_capacity}")
    for phase in PHASES:
        p = c[phase]
        need(p.optimizer in OPTIMIZERS, f"{phase}.optimizer", f"expected one of {OPTIMIZERS}")
        for k in ("lr", "muon_lr", "eps", "clip_norm"):
            need(p[k] > 0, f"{phase}.{k}", "must be > 0")
        for k in ("b1", "b2", "muon_momentum"):
            need(0 <= p[k] < 1, f"{phase}.{k}", "must lie in [0, 1)")
        need(p.weight_decay >= 0, f"{phase}.weight_decay", "must be >= 0")
        need(0 <= p.warmup_frac < 1, f"{phase}.warmup_frac", "must lie in [0, 1)")
        need(0 <= p.min_lr_frac <= 1, f"{phase}.min_lr_frac", "must lie in [0, 1]")
        need(0 <= p.select_from <= 1, f"{phase}.select_from", "must lie in [0, 1]")
        for k in ("batch_size", "segments", "accum_steps", "steps", "eval_every", "patience", "keep_checkpoints"):
            need(p[k] >= 1, f"{phase}.{k}", "must be >= 1")
    need(0 <= c.planner_sft.trained_len <= c.planner.max_len, "planner_sft.trained_len",
         f"must lie in [0, planner.max_len={c.planner.max_len}] (0: planner.max_len)")
    need(c.planner.vocab_size == plan_vocab.VOCAB_SIZE, "planner.vocab_size",
         f"the plan vocabulary has {plan_vocab.VOCAB_SIZE} tokens (text/plan_vocab.py); it is not a choice")
    need(0 <= c.planner.clause_steps_conf <= 1, "planner.clause_steps_conf", "must lie in [0, 1]")
    need(0 <= c.planner.clause_steps_open < labels.MAX_STEPS, "planner.clause_steps_open",
         f"must lie in [0, {labels.MAX_STEPS - 1}]")
    for name in ENSEMBLES:
        need(1 <= c[name].members <= MAX_MEMBERS, f"{name}.members", f"must lie in [1, {MAX_MEMBERS}]")
    need(0 <= c.sft.noise_max < 1, "sft.noise_max", "must lie in [0, 1)")
    need(c.sft.concept_noise >= 0, "sft.concept_noise", "must be >= 0")
    for k in ("noise_ramp_frac", "concept_noise_ramp_frac", "memory_warmup_frac", "memory_prob", "prompt_augment"):
        need(0 <= c.sft[k] <= 1, f"sft.{k}", "must lie in [0, 1]")
    need(c.sft.fit_sample >= 1, "sft.fit_sample", "must be >= 1")
    need(c.sft.memory_pool >= c.sft.batch_size, "sft.memory_pool",
         f"must hold at least one batch, config.sft.batch_size={c.sft.batch_size}")
    need(0 < c.data.val_frac < 1, "data.val_frac", "must lie in (0, 1)")
    need(0 <= c.data.goal_augment <= 1, "data.goal_augment", "must lie in [0, 1]")
    for k in ("timeout_s", "kill_grace_s", "meta_timeout_s"):
        need(c.agent[k] > 0, f"agent.{k}", "must be > 0")
    for k in ("output_max_bytes", "read_max_bytes", "read_max_lines", "search_max_hits", "list_max_files",
              "excerpt_chars", "memory_max_hits", "memory_capacity", "memory_rrf_k"):
        need(c.agent[k] >= 1, f"agent.{k}", "must be >= 1")
    need(bool(c.agent.memory_file), "agent.memory_file", "must name a file")
    need(0 < c.agent.memory_merge_cosine <= 1, "agent.memory_merge_cosine", "must lie in (0, 1]")
    need(-1 <= c.agent.memory_min_cosine <= 1, "agent.memory_min_cosine", "must lie in [-1, 1]")
    for k in ("port", "max_body_bytes", "max_messages", "max_message_chars", "max_queue", "chunk"):
        need(c.serve[k] >= 1, f"serve.{k}", "must be >= 1")
    need(c.serve.max_tokens >= 0, "serve.max_tokens", "must be >= 0 (0: the brain's dec_len)")
    need(c.serve.request_timeout_s > 0, "serve.request_timeout_s", "must be > 0")
    need(c.serve.batch_window_ms >= 0, "serve.batch_window_ms", "must be >= 0")
    sizes = c.serve.batch_sizes
    need(len(sizes) > 0 and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in sizes)
         and list(sizes) == sorted(set(sizes)), "serve.batch_sizes", "must be increasing batch sizes >= 1")
    for k in ("init_timeout_s", "heartbeat_timeout_s"):
        need(c.distributed[k] >= 1, f"distributed.{k}", "must be >= 1")
    need(c.debug.check_grads_every >= 0, "debug.check_grads_every", "must be >= 0")
    need(c.debug.log_every >= 1, "debug.log_every", "must be >= 1")
    need(c.debug.stop_after_steps >= 0, "debug.stop_after_steps", "must be >= 0")
    need(c.check.batch_size >= 1, "check.batch_size", "must be >= 1")
    need(c.eval.batch_size >= 1, "eval.batch_size", "must be >= 1")
    need(c.gen.temperature >= 0, "gen.temperature", "must be >= 0")
    need(0 < c.gen.top_p <= 1, "gen.top_p", "must lie in (0, 1]")
    need(c.gen.ngram_penalty > 0, "gen.ngram_penalty", "must be > 0")
    for k in ("batch_size", "talk_eval_max"):
        need(c.gen[k] >= 1, f"gen.{k}", "must be >= 1")
    need(c.gen.gallery_sampled >= 0, "gen.gallery_sampled", "must be >= 0")
    need(c.gen.candidates >= 0, "gen.candidates", "must be >= 0 (0: no ranked replies)")
    need(c.gen.candidates == 0 or c.gen.rank_temperature >= GREEDY_BELOW, "gen.rank_temperature",
         f"must be >= {GREEDY_BELOW} when gen.candidates > 0: greedy candidates would all be the same reply")
    temperatures = c.gen.gallery_temperatures
    need(all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in temperatures),
         "gen.gallery_temperatures", "expected a tuple of numbers > 0")
    need(c.check.fd_directions >= 0, "check.fd_directions", "must be >= 0")
    need(c.data.pack_rows >= 1, "data.pack_rows", "must be >= 1")
    for phase in PHASES:
        need(c[phase].batch_size % min(c[phase].batch_size, c.data.pack_rows) == 0, f"{phase}.batch_size",
             f"must be a multiple of config.data.pack_rows={c.data.pack_rows} when larger")
    for axis in MESH_AXES:
        need(c.mesh[axis] == -1 or c.mesh[axis] >= 1, f"mesh.{axis}", "must be -1 or >= 1")
    if num_devices is not None:
        shape = mesh_shape(c, num_devices)
        data_par = shape[0] * shape[1]
        for phase in PHASES:
            need(c[phase].batch_size % data_par == 0, f"{phase}.batch_size",
                 f"must be a multiple of the data-parallel size data*fsdp={data_par}")
    if check_files:
        for key in ("data.goals_file", "data.goals_held_out"):
            need(Path(given[key]).is_file(), key, "no such file")
        need(Path(given["gen.gallery_file"]).is_file(), "gen.gallery_file", "no such file")
        held_out = given["gen.held_out_file"]
        need(not held_out or Path(held_out).is_file(), "gen.held_out_file", "no such file")
        for key in FILE_LISTS:
            for path, _ in weighted_files(given[key], key):
                if not Path(path).is_file():
                    raise ConfigError(f"config.{key}: no such file {path!r}")


def weighted_files(spec: str, key: str = "data.talk_files") -> list[tuple[str, float]]:
    """Parse `path[:weight],path[:weight]` (the value of config.<key>, one of FILE_LISTS) into
    (path, weight) pairs."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        path, _, weight = part.rpartition(":") if _has_weight(part) else (part, "", "1")
        try:
            w = float(weight)
        except ValueError:
            raise ConfigError(f"config.{key}: bad weight in {part!r}") from None
        if w <= 0:
            raise ConfigError(f"config.{key}: weight must be > 0 in {part!r}")
        out.append((path, w))
    if not out and not FILE_LISTS[key]:
        raise ConfigError(f"config.{key}: no file given")
    return out


def _has_weight(part: str) -> bool:
    head, sep, tail = part.rpartition(":")
    return bool(sep) and bool(head) and tail.replace(".", "", 1).replace("-", "", 1).isdigit()
