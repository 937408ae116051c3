"""The sandbox the tools run in, in layers:

1. paths: every path is confined to the workspace in Python (agent/paths.py);
2. processes: argv lists, a scrubbed environment, no stdin, their own session, a timeout that
   kills the whole tree, capped output (agent/process.py), and an exec launcher that reaps every
   descendant (agent/launcher.py);
3. Landlock, where the kernel has it: writes only to the command's private temporary directory
   (and the workspace with --allow_writes), no TCP;
4. bubblewrap, where it runs (user namespaces may be off): a read-only root, the workspace bound
   read-only (read-write with --allow_writes), no network, a new PID namespace whose processes all
   die with it, and an unprivileged uid.

A layer that cannot run is named in `missing()` and in every result of a subprocess tool; the
other layers still apply.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import ml_collections

from gestalt_jax.agent import launcher, paths, process

LAUNCHER = Path(launcher.__file__).resolve()
NOBODY = "65534"


class WritesRefused(PermissionError):
    """A write the user has not allowed (--allow_writes)."""


@functools.cache
def _bwrap_probe(bwrap: str) -> str:
    """"" when bubblewrap can build our sandbox on this machine, else why not."""
    with tempfile.TemporaryDirectory() as d:
        argv = _bwrap_argv(bwrap, Path(d), Path(d), Path(d), writable=True) + ["true"]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{bwrap} did not start: {e}"
    if done.returncode:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{bwrap} cannot build the sandbox here ({err[-1] if err else f'exit {done.returncode}'})"
    return ""


def _bwrap_argv(bwrap: str, root: Path, cwd: Path, tmp: Path, writable: bool,
                extra_writable: Sequence[Path] = ()) -> list[str]:
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--bind" if writable else "--ro-bind", str(root), str(root),
            "--bind", str(tmp), str(tmp)]
    for path in extra_writable:
        argv += ["--bind", str(path), str(path)]
    return argv + ["--unshare-all", "--unshare-user", "--uid", NOBODY, "--gid", NOBODY,
                   "--die-with-parent", "--new-session", "--chdir", str(cwd), "--"]


class Sandbox:
    """One workspace and what the tools may do in it."""

    def __init__(self, workspace: str | os.PathLike, agent: ml_collections.ConfigDict, *,
                 allow_writes: bool = False, allow_meta: bool = False):
        self.root = paths.workspace_root(workspace)
        self.config = agent
        self.allow_writes, self.allow_meta = allow_writes, allow_meta
        bwrap = shutil.which("bwrap") if agent.bubblewrap else None
        if not agent.bubblewrap:
            self._bwrap, self._bwrap_missing = None, "off (config.agent.bubblewrap=False)"
        elif not bwrap:
            self._bwrap, self._bwrap_missing = None, "not installed (Debian/Ubuntu: apt install bubblewrap)"
        else:
            reason = _bwrap_probe(bwrap)
            self._bwrap, self._bwrap_missing = (None, reason) if reason else (bwrap, "")
        abi = launcher.landlock_abi() if agent.landlock else 0
        self.landlock_abi = abi
        if not agent.landlock:
            self._landlock_missing = "off (config.agent.landlock=False)"
        elif not abi:
            self._landlock_missing = "not available in this kernel"
        elif abi < 4:
            self._landlock_missing = f"ABI {abi} restricts writes but not TCP (needs ABI 4)"
        else:
            self._landlock_missing = ""

    # -- paths ---------------------------------------------------------------------------------
    def path(self, path: str, *, must_exist: bool = True) -> Path:
        """Workspace-relative `path` resolved and confined (paths.PathRefused otherwise)."""
        return paths.confine(self.root, path, must_exist=must_exist)

    def rel(self, path: Path) -> str:
        return paths.relative(self.root, path)

    def require_writes(self, what: str) -> None:
        if not self.allow_writes:
            raise WritesRefused(f"{what} writes to the workspace; refused without --allow_writes")

    # -- layers --------------------------------------------------------------------------------
    @property
    def bubblewrap(self) -> bool:
        return self._bwrap is not None

    def missing(self) -> list[str]:
        """One line per layer that is not protecting subprocesses here."""
        out = []
        if self._bwrap_missing:
            out.append(f"bubblewrap layer missing: {self._bwrap_missing}")
        if self._landlock_missing:
            out.append(f"landlock layer missing: {self._landlock_missing}")
        return out

    def layers(self) -> dict[str, str]:
        return {"paths": "on", "process": "on",
                "landlock": "on" if not self._landlock_missing else self._landlock_missing,
                "bubblewrap": "on" if self.bubblewrap else self._bwrap_missing}

    # -- processes -----------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, cwd: str = ".", timeout_s: float | None = None,
            writes: bool = False, extra_writable: Sequence[Path] = (),
            env: dict[str, str] | None = None) -> process.Completed:
        """Run argv in the sandbox with cwd a workspace directory. `writes`: the command must be
        able to write to the workspace (WritesRefused without --allow_writes). `extra_writable`:
        directories outside the workspace it may write to (the meta tools' workdir)."""
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError(f"argv must be a non-empty list of strings (never a shell string), got {argv!r}")
        if writes:
            self.require_writes(" ".join(argv[:2]))
        cwd_path = self.path(cwd)
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="gestalt-tool-") as tmp_name:
            tmp = Path(tmp_name).resolve()
            writable = [tmp] + ([self.root] if self.allow_writes else []) + [Path(p) for p in extra_writable]
            spec = dict(kill_grace_s=cfg.kill_grace_s, rlimits={"RLIMIT_CORE": 0},
                        landlock_abi=self.landlock_abi,
                        writable=[str(p) for p in writable] + ["/dev/null"])
            inner = [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec), "--", *argv]
            if self.bubblewrap:
                inner = _bwrap_argv(self._bwrap, self.root, cwd_path, tmp, self.allow_writes,
                                    [Path(p) for p in extra_writable]) + inner
            return process.run(inner, cwd=str(cwd_path), env=scrubbed_env(tmp, env),
                               timeout_s=timeout_s or cfg.timeout_s, kill_grace_s=cfg.kill_grace_s,
                               output_max_bytes=cfg.output_max_bytes)


def scrubbed_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Only what a build or test needs: nothing of the user's environment (tokens, keys, proxies)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    env = dict(PATH=path, HOME=str(tmp), TMPDIR=str(tmp), LANG="C.UTF-8", LC_ALL="C.UTF-8",
               TERM="dumb", NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
               CARGO_TARGET_DIR=str(tmp / "cargo-target"), GOCACHE=str(tmp / "go-cache"),
               npm_config_cache=str(tmp / "npm-cache"))
    env.update(extra or {})
    return env
