"""The first layer of the sandbox: every path a tool touches is resolved and confined in Python.

A path argument is relative to the workspace. Refused, with a message naming the path: absolute
paths, any `..` component, NUL bytes, and symlinks whose target leaves the workspace, whether the
symlink is the last component, an intermediate directory, or dangling.
"""

from __future__ import annotations

import os
from pathlib import Path


class PathRefused(ValueError):
    """A path a tool may not touch; the message names it and says why."""


def workspace_root(directory: str | os.PathLike) -> Path:
    """The workspace as an absolute, symlink-free directory."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"workspace {str(root)!r} is not a directory")
    return root.resolve(strict=True)


def confine(root: Path, path: str, *, must_exist: bool = True) -> Path:
    """The absolute, resolved form of workspace-relative `path`, known to lie inside `root`.

    Every symlink on the way is followed (os.path.realpath), so a link anywhere in the path that
    points out, or a dangling link whose target would lie out, is refused; so is a path that does
    not exist when `must_exist`.
    """
    if not isinstance(path, str) or not path.strip():
        raise PathRefused(f"path {path!r}: expected a non-empty path relative to the workspace")
    if "\0" in path:
        raise PathRefused(f"path {path!r}: contains a NUL byte")
    if os.path.isabs(path) or path.startswith("~"):
        raise PathRefused(f"path {path!r}: absolute paths are refused; give a path inside the workspace")
    parts = Path(path).parts
    if ".." in parts:
        raise PathRefused(f"path {path!r}: '..' is refused; give a path inside the workspace")
    joined = root / path
    resolved = Path(os.path.realpath(joined))
    if resolved != root and not resolved.is_relative_to(root):
        raise PathRefused(f"path {path!r}: a symlink on it leads out of the workspace (to {str(resolved)!r})")
    if must_exist and not os.path.lexists(joined):
        raise PathRefused(f"path {path!r}: no such file or directory in the workspace")
    if must_exist and not resolved.exists():
        raise PathRefused(f"path {path!r}: a dangling symlink (its target {str(resolved)!r} does not exist)")
    return resolved


def relative(root: Path, path: Path) -> str:
    """`path` as the workspace-relative string tools report ("." for the root)."""
    rel = Path(path).relative_to(root)
    return rel.as_posix() if rel.parts else "."
