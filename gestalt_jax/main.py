"""The gestalt command line: one absl app, the command as the first positional argument.

    gestalt [train|eval|gallery|run|memory|serve|check] --config=configs/<tier>.py [--config.sft.lr=1e-4]
"""

from __future__ import annotations

import _thread
import io
import os
import sys
import threading
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from gestalt_jax import config as config_lib
from gestalt_jax import huge_pages

COMMANDS = ("train", "eval", "gallery", "run", "memory", "serve", "check")

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(config_lib.REPO_ROOT / "configs" / "small.py"),
    "Tier config file (configs/test.py, small.py, default.py, phase2.py); override any key "
    "with --config.<key>=<value>.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<tier>).")
_PHASES = flags.DEFINE_string("phases", "tokenizer,brain,planner,policy",
                              "train: comma-separated subset of tokenizer,brain,planner,policy; planner.<k> "
                              "(policy.<k>) trains member k of an ensemble alone.")
_RESUME = flags.DEFINE_bool("resume", False, "train: continue every phase from its latest checkpoint.")
_CPUS = flags.DEFINE_string("cpus", None, "Run on these CPU cores only, e.g. 0,1 or 0-3 (Linux): the process "
                            "and the threads XLA starts. `gestalt train` gives its side-by-side processes "
                            "half the cores each with it (config.parallel_phases).")
_BENCH = flags.DEFINE_multi_string(
    "bench", [], "eval: a goals file in the bench format (datasets/goals/README.md); repeatable.")
_JSON = flags.DEFINE_bool("json", False, "eval: end stdout with one line holding every score as JSON "
                          "(goal benches by name, talk metrics under \"talk\"); run: print the run as "
                          "one JSON object instead of the step-by-step report.")
_PLAN = flags.DEFINE_string("plan", None, "run: execute this plan (a JSON file, or - for stdin): "
                            '[{"tool": "SEARCH", "args": {"pattern": "x"}}, {"tool": "READ_FILE", '
                            '"args": {"path": {"from": 1, "pick": 1}}}].')
_WORKSPACE = flags.DEFINE_string("workspace", ".", "run: the directory the tools work in; nothing outside it "
                                 "is read, written or run.")
_ALLOW_WRITES = flags.DEFINE_bool("allow_writes", False, "run: let tools and the commands they start write "
                                  "to the workspace (off: it is read-only to them).")
_HOST = flags.DEFINE_string("host", None, "serve: address to listen on (default config.serve.host, loopback); "
                            "any other address needs --api_key.")
