"""SEARCH, LIST_FILES, READ_FILE and PATCH_DRY_RUN on small real workspaces, git and not."""

import os
import subprocess
from pathlib import Path

import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent import process
from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools import files
from gestalt_jax.agent.tools.base import ERROR, FAILED, OK, Context, ToolError

BACKENDS = ["python", pytest.param("ripgrep", marks=pytest.mark.skipif(
    files._program("rg") is None, reason="ripgrep not installed"))]


def make_ctx(tmp_path: Path, workspace: Path, **limits) -> Context:
    cfg = config_lib.base()
    for key, value in limits.items():
        cfg.agent[key] = value
    return Context(sandbox=Sandbox(workspace, cfg.agent), config=cfg, workdir=tmp_path / "work")


def write(root: Path, tree: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def git_commit(root: Path) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "i"],
                   check=True)


def outside(tmp_path: Path) -> Path:
    """A directory beside the workspace that links in the workspace point to."""
    return write(tmp_path / "outside", {"secret.txt": "needle outside the workspace\n"})


def messy_workspace(tmp_path: Path) -> Path:
    """Everything SEARCH and the walk must leave out or treat specially, beside ordinary files."""
    ws = write(tmp_path / "ws", {
        ".gitignore": "*.log\nbuild/\n!keep.log\n",
        ".ignore": "keep.log\n",  # ripgrep's own ignore file: SEARCH leaves it aside, as the Python walk does
        "a.py": "x = 1\nneedle = 2  \n# Needle in caps\n",
        "b.txt": "nothing here\n",
        "app.log": "needle in an ignored log\n",
        "keep.log": "needle kept by a negation\n",
        "build/out.py": "needle in an ignored dir\n",
        ".env": "needle in a hidden file\n",
        ".cache/x.py": "needle in a hidden dir\n",
        "blob.bin": b"needle\x00binary\n",
        "late.bin": b"needle before the first buffer\n" + b"y" * 70000 + b"\nneedle\x00late\n",
        "bom.txt": b"\xef\xbb\xbfneedle after a BOM\n",
        "crlf.txt": b"one\r\nneedle\r\n",
        "latin.txt": b"caf\xe9 needle\n",
        "sub/.gitignore": "secret.py\n\\\n!wanted.log\n",  # git and rg skip the line they cannot parse
        "sub/debug.log": "needle in a log the root .gitignore ignores\n",
        "sub/wanted.log": "needle re-included by the nested .gitignore\n",
        "sub/secret.py": "needle in a nested-ignored file\n",
        "sub/deep/secret.py": "needle nested-ignored deeper too\n",
        "sub/open.py": "needle in sub\n",
        "sub2/secret.py": "needle: the nested .gitignore does not reach here\n",
    })
    out = outside(tmp_path)
    os.symlink(out / "secret.txt", ws / "link_file.txt")
    os.symlink(out, ws / "link_dir")
    os.symlink("/etc/passwd", ws / "passwd")
    return ws


EXPECTED_NEEDLE = [("a.py", 2), ("a.py", 3), ("bom.txt", 1), ("crlf.txt", 2), ("keep.log", 1),
                   ("late.bin", 1), ("latin.txt", 1), ("sub/open.py", 1), ("sub/wanted.log", 1),
                   ("sub2/secret.py", 1)]


# -- SEARCH --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_search_finds_the_defining_line(tmp_path, backend):
    ws = write(tmp_path / "ws", {"src/app.py": "import os\n\ndef compute_total(items):\n    return 0\n",
                                 "src/use.py": "from app import compute_total\n"})
    result = files.search(make_ctx(tmp_path, ws), {"pattern": "def compute_total"}, backend=backend)
    assert result.status == OK and result.data["backend"] == backend
    hits = [(i.path, i.line, i.text) for i in result.items]
    assert hits == [("src/app.py", 3, "def compute_total(items):")]
    assert result.pick(1, "path") == "src/app.py"  # "search X, then read the first hit"
    assert result.summary == "1 hit in 1 file"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("in_git", [False, True])
