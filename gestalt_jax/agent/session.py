"""`gestalt run` with no goal: an interactive session. Each line is a goal run as `gestalt run "<goal>"`
runs it (and remembered as an episode); line editing and a history kept in the workdir, so both the
lines and the episodes outlive the session.

    /memory [text]   the latest episodes, or those recalled for text
    /history         this session's turns (goal -> first line of the answer)
    /plan <goal>     what would run, without running it
    /clear           forget this session's turns (the episodes stay remembered)
    /quit            end (or Ctrl-D); Ctrl-C stops the current goal
"""

from __future__ import annotations

import sys

HISTORY_FILE = "run_history"
COMMANDS = ("/memory", "/history", "/plan", "/clear", "/quit", "/help")
LIST = 10  # episodes /memory shows


def _readline(history):
    """readline (line editing, history) when this Python has it; None elsewhere."""
    try:
        import readline
    except ImportError:
        return None
    try:
        readline.read_history_file(history)
    except OSError:
        pass
    readline.set_history_length(1000)
    return readline


def run(agent, sandbox, options) -> int:
    from gestalt_jax.agent import cli
    history = agent.workdir / HISTORY_FILE
    rl = _readline(str(history)) if sys.stdin.isatty() else None
    turns: list[tuple[str, str]] = []
    print(f"[run] session on {sandbox.root}: type a goal, or {', '.join(COMMANDS)}", flush=True)
    try:
        while True:
            try:
                line = input("gestalt> ").strip()
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                continue
            if not line:
                continue
            if line.startswith("/"):
                command, _, rest = line.partition(" ")
                if command == "/quit":
                    return 0
                _command(agent, sandbox, options, command, rest.strip(), turns)
                continue
            progress = cli.Progress(brief=True)
            try:
                out = agent.run(line, sandbox, config_file=options.config_file, on_decided=progress.decided,
                                on_start=progress.start, on_result=progress.done)
            except KeyboardInterrupt:
                print("\n[run] stopped")
                continue
            print(f"\n{out['response']}\n")
            if out["episode_id"] is not None:
                print(f"[run] remembered as episode #{out['episode_id']}")
            turns.append((line, out["response"].splitlines()[0] if out["response"] else ""))
    finally:
        if rl is not None:
            rl.write_history_file(str(history))


def _command(agent, sandbox, options, command: str, rest: str, turns: list) -> None:
    from gestalt_jax.agent import cli, memory_cli
    if command == "/memory":
        if rest:
            concept, brain = agent.brain.concept(rest)
            hits = agent.memory.search(rest, concept=concept, brain=brain, k=agent.config.agent.memory_max_hits)
            episodes = [h.episode for h in hits]
        else:
            episodes = agent.memory.list(LIST)
        for e in episodes:
            print(f"  #{e.id}  {memory_cli.describe(e)}")
        if not episodes:
            print("  (nothing remembered)" if not rest else f"  (nothing recalled for {rest!r})")
    elif command == "/history":
        for i, (goal, first) in enumerate(turns, 1):
            print(f"  {i}. {goal}  ->  {first}")
        if not turns:
            print("  (no turns yet in this session)")
    elif command == "/plan":
        if not rest:
            print("  /plan <goal>")
            return
        out = agent.run(rest, sandbox, config_file=options.config_file, dry_run=True, on_decided=cli.say_decided)
        print(f"  {out['response']}")
    elif command == "/clear":
        turns.clear()
        print("  (this session's turns cleared; remembered episodes stay: /memory)")
    else:
        print(__doc__.split("\n\n", 1)[1].rstrip())
