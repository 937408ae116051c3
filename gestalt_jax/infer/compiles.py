"""Counting XLA compilations, to check that a run compiles each decode shape once."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

import jax

_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def counted() -> Iterator[collections.Counter]:
    """Within the block, the yielded Counter counts the programs compiled, by name ("jit(f)")."""
    counts = collections.Counter()

    def listen(event: str, duration: float, **kwargs) -> None:
        if event == _BACKEND_COMPILE:
            counts[kwargs.get("fun_name", "?")] += 1

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