def test_search_skips_ignored_hidden_binary_and_links(tmp_path, backend, in_git):
    ws = messy_workspace(tmp_path)
    if in_git:
        git_commit(ws)
        (ws / ".git" / "info" / "exclude").write_text("sub2/\n")
    result = files.search(make_ctx(tmp_path, ws), {"pattern": "needle"}, backend=backend)
    expected = [hit for hit in EXPECTED_NEEDLE if not (in_git and hit[0].startswith("sub2/"))]
    assert [(i.path, i.line) for i in result.items] == expected
    assert result.items[0].text == "needle = 2"  # stripped
    texts = {i.path: i.text for i in result.items}
    assert texts["bom.txt"] == "needle after a BOM" and texts["latin.txt"] == "caf\ufffd needle"
    assert result.data["total_hits"] == len(expected)


@pytest.mark.skipif(files._program("rg") is None, reason="ripgrep not installed")
@pytest.mark.parametrize("pattern", ["needle", "Needle", "NEEDLE", "needle in"])
def test_ripgrep_and_python_give_identical_results(tmp_path, pattern):
    ctx = make_ctx(tmp_path, messy_workspace(tmp_path))
    rg, py = (files.search(ctx, {"pattern": pattern}, backend=b) for b in ("ripgrep", "python"))
    assert [i.to_json() for i in rg.items] == [i.to_json() for i in py.items]
    for key in ("total_hits", "files"):
        assert rg.data[key] == py.data[key]
    assert rg.summary == py.summary


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_smart_case(tmp_path, backend):
    ctx = make_ctx(tmp_path, messy_workspace(tmp_path))
    upper = files.search(ctx, {"pattern": "Needle"}, backend=backend)
    assert [(i.path, i.line) for i in upper.items] == [("a.py", 3)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_caps_hits_and_counts_them(tmp_path, backend):
    ws = write(tmp_path / "ws", {f"f{n}.txt": "hit\nmiss\nhit again\n" for n in range(5)})
    result = files.search(make_ctx(tmp_path, ws, search_max_hits=3), {"pattern": "hit"}, backend=backend)
    assert [(i.path, i.line) for i in result.items] == [("f0.txt", 1), ("f0.txt", 3), ("f1.txt", 1)]
    assert result.data["total_hits"] == 10 and result.data["files"] == 5
    assert result.summary == "10 hits in 5 files (first 3 shown)"


@pytest.mark.skipif(files._program("rg") is None, reason="ripgrep not installed")
def test_search_past_the_output_cap_shows_the_first_hits_and_counts_all(tmp_path):
    ws = write(tmp_path / "ws", {f"f{n:02d}.txt": "".join(f"hit {k} {'.' * 60}\n" for k in range(20))
                                 for n in range(30)})
    ctx = make_ctx(tmp_path, ws, output_max_bytes=8192)
    rg, py = (files.search(ctx, {"pattern": "hit"}, backend=b) for b in ("ripgrep", "python"))
    assert rg.data["output_dropped"] and rg.data["total_hits"] == 600 and rg.data["files"] == 30
    shown = len(rg.items)
    assert 0 < shown < 600 and rg.summary == f"600 hits in 30 files (first {shown} shown)"
    assert [i.to_json() for i in rg.items] == [i.to_json() for i in py.items[:shown]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_without_hits_or_pattern(tmp_path, backend):
    ctx = make_ctx(tmp_path, write(tmp_path / "ws", {"a.txt": "alpha\n"}))
    none = files.search(ctx, {"pattern": "zeta"}, backend=backend)
    assert (none.status, none.items, none.summary) == (OK, [], "no hits for 'zeta'")
    for args in ({}, {"pattern": ""}, {"pattern": "a\nb"}):
        with pytest.raises(ToolError):
            files.search(ctx, args, backend=backend)


@pytest.mark.skipif(files._program("rg") is None, reason="ripgrep not installed")
def test_search_reports_a_timeout(tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, write(tmp_path / "ws", {"a.txt": "alpha\n"}))
    monkeypatch.setattr(ctx.sandbox, "run", lambda argv, **_: process.Completed(argv, -9, "", 0, 300.0, True))
    result = files.search(ctx, {"pattern": "alpha"}, backend="ripgrep")
    assert result.status == ERROR and "timed out after 300 s" in result.summary
    assert "sandbox_missing" in result.data


# -- LIST_FILES ----------------------------------------------------------------------------------
LISTED = ["a.py", "b.txt", "bom.txt", "crlf.txt", "keep.log", "late.bin", "latin.txt",
          "sub/open.py", "sub/wanted.log", "sub2/secret.py", "blob.bin"]


def test_list_files_outside_git_walks_honouring_gitignore(tmp_path):
    ctx = make_ctx(tmp_path, messy_workspace(tmp_path))
    result = files.list_files(ctx, {})
    assert result.status == OK and result.data["backend"] == "walk"
    assert [i.path for i in result.items] == sorted(LISTED) == [i.text for i in result.items]
    assert result.data["total_files"] == len(LISTED)
    # A listed subdirectory still obeys the .gitignore files above it and its own.
    assert [i.path for i in files.list_files(ctx, {"path": "sub"}).items] == ["sub/open.py", "sub/wanted.log"]


def test_list_files_in_git_uses_git(tmp_path):
    ws = messy_workspace(tmp_path)
    git_commit(ws)
    write(ws, {"new.py": "untracked\n", "new.log": "untracked, ignored\n"})
    (ws / "b.txt").unlink()  # tracked, deleted from the work tree
    ctx = make_ctx(tmp_path, ws)
    result = files.list_files(ctx, {"path": "."})
    assert result.data["backend"] == "git"
    listed = [i.path for i in result.items]
    # git lists tracked hidden files, and symlinks as themselves: it never follows them.
    also = [".cache/x.py", ".env", ".gitignore", ".ignore", "sub/.gitignore", "new.py",
            "link_dir", "link_file.txt", "passwd"]
    assert listed == sorted([p for p in LISTED if p != "b.txt"] + also)
    assert [i.path for i in files.list_files(ctx, {"path": "sub"}).items] == ["sub/.gitignore", "sub/open.py",
                                                                              "sub/wanted.log"]


def test_list_files_caps_counts_and_confines(tmp_path):
    ws = write(tmp_path / "ws", {f"f{n}.txt": "" for n in range(5)})
    ctx = make_ctx(tmp_path, ws, list_max_files=2)
    result = files.list_files(ctx, {"path": ""})
    assert [i.path for i in result.items] == ["f0.txt", "f1.txt"] and result.data["total_files"] == 5
    assert "(first 2 shown)" in result.summary
    outside(tmp_path)
    for bad in ("..", "../outside", "/etc", "f0.txt"):
        with pytest.raises(ToolError):
            files.list_files(ctx, {"path": bad})


def test_list_files_past_the_output_cap_says_there_are_more(tmp_path):
    ws = write(tmp_path / "ws", {f"file_with_a_long_name_{n:03d}.txt": "" for n in range(300)})
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    result = files.list_files(make_ctx(tmp_path, ws, output_max_bytes=2048), {})
    assert result.data["backend"] == "git" and result.data["output_dropped"]
    assert 0 < result.data["total_files"] < 300 and "there are more" in result.summary
    names = sorted(p.name for p in ws.glob("*.txt"))
    assert [i.path for i in result.items] == names[:result.data["total_files"]]  # the first ones, no gap


# -- READ_FILE -----------------------------------------------------------------------------------
def test_read_file_line_ranges(tmp_path):
    ws = write(tmp_path / "ws", {"f.txt": "".join(f"line {n}\n" for n in range(1, 51)),
                                 "odd:3": "named so\n"})
    ctx = make_ctx(tmp_path, ws, read_max_lines=20)
    whole = files.read_file(ctx, {"path": "f.txt"})
    assert [i.line for i in whole.items] == list(range(1, 21)) and whole.items[0].path == "f.txt"
    assert whole.data["truncated"] and whole.data["total_lines"] == 50
    assert whole.summary.startswith("f.txt lines 1-20 of 50")
    some = files.read_file(ctx, {"path": "f.txt:10-12"})
    assert [(i.text, i.line) for i in some.items] == [("line 10", 10), ("line 11", 11), ("line 12", 12)]
    assert some.summary == "f.txt lines 10-12 of 50" and not some.data["truncated"]
    assert [i.line for i in files.read_file(ctx, {"path": "f.txt:48"}).items] == [48, 49, 50]
    assert [i.text for i in files.read_file(ctx, {"path": "odd:3"}).items] == ["named so"]
    for bad in ("f.txt:51", "f.txt:5-4", "f.txt:0"):
        with pytest.raises(ToolError):
            files.read_file(ctx, {"path": bad})


def test_read_file_refuses_binary_directories_and_escapes(tmp_path):
    ws = write(tmp_path / "ws", {"blob.bin": b"text\x00more\n", "dir/a.txt": "a\n"})
    os.symlink("/etc/passwd", ws / "passwd")
    ctx = make_ctx(tmp_path, ws)
    with pytest.raises(ToolError, match="binary"):
        files.read_file(ctx, {"path": "blob.bin"})
    with pytest.raises(ToolError, match="LIST_FILES"):
        files.read_file(ctx, {"path": "dir"})
    for bad in ("passwd", "../ws/passwd", "/etc/passwd", "", "missing.txt"):
        with pytest.raises(ToolError):
            files.read_file(ctx, {"path": bad})
    with pytest.raises(ToolError):
        files.read_file(ctx, {})


def test_read_file_reads_at_most_read_max_bytes(tmp_path):
    ws = write(tmp_path / "ws", {"big.txt": "".join(f"{n:09d}\n" for n in range(100))})  # 10 bytes a line
    ctx = make_ctx(tmp_path, ws, read_max_bytes=95)
    result = files.read_file(ctx, {"path": "big.txt"})
    assert [i.text for i in result.items] == [f"{n:09d}" for n in range(9)]  # the cut 10th line left out
    assert result.data == {**result.data, "total_lines": 9, "truncated": True}
    assert "1000 bytes" in result.summary


# -- PATCH_DRY_RUN -------------------------------------------------------------------------------
GOOD = "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"
BAD = GOOD.replace("-two", "-deux")  # a removed line that is not there: no fuzz rescues it


@pytest.mark.parametrize("in_git", [False, True])
def test_patch_dry_run(tmp_path, in_git):
    ws = write(tmp_path / "ws", {"a.txt": "one\ntwo\nthree\n", "good.diff": GOOD, "bad.diff": BAD,
                                 "missing.diff": GOOD.replace("a.txt", "zz.txt")})
    if in_git:
        git_commit(ws)
    ctx = make_ctx(tmp_path, ws)
    good = files.patch_dry_run(ctx, {"path": "good.diff"})
    assert good.status == OK, good.excerpt
    assert good.data["backend"] == ("git" if in_git else "patch") and "sandbox_missing" in good.data
    bad = files.patch_dry_run(ctx, {"path": "bad.diff"})
    assert bad.status == FAILED and bad.items and bad.excerpt
    assert (bad.items[0].path, bad.items[0].line) == ("a.txt", 1)
    missing = files.patch_dry_run(ctx, {"path": "missing.diff"})
    assert missing.status == FAILED and missing.items[0].path == "zz.txt"
    assert (ws / "a.txt").read_text() == "one\ntwo\nthree\n"
    for args in ({}, {"path": "../x.diff"}, {"path": "nothing.diff"}, {"path": "."}):
        with pytest.raises(ToolError):
            files.patch_dry_run(ctx, args)


def test_patch_dry_run_names_files_from_the_workspace(tmp_path):
    """A workspace inside a git repo: git names files from the repo's top, the items from the
    workspace's; a file the patch needs but the workspace lacks is a problem too."""
    repo = write(tmp_path / "repo", {"ws/a.txt": "one\ntwo\nthree\n", "ws/bad.diff": BAD,
                                     "ws/missing.diff": GOOD.replace("a.txt", "zz.txt")})
    git_commit(repo)
    ctx = make_ctx(tmp_path, repo / "ws")
    bad = files.patch_dry_run(ctx, {"path": "bad.diff"})
    assert bad.status == FAILED and [(i.path, i.line) for i in bad.items] == [("a.txt", 1)]
    assert files.patch_dry_run(ctx, {"path": "missing.diff"}).items[0].path == "zz.txt"
