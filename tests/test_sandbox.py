"""Attacks on the sandbox's layers, each run with bubblewrap and without: whatever the command
does, nothing outside the workspace is written or reached and nothing is left running."""

import os
import socket
import sys
import threading
import time
import uuid

import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent import launcher, paths
from gestalt_jax.agent.sandbox import Sandbox

LANDLOCK = launcher.landlock_abi()


def _sandbox(ws, layers: str, **kw) -> Sandbox:
    agent = config_lib.base().agent
    agent.bubblewrap = layers == "bubblewrap"
    agent.timeout_s = 20.0
    agent.kill_grace_s = 0.5
    sb = Sandbox(ws, agent, **kw)
    if layers == "bubblewrap" and not sb.bubblewrap:
        pytest.skip(f"bubblewrap cannot run here: {sb.missing()[0]}")
    return sb


@pytest.fixture(params=["bubblewrap", "no-bubblewrap"])
def layers(request):
    return request.param


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("the secret\n")
    return tmp_path / "ws"


def _running(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{pid}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except OSError:
            continue
        if marker in cmd and not zombie and int(pid) != os.getpid():
            found.append(cmd)
    return found


# -- paths --------------------------------------------------------------------------------------

def test_paths_outside_the_workspace_are_refused_naming_the_path(ws):
    root = paths.workspace_root(ws)
    outside = ws.parent / "outside"
    (ws / "final").symlink_to(outside / "secret.txt")
    (ws / "middle").symlink_to(outside)
    (ws / "dangling").symlink_to(outside / "missing.txt")
    (ws / "inside.txt").write_text("ok\n")
    (ws / "alias").symlink_to(ws / "inside.txt")
    cases = {"../outside/secret.txt": "'..' is refused", str(outside / "secret.txt"): "absolute",
             "~/x": "absolute", "final": "leads out", "middle/secret.txt": "leads out",
             "dangling": "leads out", "a\0b": "NUL"}
    for path, why in cases.items():
        with pytest.raises(paths.PathRefused) as e:
            paths.confine(root, path)
        assert repr(path) in str(e.value) and why in str(e.value), (path, str(e.value))
    assert paths.confine(root, "alias") == root / "inside.txt"  # a link that stays inside is fine
    assert paths.confine(root, "sub/../inside.txt".replace("sub/../", "")) == root / "inside.txt"
    (ws / "inside_dangling").symlink_to(ws / "nothing")
    with pytest.raises(paths.PathRefused, match="dangling"):
        paths.confine(root, "inside_dangling")


# -- processes ----------------------------------------------------------------------------------

def test_a_command_printing_100_mb_is_cut_not_buffered(ws, layers):
    sb = _sandbox(ws, layers)
    done = sb.run([sys.executable, "-c", "import sys\nfor _ in range(100): sys.stdout.write('x' * 1_000_000)\n"
                   "sys.stdout.write('END')"])
    cap = sb.config.output_max_bytes
    assert done.returncode == 0 and not done.timed_out
    assert done.dropped == 100_000_003 - cap
    assert done.output.startswith("x" * 100) and done.output.endswith("END")
    assert len(done.output.encode()) < cap + 200


def test_a_command_that_never_ends_is_killed_with_its_children(ws, layers):
    marker = f"{3000 + uuid.uuid4().int % 1000}"
    sb = _sandbox(ws, layers)
    start = time.monotonic()
    done = sb.run(["sh", "-c", f"sleep {marker}1 & sleep {marker}2"], timeout_s=1.0)
    assert done.timed_out and not done.ok
    assert time.monotonic() - start < 10
    assert _running(f"sleep {marker}") == []


def test_children_that_outlive_the_command_are_killed(ws, layers):
    marker = f"{4000 + uuid.uuid4().int % 1000}"
    sb = _sandbox(ws, layers)
    script = (f"setsid sleep {marker}1 & nohup sleep {marker}2 >/dev/null 2>&1 & (sleep {marker}3 &); "
              f"{sys.executable} -c 'import os; os.fork() or os.setsid() or os.execvp(\"sleep\", [\"sleep\", \"{marker}4\"])' & "
              "echo spawned")
    done = sb.run(["sh", "-c", script])
    assert done.ok and "spawned" in done.output
    time.sleep(0.2)
    assert _running(f"sleep {marker}") == []


def test_a_command_cannot_open_a_network_connection(ws, layers):
    if layers == "no-bubblewrap" and LANDLOCK < 4:
        pytest.skip(f"without bubblewrap only Landlock (ABI >= 4) blocks TCP; this kernel has ABI {LANDLOCK}")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(5)
    accepted = []
    threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True).start()
    port = server.getsockname()[1]
    sb = _sandbox(ws, layers)
    done = sb.run([sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3); "
                   "print('CONNECTED')"])
    server.close()
    assert "CONNECTED" not in done.output and done.returncode != 0
    assert accepted in ([], [None])


