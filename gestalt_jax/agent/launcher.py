"""The exec launcher every subprocess tool runs through (standard library only: it starts with
`python -I -S`, inside bubblewrap when that layer is on).

    python -I -S launcher.py '<json spec>' -- argv...

It makes itself the child subreaper, so a descendant that double-forks or calls setsid() is
re-parented to it and cannot outlive the command; applies Landlock (writes only beneath the
spec's writable paths, no TCP bind or connect) when asked; forks the command with the spec's
rlimits; and when the command ends, or SIGTERM arrives, kills every remaining descendant and
reaps them. Its exit status is the command's (128 + signal when a signal ended it).
Landlock's ABI: include/uapi/linux/landlock.h.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import time

PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same on every arch
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
WRITE_FILE, REMOVE_DIR, REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
MAKE_ALL = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
REFER, TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
EXIT_LAUNCHER_ERROR = 125  # as env(1) and timeout(1): the launcher itself failed

_libc = ctypes.CDLL(None, use_errno=True)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is absent or disabled."""
    version = _libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, version)


def _syscall_ok(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock {what}: {os.strerror(err)}")


def landlock_restrict(writable: list, abi: int) -> None:
    """From here on, this process and its descendants write only beneath `writable` (files or
    directories), and, from ABI 4, neither bind nor connect TCP sockets."""
    write_access = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_ALL
    if abi >= 2:
        write_access |= REFER
    if abi >= 3:
        write_access |= TRUNCATE
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    attr = _RulesetAttr(write_access, net)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 4 else 8  # ABI < 4 knows only the fs field
    fd = _libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    _syscall_ok(fd, "create_ruleset")
    try:
        for path in writable:
            is_dir = os.path.isdir(path)
            allowed = write_access if is_dir else WRITE_FILE | (TRUNCATE if abi >= 3 else 0)
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(allowed, pfd)
                _syscall_ok(_libc.syscall(SYS_ADD_RULE, fd, RULE_PATH_BENEATH, ctypes.byref(rule),
                                          ctypes.c_uint32(0)), f"add_rule {path}")
            finally:
                os.close(pfd)
        _syscall_ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _syscall_ok(_libc.syscall(SYS_RESTRICT_SELF, fd, ctypes.c_uint32(0)), "restrict_self")
    finally:
        os.close(fd)


def _descendants() -> list:
    """Process ids whose parent chain leads to this process (read from /proc)."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            # pid (comm) state ppid ...; comm may hold spaces and parentheses
            parent_of[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    me, found, frontier = os.getpid(), [], {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parent_of.items() if ppid in frontier and pid != me}
        found.extend(frontier)
    return found


def _kill_descendants(grace: float) -> None:
    """SIGTERM every descendant, then SIGKILL what is left after `grace` seconds, reaping all."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = _descendants()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _descendants():
            _reap()
            time.sleep(0.02)
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class _Terminated(Exception):
    pass


def _terminate(*_) -> None:
    raise _Terminated  # out of waitpid, which PEP 475 would otherwise resume


def main(argv: list) -> int:
    spec = json.loads(argv[1])
    command = argv[3:] if len(argv) > 3 and argv[2] == "--" else None
    if not command:
        print("launcher: usage: launcher.py SPEC -- argv...", file=sys.stderr)
        return EXIT_LAUNCHER_ERROR
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for name, value in spec.get("rlimits", {}).items():
        limit = getattr(resource, name)
        resource.setrlimit(limit, (value, value))
    if spec.get("landlock_abi", 0):
        try:
            landlock_restrict(spec["writable"], spec["landlock_abi"])
        except OSError as e:
            print(f"launcher: {e}", file=sys.stderr)
            return EXIT_LAUNCHER_ERROR
    signal.signal(signal.SIGTERM, _terminate)
    try:
        child = os.fork()
    except OSError as e:
        print(f"launcher: fork: {e}", file=sys.stderr)
        return EXIT_LAUNCHER_ERROR
    if child == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            os.execvpe(command[0], command, os.environ)
        except OSError as e:
            print(f"{command[0]}: {e.strerror}", file=sys.stderr)
            os._exit(127)
    status = None
    try:
        while status is None:
            pid, raw = os.waitpid(child, 0)
            if pid == child:
                status = raw
    except (_Terminated, ChildProcessError):
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _kill_descendants(float(spec.get("kill_grace_s", 2.0)))
    if status is None:  # SIGTERM from the caller (its timeout): the command was killed above
        return 128 + signal.SIGTERM
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
