"""What every tool takes and returns.

A tool is `fn(ctx, args) -> Result`. `args` holds the tool's arguments (labels.TOOL_ARGS) as
concrete strings: the executor has already resolved `{"from": k, "pick": n}` against the
results of earlier steps with `Result.pick`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import ml_collections

from gestalt_jax.agent.sandbox import Sandbox

OK, FAILED, ERROR = "ok", "failed", "error"
STATUSES = (OK, FAILED, ERROR)


def shorten(text: str, chars: int) -> str:
    """`text` on one line (whitespace runs made one space), cut to `chars` with "..." when longer."""
    text = " ".join(text.split())
    return text if len(text) <= chars else text[:chars - 3] + "..."


class ToolError(Exception):
    """The tool could not do its job (bad argument, missing program, refused); the message says
    what to do."""


@dataclasses.dataclass
class Item:
    """One thing a tool found: a hit, a line, a file, a failing test, a memory. `path` and `line`
    when it has a place in the workspace."""
    text: str
    path: str | None = None
    line: int | None = None

    def value(self, arg: str) -> str:
        """What `FROM k PICK n` passes to a later step's argument `arg`: a path argument takes the
        item's path, any other argument its text."""
        if arg == "path" and self.path is not None:
            return self.path
        return self.text

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def shown(self) -> str:
        """One line for people: `path:line: text` (text alone when it already starts so)."""
        place = f"{self.path}:{self.line}: " if self.path and self.line else ""
        return self.text if self.text.startswith(place) else place + self.text


@dataclasses.dataclass
class Result:
    """status: ok (done; a check that found problems says so in `failed`), failed (the thing
    checked fails: tests, build, identity, links), error (the tool could not run).
    items: what later steps can pick from. excerpt: raw output, cut to config.agent.excerpt_chars."""
    tool: str
    status: str
    summary: str
    items: list[Item] = dataclasses.field(default_factory=list)
    excerpt: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0      # wall time of the step (set by the executor)

    def pick(self, n: int, arg: str) -> str:
        """The n-th item (1-based) as the value of argument `arg`; ToolError when there is none."""
        if not 1 <= n <= len(self.items):
            raise ToolError(f"PICK {n}: {self.tool} found {len(self.items)} item(s)")
        return self.items[n - 1].value(arg)

    def to_json(self) -> dict:
        return dict(tool=self.tool, status=self.status, summary=self.summary,
                    items=[i.to_json() for i in self.items], excerpt=self.excerpt, data=self.data,
                    seconds=round(self.seconds, 3))


@dataclasses.dataclass
class Context:
    """What tools work with: the sandboxed workspace, the config, the run's workdir (memory, meta
    tools, the trained brain) and the goal being worked on (TALK answers it)."""
    sandbox: Sandbox
    config: ml_collections.ConfigDict
    workdir: Path
    goal: str = ""
    config_file: str = ""     # the --config the run was started with (meta tools pass it on)
    services: dict[str, Any] = dataclasses.field(default_factory=dict)  # lazily built (memory, brain)

    @property
    def agent(self) -> ml_collections.ConfigDict:
        return self.config.agent

    def excerpt(self, text: str) -> str:
        cap = self.agent.excerpt_chars
        if len(text) <= cap:
            return text
        half = cap // 2
        return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


ToolFn = Callable[[Context, dict[str, str]], Result]
