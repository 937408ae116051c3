"""The launch files CI cannot run (TPU VM, XPK, Kubernetes) and the scripts it does, checked
statically: shell syntax, manifests that parse, and every `gestalt train` flag they pass exists."""

import re
import subprocess

import pytest
import yaml
from absl import flags

from gestalt_jax import config as config_lib
from gestalt_jax import main as gestalt_main  # noqa: F401  (defines the command's flags)

LAUNCH = config_lib.REPO_ROOT / "launch"
SCRIPTS = sorted([*LAUNCH.rglob("*.sh"), *LAUNCH.rglob("*.sbatch")])
MANIFESTS = sorted(LAUNCH.rglob("*.yaml"))
# `gestalt train` (or the module) and what follows it on the same command
_TRAIN = re.compile(r"(?:gestalt|gestalt_jax\.main)\s+train\b(.*)")


def _config_keys(d, prefix="") -> set[str]:
    keys = set()
    for k, v in d.items():
        keys |= _config_keys(v, f"{prefix}{k}.") if hasattr(v, "items") else {f"{prefix}{k}"}
    return keys


def _check_flags(args: list[str], where: str) -> None:
    known = _config_keys(config_lib.base())
    for arg in args:
        if not arg.startswith("--"):
            continue
        name, _, value = arg[2:].partition("=")
        if name.startswith("config."):
            assert name[len("config."):] in known, f"{where}: {arg}: no such config key"
        else:
            assert name in flags.FLAGS, f"{where}: {arg}: gestalt has no flag --{name}"
            if name == "config":
                assert (config_lib.REPO_ROOT / value).is_file(), f"{where}: {arg}: no such tier file"


def _command_lines(text: str) -> list[str]:
    """Lines with their backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(LAUNCH)))
def test_scripts_have_valid_shell_syntax_and_flags(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for line in _command_lines(script.read_text()):
        if m := _TRAIN.search(line):
            _check_flags(m.group(1).split(), str(script))


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: str(p.relative_to(LAUNCH)))
def test_manifests_parse_and_pass_flags_gestalt_has(manifest):
    docs = list(yaml.safe_load_all(manifest.read_text()))
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    jobsets = [d for d in docs if d["kind"] == "JobSet"]
    assert jobsets
    for jobset in jobsets:
        for replicated in jobset["spec"]["replicatedJobs"]:
            job = replicated["template"]["spec"]
            assert job["completionMode"] == "Indexed"  # JAX reads the process id from JOB_COMPLETION_INDEX
            pod = job["template"]["spec"]
            assert pod["serviceAccountName"] in accounts  # JAX reads its pod and job through the API
            for container in pod["containers"]:
                command = container["command"]
                assert command[:2] == ["gestalt", "train"] and "--distributed" in command
                _check_flags(command[2:], str(manifest))


def test_readme_commands_pass_flags_gestalt_has():
    for doc in [LAUNCH / "README.md", *LAUNCH.rglob("*/README.md")]:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in _command_lines(block):
                if m := _TRAIN.search(line):
                    args = m.group(1).split("'")[0].split()  # up to the end of a quoted --command=
                    _check_flags(args, str(doc))


def test_the_check_finds_a_wrong_flag():
    with pytest.raises(AssertionError, match="no flag --distrbuted"):
        _check_flags(["--distrbuted"], "x")
    with pytest.raises(AssertionError, match="no such config key"):
        _check_flags(["--config.sft.lrate=1"], "x")