def _accept(server):
    try:
        return server.accept()
    except OSError:
        return None


@pytest.mark.parametrize("allow_writes", [False, True])
def test_writes_reach_only_the_workspace_and_only_when_allowed(ws, layers, allow_writes):
    if layers == "no-bubblewrap" and not LANDLOCK:
        pytest.skip("without bubblewrap only Landlock stops writes outside the workspace; this kernel has none")
    sb = _sandbox(ws, layers, allow_writes=allow_writes)
    outside = ws.parent / "outside"
    script = ("import pathlib, sys\n"
              "for p in sys.argv[1:]:\n"
              "    try:\n"
              "        pathlib.Path(p).write_text('x'); print('WROTE', p)\n"
              "    except OSError as e:\n"
              "        print('REFUSED', p, e.errno)\n")
    escape = f"/tmp/gestalt-escape-{uuid.uuid4().hex}.txt"
    targets = [str(outside / "new.txt"), str(outside / "secret.txt"), str(ws / "inside.txt"), escape]
    done = sb.run([sys.executable, "-c", script, *targets])
    assert done.ok, done.output
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "the secret\n"
    assert not os.path.exists(escape)
    assert (ws / "inside.txt").exists() == allow_writes
    assert f"WROTE {ws / 'inside.txt'}" in done.output if allow_writes else "WROTE" not in done.output


def test_the_environment_is_scrubbed_and_stdin_closed(ws, layers, monkeypatch):
    monkeypatch.setenv("GESTALT_TEST_SECRET_TOKEN", "hunter2")
    sb = _sandbox(ws, layers)
    done = sb.run([sys.executable, "-c", "import os, sys; print(sorted(os.environ)); print('STDIN', repr(sys.stdin.read()))"])
    assert done.ok, done.output
    assert "GESTALT_TEST_SECRET_TOKEN" not in done.output and "hunter2" not in done.output
    assert "STDIN ''" in done.output


def test_an_argv_string_is_refused_and_arguments_are_never_shell_parsed(ws, layers):
    sb = _sandbox(ws, layers, allow_writes=True)
    with pytest.raises(TypeError):
        sb.run("echo hi; touch pwned")
    hostile = ["; touch pwned", "$(touch pwned)", "`touch pwned`", "a\ntouch pwned", "--help"]
    done = sb.run([sys.executable, "-c", "import sys; print(sys.argv[1:])", *hostile])
    assert done.ok and not (ws / "pwned").exists()
    assert repr(hostile) in done.output


def test_missing_layers_are_named(ws):
    agent = config_lib.base().agent
    agent.update(bubblewrap=False, landlock=False)
    sb = Sandbox(ws, agent)
    assert sb.missing() == ["bubblewrap layer missing: off (config.agent.bubblewrap=False)",
                            "landlock layer missing: off (config.agent.landlock=False)"]
    done = sb.run([sys.executable, "-c", "print('still runs')"])
    assert done.ok and "still runs" in done.output


def test_a_test_suite_cannot_write_outside_the_workspace_or_into_it(ws, layers):
    if layers == "no-bubblewrap" and not LANDLOCK:
        pytest.skip("without bubblewrap only Landlock stops writes outside the workspace; this kernel has none")
    from gestalt_jax.agent.tools import build
    from gestalt_jax.agent.tools.base import Context
    escape = ws.parent / "outside" / "planted.txt"
    (ws / "test_evil.py").write_text(
        "import pathlib\n\n"
        "def test_plants_files():\n"
        f"    for p in ({str(escape)!r}, 'inside.txt', {str(ws / 'also_inside.txt')!r}):\n"
        "        try:\n"
        "            pathlib.Path(p).write_text('x')\n"
        "        except OSError:\n"
        "            pass\n")
    sb = _sandbox(ws, layers)
    result = build.run_tests(Context(sb, config_lib.base(), ws.parent / "work"), {})
    assert result.data["passed"] == 1, result.excerpt
    assert not escape.exists()
    assert sorted(os.listdir(ws)) == ["test_evil.py"]
