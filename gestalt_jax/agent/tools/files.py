"""The workspace's files: SEARCH, LIST_FILES, READ_FILE, PATCH_DRY_RUN.

Every path argument is confined by the sandbox (a refused one is a ToolError naming it) and every
program runs through `ctx.sandbox.run`. SEARCH uses ripgrep when it is installed and a Python walk
otherwise; both honour .gitignore files, skip hidden and binary files, never follow symlinks and
return the same items in the same order, so a plan ("search X, then read the first hit") behaves
the same on every machine. Items that name a file carry its workspace-relative path (and line).
"""

from __future__ import annotations

import base64
import codecs
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pathspec

from gestalt_jax.agent import paths, process
from gestalt_jax.agent.tools.base import ERROR, FAILED, OK, Context, Item, Result, ToolError

RG_BUFFER = 64 << 10
"""ripgrep reads a file in buffers of this size and stops, unsearched, at the first buffer holding
a NUL byte: a NUL in the first one makes the file binary (skipped). READ_FILE uses the same test,
so the two tools agree on what is text."""
LINE_CHARS = 300  # a SEARCH item's text is cut here (minified files have lines of megabytes)


def _order(path: str) -> list[str]:
    """Sort key: by path component, as ripgrep's --sort path and a directory walk order them."""
    return path.split("/")


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _program(name: str) -> str | None:
    """`name` on PATH or beside this Python (the ripgrep wheel installs rg into the venv's bin)."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    return shutil.which(name, path=search_path)


def _confine(ctx: Context, path: str) -> Path:
    try:
        return ctx.sandbox.path(path)
    except paths.PathRefused as e:
        raise ToolError(str(e)) from None


def _need_path(tool: str, args: dict[str, str]) -> str:
    path = (args.get("path") or "").strip()
    if not path:
        raise ToolError(f"{tool} needs a path: a file relative to the workspace (LIST_FILES shows them)")
    return path


def _run(ctx: Context, tool: str, argv: list[str], data: dict, cwd: str = ".") -> process.Completed | Result:
    """argv run in the sandbox, or the ERROR Result saying it timed out. Notes in `data` which
    sandbox layers were missing."""
    data["sandbox_missing"] = ctx.sandbox.missing()
    done = ctx.sandbox.run(argv, cwd=cwd, timeout_s=ctx.agent.timeout_s)
    if done.timed_out:
        summary = f"{tool}: {Path(argv[0]).name} timed out after {ctx.agent.timeout_s:g} s (agent.timeout_s)"
        return Result(tool, ERROR, summary, excerpt=ctx.excerpt(done.output), data=data)
    return done


def _head_tail(done: process.Completed) -> tuple[str, str]:
    """A command's output before and after the gap process.run cuts out of output longer than
    agent.output_max_bytes (tail "" when nothing was cut)."""
    if not done.dropped:
        return done.output, ""
    head, _, tail = done.output.partition(f"\n[... {done.dropped} bytes of output left out ...]\n")
    return head, tail


def _git_top(directory: Path) -> Path | None:
    """The work tree `directory` lies in (the nearest ancestor holding .git), if any."""
    return next((d for d in (directory, *directory.parents) if (d / ".git").exists()), None)


def _text_bytes(raw: bytes) -> bytes:
    """The bytes ripgrep searches: a UTF-8 BOM dropped, UTF-16 with a BOM transcoded to UTF-8."""
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return raw.decode("utf-16", "replace").encode()
    return raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw


# -- the walk SEARCH's fallback and LIST_FILES outside git share --------------------------------
def walk(root: Path, start: Path | None = None) -> Iterator[str]:
    """Workspace-relative paths of the regular files under `start` (default: the workspace), in
    path order, as ripgrep would visit them: .gitignore files (each applying to its directory, the
    deeper one winning) and the root's .git/info/exclude honoured, hidden names and symlinks
    skipped (so a link never leads the walk out of the workspace), ignored directories not entered."""
    start = start or root
    exclude = root / ".git" / "info" / "exclude"
    stack = [("", _spec(exclude))] if exclude.is_file() else []
    parent = root
    for part in start.relative_to(root).parts:  # the ignore files above `start` apply to it too
        stack += _gitignore(root, parent)
        parent = parent / part
    yield from _walk(root, start, stack)


def _spec(file: Path) -> pathspec.GitIgnoreSpec:
    """An ignore file's patterns; a line git cannot parse (a lone backslash) is skipped, as git
    and ripgrep skip it, instead of failing the whole walk."""
    lines = file.read_text("utf-8", "replace").splitlines()
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError:
        return pathspec.GitIgnoreSpec.from_lines([line for line in lines if _parses(line)])


def _parses(line: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([line])
    except ValueError:
        return False
    return True


def _gitignore(root: Path, directory: Path) -> list[tuple[str, pathspec.GitIgnoreSpec]]:
    file = directory / ".gitignore"
    if not file.is_file() or file.is_symlink():
        return []
    rel = paths.relative(root, directory)
    return [("" if rel == "." else rel + "/", _spec(file))]


def _ignored(stack: list[tuple[str, pathspec.GitIgnoreSpec]], rel: str) -> bool:
    """Whether `rel` (a directory ends in "/") is ignored: the deepest .gitignore with a matching
    pattern decides, its last matching pattern winning (so `!keep.log` re-includes)."""
    for prefix, spec in reversed(stack):
        verdict = spec.check_file(rel[len(prefix):]).include
        if verdict is not None:
            return verdict
    return False


def _walk(root: Path, directory: Path, stack: list) -> Iterator[str]:
    stack = stack + _gitignore(root, directory)
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:  # unreadable: ripgrep skips it too
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        rel = paths.relative(root, Path(entry.path))
        # follow_symlinks=False: a symlink is neither, so it is skipped wherever it points.
        if entry.is_dir(follow_symlinks=False):
            if not _ignored(stack, rel + "/"):
                yield from _walk(root, Path(entry.path), stack)
        elif entry.is_file(follow_symlinks=False) and not _ignored(stack, rel):
            yield rel


# -- SEARCH --------------------------------------------------------------------------------------
def search(ctx: Context, args: dict[str, str], backend: str | None = None) -> Result:
    """Lines holding `pattern` as a literal string, case-insensitive when it has no capital letter
    (like `rg -F -S`). `backend`: "ripgrep" or "python"; None takes ripgrep when installed."""
    pattern = args.get("pattern") or ""
    if not pattern.strip():
        raise ToolError("SEARCH needs a pattern: the text to look for")
    if "\n" in pattern or "\r" in pattern:
        raise ToolError("SEARCH matches within one line; give a pattern without line breaks")
    if backend not in (None, "ripgrep", "python"):
        raise ValueError(f"backend {backend!r}: expected 'ripgrep', 'python' or None")
    rg = _program("rg") if backend != "python" else None
    if backend == "ripgrep" and not rg:
        raise ToolError("ripgrep (rg) is not installed: pip install ripgrep, or apt install ripgrep")
    data: dict = {"pattern": pattern, "backend": "ripgrep" if rg else "python"}
    if rg:
        found = _rg_hits(ctx, rg, pattern, data)
        if isinstance(found, Result):
            return found
        hits, total, files, excerpt = found
    else:
        hits, excerpt = _python_hits(ctx.sandbox.root, pattern), ""
        total, files = len(hits), len({path for path, _, _ in hits})
    hits.sort(key=lambda h: (_order(h[0]), h[1]))
    items = [Item(text.strip()[:LINE_CHARS], path=path, line=line)
             for path, line, text in hits[:ctx.agent.search_max_hits]]
    data.update(total_hits=total, files=files)
    if not total:
        summary = f"no hits for {pattern!r}"
    else:
        summary = f"{_n(total, 'hit')} in {_n(files, 'file')}"
        if total > len(items):
            summary += f" (first {len(items)} shown)"
    return Result("SEARCH", OK, summary, items, excerpt, data)


def _rg_hits(ctx: Context, rg: str, pattern: str, data: dict) -> tuple | Result:
    """(hits, total, files, excerpt of rg's messages), or an ERROR Result. Ignore files outside the
    workspace (parents', global) and .ignore/.rgignore are off: the Python walk sees only these."""
    argv = [rg, "--no-config", "--json", "--fixed-strings", "--smart-case", "--no-require-git",
            "--no-ignore-parent", "--no-ignore-global", "--no-ignore-dot", "--sort", "path",
            "--regexp", pattern, "."]
    done = _run(ctx, "SEARCH", argv, data)
    if isinstance(done, Result):
        return done
    head, tail = _head_tail(done)
    hits, stats, other = [], None, []
    for shown, part in ((True, head), (False, tail)):  # the tail's hits lie past a gap: only counted
        for line in part.split("\n"):  # not splitlines: a JSON line may hold U+2028
            try:
                message = json.loads(line)
            except ValueError:  # rg's warnings (unreadable files), or a line cut by the output cap
                message = None
            if not isinstance(message, dict):
                if line.strip():
                    other.append(line)
                continue
            kind, body = message.get("type"), message.get("data", {})
            if kind == "match" and shown:
                path, lines = body["path"], body["lines"]
                path = path["text"] if "text" in path else os.fsdecode(base64.b64decode(path["bytes"]))
                text = lines.get("text") or base64.b64decode(lines["bytes"]).decode("utf-8", "replace")
                hits.append((path.removeprefix("./"), body["line_number"], text))
            elif kind == "summary":
                stats = body["stats"]
    if stats is None:
        raise ToolError(f"ripgrep failed (exit {done.returncode}): {ctx.excerpt(done.output).strip()}")
    if done.dropped:
        data["output_dropped"] = done.dropped
    return hits, stats["matched_lines"], stats["searches_with_match"], ctx.excerpt("\n".join(other))


def _python_hits(root: Path, pattern: str) -> list[tuple[str, int, str]]:
    matcher = re.compile(re.escape(pattern), 0 if any(c.isupper() for c in pattern) else re.IGNORECASE)
    hits = []
    for rel in walk(root):
        try:
            raw = _text_bytes((root / rel).read_bytes())
        except OSError:
            continue
        nul = raw.find(b"\0")
        if nul >= 0:  # ripgrep searches the whole lines of the buffers before the NUL's
            raw = raw[:raw.rfind(b"\n", 0, nul - nul % RG_BUFFER) + 1]
        for number, line in enumerate(raw.split(b"\n"), 1):
            text = line.decode("utf-8", "replace")
            if matcher.search(text):
                hits.append((rel, number, text))
    return hits


# -- LIST_FILES ----------------------------------------------------------------------------------
def list_files(ctx: Context, args: dict[str, str]) -> Result:
    """The files under `path` (default: the workspace) a developer would care about: in a git
    work tree what git tracks or would track (`git ls-files --cached --others --exclude-standard`),
    elsewhere the .gitignore-aware walk SEARCH also uses (hidden files left out)."""
    directory = _confine(ctx, (args.get("path") or "").strip() or ".")
    where = ctx.sandbox.rel(directory)
    if not directory.is_dir():
        raise ToolError(f"{where!r} is a file, not a directory; READ_FILE reads it")
    git, data = _program("git"), {}
    if git and _git_top(directory):
        argv = [git, "-c", "safe.directory=*", "ls-files", "--cached", "--others", "--exclude-standard", "-z"]
        done = _run(ctx, "LIST_FILES", argv, data, cwd=where)
        if isinstance(done, Result):
            return done
        if not done.ok:
            raise ToolError(f"git ls-files failed in {where!r}: {ctx.excerpt(done.output).strip()}")
        prefix = "" if where == "." else where + "/"
        # Left out: the names past the output cap's gap, tracked files deleted from the work tree
        # (and so the name the cap cut), and the repeats of a file in conflict (one per merge stage).
        names = dict.fromkeys(_head_tail(done)[0].split("\0"))
        files = [prefix + p for p in names if p and os.path.lexists(directory / p)]
        data.update(backend="git", output_dropped=done.dropped)
    else:
        files = list(walk(ctx.sandbox.root, directory))
        data["backend"] = "walk"
    files.sort(key=_order)
    cap = ctx.agent.list_max_files
    data["total_files"] = len(files)
    summary = f"{_n(len(files), 'file')} under {where}"
    if len(files) > cap:
        summary += f" (first {cap} shown)"
    if data.get("output_dropped"):
        summary += "; git listed more than agent.output_max_bytes holds, so there are more"
    return Result("LIST_FILES", OK, summary, [Item(p, path=p) for p in files[:cap]], data=data)


# -- READ_FILE -----------------------------------------------------------------------------------
_RANGE = re.compile(r"(.+):(\d+)(?:-(\d+))?")


def read_file(ctx: Context, args: dict[str, str]) -> Result:
    """A text file's lines, one item each (path and line number). `path` may end in `:N` (from
    line N on) or `:N-M` when no file of that exact name exists. At most agent.read_max_bytes of
    the file are read and agent.read_max_lines lines returned; the summary says how to see more."""
    spec = _need_path("READ_FILE", args)
    name, first, last = spec, 1, None
    if (m := _RANGE.fullmatch(spec)) and not os.path.lexists(ctx.sandbox.root / spec):
        name, first, last = m[1], int(m[2]), int(m[3]) if m[3] else None
        if first < 1 or (last is not None and last < first):
            raise ToolError(f"line range in {spec!r} is empty; give path:N or path:N-M with 1 <= N <= M")
    file = _confine(ctx, name)
    rel = ctx.sandbox.rel(file)
    if file.is_dir():
        raise ToolError(f"{rel!r} is a directory; LIST_FILES shows what it holds")
    if not file.is_file():
        raise ToolError(f"{rel!r} is not a regular file (a device, socket or pipe); READ_FILE reads files")
    cap = ctx.agent.read_max_bytes
    with open(file, "rb") as f:
        raw, size = f.read(cap), os.fstat(f.fileno()).st_size
    cut = size > cap
    raw = _text_bytes(raw)
    if b"\0" in raw[:RG_BUFFER]:
        raise ToolError(f"{rel!r} is a binary file (it holds NUL bytes); READ_FILE shows text files only")
    if cut and b"\n" in raw:  # the last line read is incomplete
        raw = raw[:raw.rfind(b"\n") + 1]
    lines = [line.removesuffix("\r") for line in raw.decode("utf-8", "replace").split("\n")]
    if lines[-1] == "":
        lines.pop()
    total = len(lines)
    data = {"total_lines": total, "truncated": cut}
    if not total:
        return Result("READ_FILE", OK, f"{rel} is empty", data=data)
    of = str(total)
    if cut:
        of = f"the first {total} (the file is {size} bytes; READ_FILE reads {cap}, agent.read_max_bytes)"
    if first > total:
        raise ToolError(f"{rel!r}: line {first} is past the end; READ_FILE sees lines 1-{total} of it")
    end = min(total, last or total, first + ctx.agent.read_max_lines - 1)
    shown = lines[first - 1:end]
    summary = f"{rel} lines {first}-{end} of {of}"
    if end < min(total, last or total):
        data["truncated"] = True
        summary += f"; READ_FILE shows {ctx.agent.read_max_lines} lines at a time: {rel}:{end + 1} shows more"
    data.update(first_line=first, last_line=end)
    items = [Item(text, path=rel, line=first + i) for i, text in enumerate(shown)]
    return Result("READ_FILE", OK, summary, items, ctx.excerpt("\n".join(shown)), data)


# -- PATCH_DRY_RUN -------------------------------------------------------------------------------
_GIT_HUNK = re.compile(r"error: patch failed: (.+):(\d+)$")
_GIT_FILE = re.compile(r"error: (.+?): \S")
_PATCH_FILE = re.compile(r"checking file (.+)$")
_PATCH_HUNK = re.compile(r"Hunk #\d+ FAILED at (\d+)")
_PATCH_MISSING = re.compile(r"\|\+\+\+ [^/\s]+/(\S+)")
_PATCH_TROUBLE = re.compile(r"Hunk #\d+ FAILED|Skipping patch|\*\*\*\*")


def patch_dry_run(ctx: Context, args: dict[str, str]) -> Result:
    """Whether the patch file `path` would apply to the workspace, changing nothing: `git apply
    --check` in a git work tree, `patch --dry-run -p1` (GNU patch) elsewhere. FAILED lists the
    hunks and files that would not apply."""
    file = _confine(ctx, _need_path("PATCH_DRY_RUN", args))
    rel = ctx.sandbox.rel(file)
    if not file.is_file():
        raise ToolError(f"{rel!r} is not a file; PATCH_DRY_RUN takes a patch file (a unified diff)")
    root, git, patch = ctx.sandbox.root, _program("git"), _program("patch")
    top = _git_top(root) if git else None
    if top:
        argv = [git, "-c", "safe.directory=*", "apply", "--check", "--verbose", str(file)]
    elif patch:
        argv = [patch, "--dry-run", "-p1", "--batch", "--forward", "-i", str(file)]
    else:
        raise ToolError("PATCH_DRY_RUN needs GNU patch, which is not installed (Debian/Ubuntu: apt install "
                        "patch), or git when the workspace is a git work tree")
    data = {"backend": "git" if top else "patch"}
    done = _run(ctx, "PATCH_DRY_RUN", argv, data)
    if isinstance(done, Result):
        return done
    data["returncode"] = done.returncode
    if done.ok:
        return Result("PATCH_DRY_RUN", OK, f"{rel} would apply", excerpt=ctx.excerpt(done.output), data=data)
    # git names files from the top of its work tree; the items name them from the workspace's.
    items = _git_failures(done.output, paths.relative(top, root)) if top else _patch_failures(done.output)
    if not items:
        items = [Item(line) for line in done.output.strip().splitlines()[-1:]]
    return Result("PATCH_DRY_RUN", FAILED, f"{rel} would not apply: {_n(len(items), 'problem')}",
                  items, ctx.excerpt(done.output), data)


def _git_failures(output: str, subdir: str) -> list[Item]:
    prefix = "" if subdir == "." else subdir + "/"

    def local(path: str) -> str | None:
        return path[len(prefix):] if path.startswith(prefix) else None

    items = []
    for line in output.splitlines():
        # Left out: "error: while searching for:" (the hunk's lines follow) and "error: F: patch does
        # not apply", which follows a "patch failed: F:N" for each of F's failing hunks.
        if not line.startswith(("error:", "fatal:")) or line.endswith((":", ": patch does not apply")):
            continue
        if m := _GIT_HUNK.match(line):
            items.append(Item(line, path=local(m[1]), line=int(m[2])))
        else:
            m = _GIT_FILE.match(line)
            items.append(Item(line, path=local(m[1]) if m else None))
    return items


def _patch_failures(output: str) -> list[Item]:
    items, current = [], None
    for line in output.splitlines():
        if m := _PATCH_FILE.match(line):
            current = m[1]
        elif line.startswith("can't find file"):  # missing: named by the "|+++ b/F" quoted next
            current = None
        elif m := _PATCH_MISSING.match(line):
            current = m[1]
        elif _PATCH_TROUBLE.search(line):
            hunk = _PATCH_HUNK.search(line)
            text = f"{current}: {line}" if current else line
            items.append(Item(text, path=current, line=int(hunk[1]) if hunk else None))
    return items


TOOLS = {"SEARCH": search, "LIST_FILES": list_files, "READ_FILE": read_file, "PATCH_DRY_RUN": patch_dry_run}
