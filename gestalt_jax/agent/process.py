"""Running one command: argv only, no stdin, its own session, output read as it comes and capped,
and a timeout that ends its whole process tree (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import threading
import time
from typing import Mapping, Sequence

_CHUNK = 1 << 16


@dataclasses.dataclass
class Completed:
    """What a command did. `output` is stdout and stderr interleaved as written, cut to the first
    and last halves of the cap when longer (`dropped` bytes left out between them)."""
    argv: list[str]
    returncode: int
    output: str
    dropped: int
    seconds: float
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class _CappedReader(threading.Thread):
    """Drains a pipe so the writer never blocks on a full one; keeps head and tail."""

    def __init__(self, fd: int, cap: int):
        super().__init__(daemon=True)
        self.fd, self.half = fd, max(1, cap // 2)
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_len = self.total = 0

    def run(self) -> None:
        while chunk := os.read(self.fd, _CHUNK):
            self.total += len(chunk)
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail.append(chunk)
                self.tail_len += len(chunk)
                while self.tail_len - len(self.tail[0]) >= self.half:
                    self.tail_len -= len(self.tail.popleft())

    def result(self) -> tuple[str, int]:
        tail = b"".join(self.tail)[-self.half:] if self.tail else b""
        dropped = self.total - len(self.head) - len(tail)
        text = self.head.decode("utf-8", "replace")
        if dropped:
            text += f"\n[... {dropped} bytes of output left out ...]\n"
        return text + tail.decode("utf-8", "replace"), dropped


def run(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], timeout_s: float, kill_grace_s: float,
        output_max_bytes: int) -> Completed:
    """Run argv (a list, never a shell string) to completion or timeout."""
    if isinstance(argv, str) or not argv:
        raise TypeError(f"argv must be a non-empty list of strings, got {argv!r}")
    start = time.monotonic()
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=write_fd, stderr=write_fd, start_new_session=True, close_fds=True)
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    reader = _CappedReader(read_fd, output_max_bytes)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=kill_grace_s + 5.0)  # the launcher kills its tree within the grace
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)  # anything left in its session
    reader.join(timeout=5.0)
    if not reader.is_alive():  # else a descendant outside our reach holds the pipe: leave the fd
        os.close(read_fd)
    output, dropped = reader.result()
    return Completed(list(argv), proc.returncode, output, dropped, time.monotonic() - start, timed_out)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