_PORT = flags.DEFINE_integer("port", None, "serve: port (default config.serve.port).")
_API_KEY = flags.DEFINE_string("api_key", None, "serve: require 'Authorization: Bearer <key>' on /v1/ (default: "
                               "the GESTALT_API_KEY environment variable, else none).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "run: decide and print the plan for the goal without running it.")
_ALLOW_META = flags.DEFINE_bool("allow_meta", False, "run: allow EVAL and TRAIN (gestalt itself, in a "
                                "subprocess writing to --workdir).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "Multi-process: host:port of process 0; with --num_processes and --process_id.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: how many processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this process's index.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-process with the cluster detected by JAX (SLURM, TPU pods, ...).")


def _check(c, workdir: str) -> int:
    from gestalt_jax import check  # jax-heavy: imported only by the commands that need it
    return check.run(c)


def _train(c, workdir: str) -> int:
    from gestalt_jax import pipeline
    from gestalt_jax.train import loop
    from gestalt_jax.train.checkpoint import CheckpointError
    try:
        chosen = pipeline.parse_phases(_PHASES.value)
        if cores := pipeline.side_by_side_cores(c, chosen):
            return pipeline.train_side_by_side(c, workdir, chosen, _RESUME.value, cores)
        pipeline.train(c, workdir, _PHASES.value, _RESUME.value)
    except (loop.TrainingError, CheckpointError, FileNotFoundError, ValueError) as e:  # ValueError: DataError too
        print(f"gestalt train: {e}", file=sys.stderr)
        return 1
    return 0


def _trained(workdir: str, component: str) -> bool:
    from gestalt_jax.train import checkpoint
    return (Path(workdir) / "checkpoints" / config_lib.PHASE_OF[component] / checkpoint.BEST).is_dir()


def _eval(c, workdir: str) -> int:
    """Talk metrics when the brain is trained, goal benches when the planner or policy is (or a
    --bench asks for them); exit 1 when neither is."""
    import json

    from gestalt_jax.data.examples import DataError
    from gestalt_jax.evals import bench, talk
    from gestalt_jax.train.checkpoint import CheckpointError
    goals = bool(_BENCH.value) or _trained(workdir, "planner") or _trained(workdir, "policy")
    brain = _trained(workdir, "brain")
    if not goals and not brain:
        checkpoints = Path(workdir) / "checkpoints"
        missing = ", ".join(f"no trained {name} in {checkpoints / config_lib.PHASE_OF[name]}"
                            for name in ("brain", "planner", "policy"))
        print(f"gestalt eval: {missing}: run `gestalt train` with this --config and --workdir first",
              file=sys.stderr)
        return 1
    scores = {}
    try:
        if goals:
            keys = ("n",) + bench.JSON_METRICS
            results = bench.evaluate(c, workdir, _BENCH.value)
            scores.update({name: {k: m[k] for k in keys} for name, m in results.items()})
        if brain:
            scores["talk"] = talk.evaluate(c, workdir)
    except (FileNotFoundError, DataError, CheckpointError) as e:
        print(f"gestalt eval: {e}", file=sys.stderr)
        return 1
    if _JSON.value:
        print(json.dumps(scores))
    return 0


def _gallery(c, workdir: str) -> int:
    from gestalt_jax.data.examples import DataError
    from gestalt_jax.evals import gallery
    from gestalt_jax.train.checkpoint import CheckpointError
    try:
        gallery.run(c, workdir)
    except (FileNotFoundError, DataError, CheckpointError) as e:
        print(f"gestalt gallery: {e}", file=sys.stderr)
        return 1
    return 0


def _run(c, workdir: str, goal: str | None = None) -> int:
    """`gestalt run --plan=FILE [goal]`, `gestalt run "<goal>"`, or the interactive session."""
    from gestalt_jax.agent import cli
    options = cli.Options(plan=_PLAN.value, workspace=_WORKSPACE.value, allow_writes=_ALLOW_WRITES.value,
                          allow_meta=_ALLOW_META.value, json=_JSON.value, dry_run=_DRY_RUN.value,
                          config_file=flags.FLAGS["config"].config_filename)
    return cli.run(c, Path(workdir), goal, options)


def _serve(c, workdir: str) -> int:
    import os

    from gestalt_jax.agent import server
    return server.serve(c, Path(workdir), host=_HOST.value or c.serve.host, port=_PORT.value or c.serve.port,
                        api_key=_API_KEY.value or os.environ.get("GESTALT_API_KEY") or None,
                        workspace=_WORKSPACE.value, allow_writes=_ALLOW_WRITES.value, allow_meta=_ALLOW_META.value,
                        config_file=flags.FLAGS["config"].config_filename)


def _memory(c, workdir: str, *args: str) -> int:
    """`gestalt memory list|search|forget`; search ranks by the trained brain's concepts too, when there is one."""
    from gestalt_jax.agent import memory_cli
    concept = None
    if args[:1] == ("search",):
        from gestalt_jax.infer import trained
        if trained.is_trained(workdir, "brain"):
            concept = trained.load(c, workdir, "brain").concept
    return memory_cli.run(c, Path(workdir), list(args), concept)


HANDLERS = {"check": _check, "train": _train, "eval": _eval, "gallery": _gallery, "run": _run, "memory": _memory,
            "serve": _serve}


def _whole_lines() -> None:
    """Every line this process prints leaves in one write. Under PYTHONUNBUFFERED=1 (common in
    containers and CI) Python writes a print's text and its newline separately, and the lines of
    the two processes of side-by-side training, on one terminal or pipe, interleaved mid-line."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True, write_through=False)


def main(argv: list[str]) -> int:
    _whole_lines()
    if not flags.FLAGS["verbosity"].present:  # library INFO chatter hides progress; --verbosity=0 shows it
        logging.set_verbosity(logging.WARNING)
    args = argv[1:]
    command = args[0] if args else "train"
    most = {"run": 2, "memory": 3}.get(command, 1)  # run "<goal>"; memory search "<text>"
    if len(args) > most:
        raise app.UsageError(f"expected one command, got {' '.join(args)!r}; commands: {', '.join(COMMANDS)}"
                             + {"run": "; run takes one goal: quote it",
                                "memory": "; memory search takes one text: quote it"}.get(command, ""))
    if command not in COMMANDS:
        raise app.UsageError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    c = _CONFIG.value
    if c.huge_pages:
        huge_pages.rerun()
    if _CPUS.value is not None:  # before jax starts the threads of its CPU devices
        try:
            _pin(_CPUS.value)
        except ValueError as e:
            print(f"gestalt: --cpus={_CPUS.value}: {e}", file=sys.stderr)
            return 2
        # On stderr: stdout may be a command's JSON (run --json, eval --json).
        print(f"[cpus] this process runs on core(s) {','.join(map(str, sorted(os.sched_getaffinity(0))))}",
              file=sys.stderr, flush=True)
    import jax
    if c.compile_cache:
        jax.config.update("jax_compilation_cache_dir", str(Path(c.compile_cache).expanduser()))
    if _COORDINATOR.value or _DISTRIBUTED.value:  # before anything touches the devices
        timeout = c.distributed.init_timeout_s
        if _COORDINATOR.value and _PROCESS_ID.value and not _reachable(_COORDINATOR.value, timeout):
            # JAX would abort the process with a gRPC deadline that names no address.
            print(f"gestalt: the coordinator {_COORDINATOR.value} did not answer within {timeout} s "
                  f"(config.distributed.init_timeout_s): is process 0 running there?", file=sys.stderr)
            return 1
        # A process without heartbeats for heartbeat_timeout_s ends the others (JAX's "another task
        # died"), instead of leaving them waiting in a collective.
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                   initialization_timeout=timeout,
                                   heartbeat_timeout_seconds=c.distributed.heartbeat_timeout_s)
        print(f"[distributed] process {jax.process_index()} of {jax.process_count()}: "
              f"{jax.local_device_count()} local device(s), {jax.device_count()} in all", flush=True)
    try:
        config_lib.validate(c, num_devices=jax.device_count())
    except config_lib.ConfigError as e:
        print(f"gestalt: invalid config {flags.FLAGS['config'].config_filename}: {e}", file=sys.stderr)
        return 2
    workdir = _WORKDIR.value or f"runs/{c.tier}"
    return HANDLERS[command](c, workdir, *args[1:])


def _pin(spec: str) -> None:
    """Pin this process to the cores in `spec` ("0,2", "0-3"); ValueError saying why it cannot."""
    cores = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"{part!r} is not a core number or a range of them (0-3)")
        cores.update(range(int(first), int(last or first) + 1))
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("this platform cannot pin a process to cores")
    allowed = os.sched_getaffinity(0)
    if not cores or not cores <= allowed:
        raise ValueError(f"core(s) {sorted(cores - allowed) or 'none'} not among the ones this process may use "
                         f"({','.join(map(str, sorted(allowed)))})")
    os.sched_setaffinity(0, cores)


def _reachable(address: str, timeout_s: float) -> bool:
    """Whether host:port accepts a TCP connection within timeout_s (retried while process 0 starts)."""
    import socket
    import time
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            return True
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)


def keep_ctrl_c(unraisable) -> None:
    """sys.unraisablehook: a Ctrl-C that lands while Python runs a callback whose exceptions it can only
    print and drop (XLA's garbage-collection callback is one) is raised again in the main thread, where
    it stops the command as any other Ctrl-C does; everything else goes to the default hook. Raised
    from a thread a moment later: raised now, it would land in this hook and be dropped again. The
    thread is a daemon: a command that ends first does not wait for it."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        again = threading.Timer(0.1, _thread.interrupt_main)
        again.daemon = True
        again.start()
        return
    sys.__unraisablehook__(unraisable)


def run() -> None:
    """Console-script entry point (`gestalt`)."""
    sys.unraisablehook = keep_ctrl_c
    try:
        app.run(main)
    except KeyboardInterrupt:
        # Ctrl-C: one line, not a traceback. By now every save in flight is on disk (a phase waits
        # for its saves as it unwinds). The process then ends at once: tearing the interpreter down
        # with XLA's threads running sometimes ended in a segmentation fault.
        print("gestalt: stopped (Ctrl-C); `gestalt train --resume` continues a training from its latest "
              "checkpoint", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)


if __name__ == "__main__":
    run()
