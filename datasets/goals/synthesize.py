"""Synthetic labelled goals for training the planner and policy (format: README.md here).

    python datasets/goals/synthesize.py [--n 6000] [--seed 0] [--out datasets/goals/synthetic.jsonl]

Each goal is drawn from sentence frames: "{run} {tests}", "where is {pat} used?", ... A
{slot} is filled from a phrase table (SLOTS), a value generator (DYNAMIC), an inline choice
{a/b/c}, or an argument (ARGS: a path, a search pattern, a note, an equation), which becomes
a labelled span of the goal. A single-step goal is a full frame of its tool, or an imperative
clause in a wrapper ("can you {}?", "mind {running the tests}?"), sometimes after a sentence of
context ("CI went red after my merge."), or the thing asked for first ("I need the build checked"). A
composite is one multi-step frame (COMBOS); bare verbs of the argument-less tools from per-tool tables
("build, test, fix, retest", "train -> eval -> retrain"); or clauses of 2 to 4 steps in all, each its own
tool, a reference ("... and open the second hit", "open hits 1 and 3", "read hit #2", "the top two
results"), a follow-up ("whatever fails, fix it") or a clause after a condition ("if the build is green,
..."), joined with connectors, marked ("1) ... 2) ...", "step one: ...", "first ..., second ..."), with
position words after them ("... first, ... second", "... to start, ... next, ... last"), put in an ORDERS
frame ("after running the tests, ...", "..., but first check the build"), or with the things asked for
first ("I need the tests run; whatever fails, fix it", "the tests, then a lint pass"). Surface noise
(typos, capitals, dropped apostrophes, trailing punctuation) touches only the text around the
spans. The file is training data only; the script checks it before it exits and fails when any
check does not hold.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from gestalt_jax.data import examples  # noqa: E402
from gestalt_jax.data.augment import _identifier, _path, _word  # noqa: E402
from gestalt_jax.text import labels  # noqa: E402


def table(block: str) -> tuple[str, ...]:
    """'a | b | c' written over any number of lines → ('a', 'b', 'c')."""
    return tuple(p.strip() for p in block.replace("\n", " ").split("|") if p.strip())


# Slots name what people call a thing or an act; every phrase must read well in every frame
# that uses the slot ("{run} {tests}", "{fix} {failing}").
SLOTS = {k: table(v) for k, v in dict(
    run="""run | execute | kick off | launch | fire off | start | trigger | rerun | go run | invoke |
        exercise | do a pass of | re-run | run through | fire up""",
    tests="""the tests | the unit tests | all the tests | all tests | the specs | our tests | the test cases |
        the integration tests | the smoke tests | the regression tests | the test battery | the CI checks |
        the automated tests | the test harness | every test | the spec suite | the unit specs |
        the pytest tests | the whole lot of tests""",
    suite="""the test suite | the whole test suite | the testsuite | pytest | the unit test suite |
        the full suite | the test battery | the entire suite | the spec suite | the suite |
        the whole testsuite | the pytest suite""",
    kind="""unit | integration | smoke | regression | end-to-end | e2e | fast | slow | API | UI | acceptance |
        functional | property | snapshot | contract | browser | backend | frontend | database""",
    proj="""the project | the code | the repo | the codebase | everything | this branch | my branch |
        the workspace | it | the sources | the crate | the package | main | the monorepo | the library |
        the service | the app | the whole thing | the PR | the current tree | the backend | the frontend""",
    runner="""pytest | jest | vitest | rspec | mocha | go test | cargo test | npm test | ctest | unittest |
        the test runner | tox | nox | phpunit""",
    builder="""cargo check | cargo build | go build | tsc | mypy | pyright | make | gradle build | mvn compile |
        bazel build | cmake --build | the build script | the compiler""",
    check="check | verify | confirm | make sure | double-check | ensure",
    fix="""fix | repair | patch up | sort out | deal with | resolve | clean up | heal | fix up |
        take care of | address | handle | straighten out | work on""",
    failing="""the failing tests | the broken tests | the test failures | the red tests | the failing specs |
        the broken unit tests | whatever tests are failing | the tests that fail | the flaky tests |
        the failures | the failing cases | the busted tests | the tests that are red |
        whatever's failing | the tests that broke | the broken specs""",
    docs="""the docs | the documentation | the markdown docs | our docs | the doc pages | the user guide |
        the API docs | the docs site | the README and the guides | the markdown | the .md files |
        the wiki pages | the handbook | the manual | the guides | the READMEs | the changelog |
        the tutorials | the reference docs | the docs folder""",
    lint="""lint | check | validate | proofread | scan | spellcheck | spell-check | style-check |
        sanity-check | proof-read | run the linter on | run a linter over""",
    lean_s="""the lean suite | the Lean suite | the Lean proof suite | the Lean 4 suite | the theorem suite |
        the formal verification suite | the Lean test suite | the lean4 suite | the proof suite |
        the mathlib checks | the formal proof suite | the theorem checker | the Lean project""",
    lean_p="""the Lean proofs | the lean proofs | the formal proofs | the Lean theorems | all the Lean proofs |
        our Lean lemmas | the mathlib proofs | the Lean 4 proofs | our theorems |
        the {formalised/formalized} lemmas | the machine-checked proofs | the proofs in Lean |
        the lean lemmas""",
    model="""the model | the brain | the current checkpoint | the latest checkpoint | the network |
        the planner | the policy | the new weights | the best checkpoint | the agent | the small model |
        the new model | the latest weights | the fine-tuned model | the newest checkpoint |
        checkpoint {step} | the last checkpoint""",
    evals="""the eval | the evaluation | the evals | the benchmarks | the eval suite | the eval harness |
        the benchmark suite | an eval pass | a round of evals | the eval set | the evaluation suite |
        the held-out eval | the metrics | the scoring script | the benchmark | a benchmark run |
        the metric suite""",
    tverb="train | retrain | fine-tune | finetune | re-train | fine tune | continue training",
    start="start | begin | launch | kick off | spin up | kick-start | fire off | queue up | schedule",
    trainrun="""training | a training run | a training session | model training | a new training run |
        a fine-tuning run | the training job | another training round | a fresh training run |
        a training pass | another epoch | a few more epochs | a training cycle | the trainer |
        a new fine-tune | some more training""",
    greet="""hi | hello | hey | hiya | howdy | good morning | good evening | good afternoon | yo | heya |
        morning | greetings | hey hey | sup | evening | hallo | g'day | hi hi""",
    botlike="a robot | an AI | a real person | human | conscious | sentient | a chatbot | alive | self-aware",
    fav="""colour | color | movie | book | food | season | song | programming language | animal | city |
        band | game | number | holiday spot | dessert""",
    pairq="""a list and a tuple | TCP and UDP | a process and a thread | stack and heap |
        git merge and rebase | HTTP and HTTPS | an interface and a class | RAM and disk |
        a virus and a bacterium | a mutex and a semaphore | SQL and NoSQL | weather and climate |
        Python and Java | latency and throughput | a crocodile and an alligator""",
    concept="""recursion | a monad | a closure | a hash map | big O notation | garbage collection |
        a linked list | DNS | a race condition | dependency injection | entropy | a black hole |
        inflation | a neural network | a REST API | Kubernetes | quantum computing | a blockchain |
        photosynthesis | compound interest | a mutex | TCP | a deadlock | caching""",
    opinion="""tabs vs spaces | vim or emacs | dark mode | Rust | functional programming | remote work |
        pineapple on pizza | AI art | static typing | microservices | office dogs | open-plan offices |
        standing desks | cats or dogs | coffee or tea | mechanical keyboards""",
    feeling="""tired | happy | stressed | bored | excited | a bit down | sleepy | great | anxious | grumpy |
        overwhelmed | pretty good | hungry | nervous""",
    bad="""my coffee spilled | the wifi is down again | I missed the bus | it's raining all day |
        my cat knocked over a plant | I locked myself out | my flight got cancelled | I burnt my toast |
        the heating broke | I stubbed my toe""",
    rec="""book on algorithms | sci-fi novel | podcast | board game | hiking trail | pasta recipe | movie |
        album | video game | TV series | fantasy novel | soup recipe""",
    topic_fun="""octopuses | space | the ocean | honey bees | volcanoes | penguins | Rome | the moon |
        dinosaurs | owls | the pyramids | Mars | sharks | coffee""",
    person="""Alice | Bob | Carol | Dave | Erin | Frank | Grace | Heidi | Ivan | Judy | Mallory | Priya |
        Olivia | Rupert | Sybil | Trent | Victor | Walter | Yusuf | Mei | José | Zoë | Kenji | Aisha |
        Lars | Fatima | Chen | Siobhan""",
    day="Monday | Tuesday | Wednesday | Thursday | Friday | Saturday | Sunday",
    time="9am | 10:30 | 3pm | noon | 16:00 | half past two | 11am | 8:45 | 2pm | 17:30",
    env="staging | prod | dev | qa | local | canary | preprod | sandbox",
    fmt="black | ruff | prettier | gofmt | rustfmt | clang-format | isort | eslint --fix",
    editor="vim | emacs | VS Code | helix | nano | neovim | Zed | IntelliJ",
    pref="""short answers | tabs over spaces | dark mode | detailed explanations | British spelling |
        American spelling | snake_case | bullet points | small commits""",
    gpu="A100 | T4 | laptop GPU | V100 | H100 | 3090 | 4090 | L4",
    lr="3e-4 | 1e-3 | 5e-5 | 2e-4 | 0.01 | 1e-4 | 6e-4",
).items()}

DYNAMIC = {
    "w": _word,
    "ident": _identifier,
    "Cap": lambda r: _word(r).capitalize(),
    "W": lambda r: _word(r).upper(),
    "num": lambda r: str(int(r.integers(2, 400))),
    "port": lambda r: str(int(r.integers(1024, 10000))),
    "step": lambda r: str(int(r.integers(1, 100)) * 500),
    "host": lambda r: f"{_word(r)}-{int(r.integers(1, 40)):02d}",
    "n4": lambda r: f"{int(r.integers(1, 40)):04d}",
    "ver": lambda r: f"{int(r.integers(1, 10))}.{int(r.integers(0, 20))}",
    "dirp": lambda r: _path("a/b/", r),
    "ext": lambda r: pick(r, FILE_EXTS),
}

FILE_EXTS = table("""py | rs | go | ts | tsx | js | md | rst | toml | yaml | yml | json | c | h | cpp | hpp |
    java | rb | sh | sql | css | html | txt | cfg | ini | lean | proto | kt | swift | lua | vue | ipynb |
    ex | scala | php | mjs | jsx | gradle | xml | env | lock | tf | graphql""")
FILE_FORMS = table("""{dirp}{special} | {special} | tests/test_{w}.py | {dirp}{w}_test.go | src/{w}.spec.ts |
    src/main/java/{Cap}{Cap}.java | src/components/{Cap}.tsx | {dirp}{w}-{w}.{ext} | ~/{dirp}{w}.{ext} |
    ../{w}/{w}.{ext} | /etc/{w}.conf | {dirp}v{num}/{w}.{ext} | .github/workflows/{w}.yml |
    packages/{w}/src/index.ts | crates/{w}/src/lib.rs | cmd/{w}/main.go | {dirp}__tests__/{Cap}.test.tsx |
    {dirp}{w}.test.js | src/{w}/{w}.d.ts | docs/adr/{n4}-{w}-{w}.md | k8s/{w}-deployment.yaml |
    notebooks/{w}_{w}.ipynb | scripts/{w}.sh | .vscode/settings.json | .eslintrc.json | Dockerfile.{dev/prod} |
    {dirp}{Cap}{Cap}.kt | include/{w}/{w}.hpp | lib/{w}/{w}.ex | config/{env}.yaml | {w}.{ext} |
    ./{w}.{ext} | {dirp}{w}.min.js | {dirp}.env.local | {Cap}{Cap}.{ext} | /var/log/{w}/{w}.log""")
SPECIAL_FILES = table("""Makefile | Dockerfile | README.md | LICENSE | CHANGELOG.md | setup.py | Cargo.toml |
    package.json | go.mod | pyproject.toml | .gitignore | .env.example | tsconfig.json | requirements.txt |
    docker-compose.yml | CMakeLists.txt | conftest.py | __init__.py | index.ts | main.rs | lib.rs |
    Gemfile | CONTRIBUTING.md | setup.cfg | tox.ini | .pre-commit-config.yaml | Justfile | BUILD.bazel |
    vite.config.ts | webpack.config.js | mkdocs.yml | Procfile | go.sum | Cargo.lock | build.gradle""")
DIR_FORMS = table("""src | docs | tests/unit | scripts/ci | .github/workflows | third_party/ | assets/img |
    internal/api/v2 | lib/ | examples/ | config/ | cmd/{w} | pkg/{w} | app/models | {dirp}{w}-{w} |
    ~/projects/{w} | ./{w} | {dirp}v{num} | migrations | benchmarks/{w} | packages/{w} | crates/{w} |
    apps/{w}-web | services/{w}-api | src/{w}/{w} | test/fixtures | __tests__ | vendor/ | .config |
    docs/{w}/ | ./src/{w} | ../{w} | ~/{w} | {w}/ | /var/log/{w} | /tmp/{w} | /opt/{w}/bin |
    src/main/java/com/{w} | notebooks | k8s/{env}""")
PATCH_NAMES = table("""{n4}-{w}-{w} | fix-{w} | fix_{ident} | {w}-{w} | {w} | {w}_{w} | bump-{w}-v{ver} |
    {n4}-{w} | {w}-{w}-{w} | hotfix-{num} | v{ver}-{w}""")
PATCH_DIRS = ("", "patches/", "hotfix/", "tmp/", "series/", "contrib/", "fixes/", "upstream/", "./",
              "~/work/", "patches/deps/", "../", "out/", "~/Downloads/", "debian/patches/", "/tmp/")
ERROR_PHRASES = table("""connection refused | permission denied | out of memory | segmentation fault |
    index out of range | unexpected EOF | no such file or directory | deadline exceeded | key not found |
    already borrowed | not implemented | division by zero | {failed} {verb} {obj} | {Cap} not found |
    invalid {w} | missing {w} field | {w} is deprecated | unknown {w} | retrying in {num}ms |
    TODO: {w} | deprecated: use {ident} | warning: unused variable | address already in use |
    too many open files | broken pipe | stack overflow""")
SLOTS |= dict(failed=table("failed to | could not | unable to | cannot | timed out trying to"),
              verb=table("open | parse | connect to | read | load | resolve | decode | bind | flush"),
              obj=table("config | socket | header | database | the cache | host | token | session | buffer"),
              special=SPECIAL_FILES, recv=table("self | this | np | os | jax | ctx | app | req | {w}"))
REGEXES = (r"^def {w}_\w+", r"{W}_[A-Z]+", r"\b{w}\b", r"{w}.*{w}", r"[0-9]+\.[0-9]+", r"{w}\(\s*\)",
           r"(get|set){Cap}", r"^import {w}", r"TODO\({w}\)", r"\.{w}\(", r"^class \w+{Cap}", r"{w}_v[0-9]+",
           r"\d+ms", r"log\.(warn|error)", r"#\s*{w}", r"^\s*@{w}", r"fn {w}<.*>", r"{W}=.*",
           r"{w}|{w}", r"^\s+return None", r"[A-Z][a-z]+Error", r"https?://{w}", r"\s+$", r"{w}\[\d+\]")
MARKERS = ("TODO", "FIXME", "XXX", "HACK", "NOTE:", "@deprecated", "@override", "#pragma once", "unsafe",
           "panic!(", "unwrap()", "console.log(", "print(", "breakpoint()", "pdb.set_trace()",
           "# type: ignore", "noqa", "async fn", "#[derive(Debug)]", "// TODO", "@pytest.mark.skip",
           "raise NotImplementedError", "__init__", "__main__", "eval(", "debugger;", "expect(",
           "// eslint-disable", "#[cfg(test)]", "dbg!(", "assert False", "@Deprecated", "go func(",
           "useState(", "SELECT *", "sleep(", "@staticmethod", "TODO(perf)")
CODE = table("""import {w} | from {w} import {ident} | class {Cap}{Cap} | def {ident} | fn {ident} |
    func {Cap} | #include <{w}.h> | struct {Cap} | interface {Cap} | const {W} = | let {ident} = |
    impl {Cap} for | {w}: {Cap} | return {ident} | {Cap}<{Cap}> | {recv}.{ident} | {recv}.{ident}( |
    {Cap}::{ident} | std::{w} | {w}::{w}::{ident} | {ident}( | export default {Cap} | use {w}::{Cap} |
    package {w} | @{Cap}( | enum {Cap} | type {Cap} = | pub fn {ident} | new {Cap}( | extends {Cap}""")
# Identifier-like names in more shapes than augment._identifier makes (dotted, namespaced, kebab, flags).
NAMES = table("""{ident}.{ident} | {w}.{w}.{ident} | {Cap}.{ident} | {Cap}::{ident} | {Cap}::{Cap}::{ident} |
    {w}-{w} | {w}-{w}-{w} | --{w}-{w} | --{w} | ${W} | ${W}_{W} | {W}_{W}_{W} | @{w}/{w} | {ident}() |
    {Cap}Error | {Cap}Exception | Err{Cap} | test_{w}_{w} | {w}_{w}_test | is{Cap}{Cap} | on{Cap}Click |
    use{Cap} | E{n4} | v{ver} | {Cap}#{ident} | {w}:{w} | __{w}__ | {w}_{w}_{w}_v{num} | {Cap}{Cap}{Cap}""")
NOTES = table("""the {env} server is on port {port} | {person} owns the {w} module |
    deploys happen on {day}s | {person} is on holiday until {day} | the meeting moved to {time} |
    lr {lr} worked best for the {w} run | {path} is flaky | run {num} diverged at step {step} |
    we use {fmt} for formatting | the API key rotates every {num} days | the release branch is release/{ver} |
    my {favourite/favorite} editor is {editor} | I prefer {pref} | {ident} returns None on empty input |
    the GPU box is called {host} | we never push to main on {day}s |
    batch size {num} runs out of memory on the {gpu} | standup is at {time} |
    the {w} cache lives in /var/cache/{w} | {person} reviews every change to {dir} | the demo is on {day} |
    the checkpoint from run {num} is the best so far | the {env} database password is in the vault |
    {person}'s birthday is in {March/June/October} | we should rename {ident} to {ident} |
    the docs build needs sphinx {ver} | {person} wants a heads-up before anyone touches {path} |
    {ident} is deprecated since v{ver} | the nightly job takes {num} minutes | {person} prefers {pref} |
    the {w} service restarts every {day} at {time} | the code freeze starts on {day} |
    {person} is on call this week | the {w} bug only shows up on {env} | {ident} must stay backwards compatible |
    tests in {dir} need a GPU | our naming convention is {snake_case/camelCase/kebab-case} |
    the {w} endpoint is rate-limited to {num} requests per minute | use {path} as the entry point |
    {ident} is only called from {path} | the deadline for {w} is {day} | don't touch {dir} without asking {person} |
    prod deploys need {num} approvals | Q{1/2/3/4} goal: ship the {w} feature | {person} likes {pref} |
    the {gpu} node is reserved on {day}s | {ident} leaks memory under load | the VPN drops every {num} minutes""")
TOPICS = table("""the {env} server | {person} | the {w} module | port {port} | {ident} | the release branch |
    {host} | deploys | the meeting | learning rate | the GPU quota | flaky tests | the CI cache |
    my {favourite/favorite} editor | the {w} migration | run {num} | the rule about {day}s | {person}'s birthday |
    the {env} database | standup | the API key | {fmt} | batch size | the nightly job | the demo |
    the {w} cache | the {w} service | what {person} said about {w} | the {day} deploy | the vault |
    {person} and the {w} module | the {w} outage | the on-call rota | the {env} credentials |
    the Q{1/2/3} roadmap | our naming convention | the {w} bug | the last incident | my preferences |
    the wifi password | the deadline | the code freeze | the {ident} refactor | {path} | the {w} endpoint |
    {person}'s review | the {gpu} node | the VPN""")

ORDINALS = {1: ("first", "1st", "top"), 2: ("second", "2nd"), 3: ("third", "3rd"), 4: ("fourth", "4th"),
            5: ("fifth", "5th"), 6: ("sixth", "6th"), 7: ("seventh", "7th")}
PICK_P = (0.4, 0.25, 0.15, 0.12, 0.08)
# Picks by number: "open hits 1 and 3", "read hit #2", "item three", "entry number 4", "match no. 2".
CARDINALS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUMBER_FORMS = ("{d}", "#{d}", "{w}", "number {d}", "number {w}", "no. {d}", "No. {d}")  # {no}
CARD_FORMS = ("{w}", "{d}", "#{d}")  # {card}: one form for all the picks of a frame ("hits 1 and 3")


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# ---------------------------------------------------------------- argument values

def file_path(rng) -> str:
    if rng.random() < 0.55:
        shape = pick(rng, ("a/b.", "a.", "./a/b.", "a/b/c.", "/a/b.", "a/b."))  # _path keeps lead and ext
        return _path(shape + pick(rng, FILE_EXTS), rng)
    return text(pick(rng, FILE_FORMS), rng)


def dir_path(rng) -> str:
    if rng.random() < 0.55:
        return _path(pick(rng, ("a/b", "a/b/", "./a", "a", "a/b/c", "/a/b", "a/")), rng)
    return text(pick(rng, DIR_FORMS), rng)


def patch_path(rng) -> str:
    ext = ".diff" if rng.random() < 0.25 else ".patch"
    return pick(rng, PATCH_DIRS) + text(pick(rng, PATCH_NAMES), rng) + ext


def pattern(rng) -> str:
    """An identifier in any casing or shape, an error message, a regex, a marker (TODO, unwrap()) or a
    code fragment."""
    r = rng.random()
    if r < 0.28:
        return _identifier(rng)
    form = (NAMES if r < 0.43 else ERROR_PHRASES if r < 0.55 else REGEXES if r < 0.66 else MARKERS if r < 0.76
            else CODE)
    return text(pick(rng, form), rng)


def _term(c: int, x: str) -> str:
    return x if c == 1 else f"{c}*{x}"


def identity(rng) -> tuple[str, str]:
    """A true polynomial identity (lhs, rhs) from one of 28 families, in random letters and constants."""
    x, y, z, w = (str(v) for v in rng.choice(list("abcdfghkmnpqrstuvwxyz"), 4, replace=False))
    k, c = int(rng.integers(2, 10)), int(rng.integers(1, 10))
    a, b = (int(v) for v in rng.choice(np.arange(1, 10), 2, replace=False))
    m, n = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    families = (
        (f"{k}*({x}+{y})", f"{k}*{x}+{k}*{y}"), (f"{k}*({x}-{y})", f"{k}*{x}-{k}*{y}"),
        (f"{x}*({y}+{z})", f"{x}*{y}+{x}*{z}"), (f"({x}+{y})*{z}", f"{x}*{z}+{y}*{z}"),
        (f"({x}+{y})*({x}-{y})", f"{x}^2-{y}^2"), (f"({x}-{y})*({x}+{y})", f"{x}^2-{y}^2"),
        (f"({x}+{c})^2", f"{x}^2+{_term(2 * c, x)}+{c * c}"),
        (f"({x}-{c})^2", f"{x}^2-{_term(2 * c, x)}+{c * c}"),
        (f"({x}+{y})^2", f"{x}^2+2*{x}*{y}+{y}^2"), (f"({x}-{y})^2", f"{x}^2-2*{x}*{y}+{y}^2"),
        (f"({x}+{a})*({x}+{b})", f"{x}^2+{_term(a + b, x)}+{a * b}"),
        (f"({x}+{a})*({x}-{b})", f"{x}^2{'+' if a > b else '-'}{_term(abs(a - b), x)}-{a * b}"),
        (f"({x}-{c})*({x}+{c})", f"{x}^2-{c * c}"), (f"{x}*{y}", f"{y}*{x}"), (f"{x}+{y}", f"{y}+{x}"),
        (f"{x}*{y}*{z}", f"{z}*{y}*{x}"), (f"{x}*({y}*{z})", f"({x}*{y})*{z}"),
        (f"({x}+{y})+{z}", f"{x}+({y}+{z})"),
        (f"{a}*{x}+{b}*{x}", f"{a + b}*{x}"), (f"{x}-{x}", "0"), (f"{x}^{m}*{x}^{n}", f"{x}^{m + n}"),
        (f"({x}+{y})^3", f"{x}^3+3*{x}^2*{y}+3*{x}*{y}^2+{y}^3"), (f"-({x}-{y})", f"{y}-{x}"),
        (f"({a}*{x}+{b})^2", f"{a * a}*{x}^2+{2 * a * b}*{x}+{b * b}"),
        (f"({x}+{y})*({z}+{w})", f"{x}*{z}+{x}*{w}+{y}*{z}+{y}*{w}"),
        (f"({x}+{y})^2-({x}-{y})^2", f"4*{x}*{y}"),
        (f"({x}+{y})*({x}^2-{x}*{y}+{y}^2)", f"{x}^3+{y}^3"), (f"{x}*{x}*{x}", f"{x}^3"),
    )
    lhs, rhs = pick(rng, families)
    if rng.random() < 0.2:
        lhs, rhs = rhs, lhs
    if rng.random() < 0.2:  # spaced operators: "x + y" (a leading minus stays attached)
        lhs, rhs = (re.sub(r"(?<=[\w)])([+\-])(?=[\w(])", r" \1 ", s) for s in (lhs, rhs))
    return lhs, rhs


# ---------------------------------------------------------------- frames per tool

# FRAMES: whole requests (questions, indirect, terse). CLAUSES: imperatives, used alone in a
# WRAPPER ("can you {}?") and as the steps of composites.
FRAMES = {k: table(v) for k, v in dict(
    TALK="""{greet}{/ there/ gestalt/ buddy/ friend/ mate} | {greet}{/!}{/ how are you?/ what's up?} |
        how are you {today/doing/feeling}? | how's your day going? | what have you been up to? |
        how are things? | what's your name? | who made you? | are you {botlike}? | what can you do? |
        what are you good at? | do you have feelings? | do you ever {sleep/dream/get bored/get tired}? |
        how old are you? | where do you live? | do you like {music/cats/dogs/jazz/football/poetry}? |
        what's your {favourite/favorite} {fav}? | which do you prefer, {opinion}? | what do you think about {opinion}? |
        thoughts on {opinion}? | tell me a joke | tell me a joke about {topic_fun} | know any good jokes? |
        make me laugh | say something funny | got a pun for me? | i'm {feeling} today | feeling {feeling} |
        ugh, {bad} | {bad}, what a day | I had a {rough/great/weird/long} day | what is {concept}? |
        what's {concept}, roughly? | explain {concept} in one sentence | explain {concept} like I'm five |
        what's the difference between {pairq}? | why is the sky blue? | how do rainbows form? |
        what is the capital of {Peru/Canada/Kenya/Norway/Japan}? | recommend a good {rec} |
        any {rec} recommendations? | tell me a fun fact about {topic_fun} |
        write me a haiku about {topic_fun} | thanks{/!/ a lot/, that helped/ so much} | thank you | cheers |
        nice work{/ today/!} | great job | bye | see you {tomorrow/later/soon} | good night | ok cool | lol |
        never mind | that's all for now |
        I wonder {if you ever get bored/how you work inside/what you dream of} |
        can we just chat{/ for a minute}? | let's chat for a bit | I'm bored, say something interesting |
        tell me something I don't know | what's the meaning of life? | you there? | are you there? |
        sing me a song | do you think it will rain {today/tomorrow}? | who would win, a shark or a bear? |
        what day is it today? | what's new? | how's it going? | how have you been? | long time no see |
        good to see you | how was your weekend? | happy {Friday/Monday/new year/holidays}! | I'm back | brb |
        gtg | ttyl | see ya | catch you later | have a good one | take care | thank you so much |
        much appreciated | you're the best | awesome, thanks! | perfect, thank you | that's great | nice one |
        good bot | cool cool | sounds good | got it | ok thanks | no worries | sorry about that | my bad |
        oops | haha | lmao | 🙂 | 👍 | what's the weather like{/ today}? | what time is it? |
        can you keep a secret? | do you have a {favourite/favorite} {fav}? | what's your take on {opinion}? |
        what languages do you speak? | can you speak {French/Spanish/German/Japanese}? |
        how do you say hello in {Japanese/Italian/Welsh}? | who are you? | introduce yourself |
        tell me about yourself | what are your hobbies? | do you ever take breaks? | where are you from? |
        can I ask you something? | I have a question | are you busy? | you rock | that's hilarious |
        I'm {feeling}, cheer me up | cheer me up | give me a pep talk | motivate me | tell me a story |
        tell me a riddle | what's a good name for a {cat/dog/goldfish/houseplant}? |
        how do I make {pancakes/a good coffee/sourdough bread}? | what should I have for {lunch/dinner}? |
        any plans for the weekend? | I just got back from {Rome/holiday/the gym/a conference} |
        it's my birthday today | I got promoted! | guess what? | I'm learning {Spanish/guitar/Rust/to cook} |
        what would you do with a million {dollars/pounds}? | is a hot dog a sandwich? | {opinion}? |
        summer or winter? | how many legs does a spider have? | how far away is the moon? |
        why do cats purr? | what's the tallest mountain? | explain {concept} simply |
        in a nutshell, what is {concept}? | ELI5 {concept} | how does {concept} work? |
        can you explain {concept}? | I never understood {concept} | {summarise/summarize} {concept} for me |
        {thanks/thank you} for {running the tests/fixing the build/the search earlier}{/!/, appreciate it} |
        {thanks/thank you} for {checking the docs/training the model/the eval numbers}{/!/, appreciate it} |
        what's the point of {unit tests/a linter/type checking/a dry run/formal proofs/code search}? |
        what is {a unit test/a linter/a patch file/a Lean proof/a training run/an eval set/a test suite}? |
        explain how {a compiler/model training/a linter/unit testing/a proof assistant} works |
        do you enjoy {writing tests/reading docs/proving theorems/searching through code}? |
        how do you feel about {flaky tests/writing docs/long training runs/merge conflicts}? |
        why do people write {unit tests/docs/proofs}? |
        is it hard to {train a model/write a proof in Lean/build a compiler}? |
        who invented {unit testing/the compiler/grep/git}? |
        let's talk about {topic_fun} | can we talk about {opinion}? | can we discuss {opinion}? |
        let's discuss {concept} | discuss {concept} with me | chat with me about {topic_fun} |
        I'd like to chat about {concept} | let's have a chat about {topic_fun} | wanna chat? |
        let's just talk for a bit | I just want to talk, no tasks | talk to me about {topic_fun} |
        tell me your thoughts on {concept} | what's your opinion on {opinion}? | what do you make of {opinion}? |
        let's debate {opinion} | convince me about {opinion} | what's on your mind? |
        what's something you find fascinating? | how's your {day} going? | do you want to talk about {topic_fun}? |
        let's change the subject | can we talk about something fun? | what do you like talking about? |
        tell me about your {favourite/favorite} {fav} |
        give me some advice on {staying focused/sleeping better/public speaking} |
        what do you think of me? | I'm taking a break, keep me company | any thoughts on {topic_fun}? |
        what would you ask me if you could?""",
    RUN_TESTS="""do {tests} pass? | do {tests} still pass? | does {suite} pass? |
        are {tests} passing right now? | are all tests green? | is {suite} green? |
        let's see if {suite} passes | let's see whether {tests} pass |
        check whether anything is failing in {suite} | anything failing in {suite}? | any failing tests? |
        I wonder if {tests} still pass | I wonder whether {suite} is still green |
        would you mind running {tests}? | mind running {suite} real quick? |
        before I merge, can you {run} {tests}? | can we get a test run going? | make sure {tests} pass |
        see if {tests} pass | time for a test run | is everything passing? |
        {run} {tests} and report what fails | {run} {suite} and show me the failures | how do {tests} look? |
        quick sanity check: do {tests} pass? | go ahead and {run} {tests}, I'll wait | tests? |
        test everything | tests pls | tests please | run tests pls | unit tests? | tests, please | npm test |
        cargo test | go test ./... | make test | pytest -q | yarn test | tox | mvn test | are {tests} still green? |
        did I break any tests? | did my change break anything in {suite}? | is anything red in {suite}? |
        how's {suite} looking? | what's the state of {tests}? | are we green? | are the {kind} tests passing? |
        do the {kind} tests pass? | I'd like to see {tests} run | I need {tests} run | I need a test run |
        I need to know if {tests} pass | could I get a test run? | give {tests} a spin |
        put {suite} through its paces | give me a test report | what fails in {suite}? |
        which tests are failing? | show me which tests fail | does everything pass? | test it | test the code |
        test my changes | test the {w} module | run a quick test pass | can you test this? |
        {run} {tests} and tell me what breaks | smoke test it | any red in {suite}? | how green is {suite}? |
        does {runner} pass? | is {runner} green? | {runner} pls | what does {runner} say? |
        what's the pass rate of {suite}? | how many tests fail right now? | are there any red tests? |
        is anything broken test-wise? | did {tests} survive my refactor? | any test regressions since {day}? |
        can you verify {tests} still pass? | do my changes pass {tests}? | status of {tests}? | what's failing? |
        let me know whether {tests} pass | {tests} - green or red? | pass or fail on {tests}? |
        are {tests} happy with my change? | exercise {suite} for me""",
    CHECK_BUILD="""does {proj} compile? | does {proj} still build? | will it compile? |
        is the build {green/broken/red/clean/ok/passing}? | any type errors in {proj}? | any compile errors? |
        are there any build errors? | does it build cleanly? | I wonder if {proj} still compiles |
        can you tell me whether {proj} builds? | quick question: does {proj} type-check? |
        see if the build passes | do a quick build check before I push |
        would you kindly make sure {proj} still type-checks | did I break the build? |
        the build might be broken, can you check? | verify the build is clean | build check please |
        does {proj} type-check? | run the compiler and report errors | is CI going to build it? | build? |
        compile? | does it build? | does it compile? | builds? | still compiles? | is it building? | build pls |
        cargo check | cargo build | go build ./... | tsc --noEmit | npm run build | make build | mypy . |
        any compiler errors? | any compiler warnings? | does {proj} compile without errors? |
        is the build still green after my change? | did my last commit break the build? | I need {proj} built |
        I need a build check | I'd like to know if {proj} compiles | can you confirm {proj} builds? |
        is main building? | will the build pass? | are there any type errors? | does the typechecker pass? |
        does mypy pass? | does tsc pass? | what's the build status? | how's the build? | build status? |
        build ok? | does {proj} build on my machine? | is {proj} building cleanly? | does {builder} pass? |
        does {builder} still succeed? | is the build happy? | any errors from {builder}? |
        is the build healthy? | does the build go through? | does {proj} build without warnings? |
        can {proj} be built? | does {builder} complain? | is the typecheck clean? | what does the compiler say? |
        any build breakage? | has anything broken the build? | is {proj} buildable? | build green? |
        did {proj} survive the rebase? build it | are we still compiling?""",
    FIX_TESTS="""the tests are {red/failing/broken}, can you fix them? | tests are failing, sort it out |
        {num} tests are failing, please fix them | something broke the tests, fix it |
        can you get {suite} green again? | could you have a go at fixing the tests? |
        I wonder if you could fix {failing} | why are the tests failing? fix it |
        figure out why the tests fail and fix it | the test suite is broken - repair it | fix tests pls |
        would you repair {failing}? | tests broke after my change, can you fix them? |
        please make the tests green again | {failing} need fixing | can you make {failing} pass? |
        there are test failures, deal with them | patch the code so the tests pass |
        our test suite is red - fix it | I need {failing} fixed | the {kind} tests are failing, fix them |
        can you look into {failing} and fix them? | fix tests | tests red, fix | tests broken, help |
        CI is red, please fix the tests | CI went red after my merge, can you get the tests green? |
        the {kind} tests are red again, fix them | I'd like {failing} fixed before lunch |
        can you heal {failing}? | could you get {tests} passing again? | please get {suite} back to green |
        the suite is red, make it green | {num} failures in {suite}, please fix | help me fix {failing} |
        there are {num} red tests, can you fix them? | why is {suite} failing? please fix it |
        tests failing again :( fix pls | get CI green | the build passes but {tests} fail, fix them |
        {failing} are blocking my PR, fix them | make {suite} pass | turn {suite} green |
        something's red in {suite}, mend it | {suite} broke, please repair it | could you debug {failing}? |
        why do {failing} fail? sort them out | {num} specs are failing, patch them up | can you make CI pass again? |
        help, the tests are broken | I broke the tests, can you fix them? | can you unbreak {tests}? |
        my PR is red, fix the tests | there's a failing test, fix it | the tests are flaky and red, stabilise them |
        can you mend {failing}?""",
    DOCS_LINT="""any lint errors in {docs}? | any broken links in {docs}? |
        anything wrong with the formatting of {docs}? | docs lint | quick docs check | docs linter please |
        run markdownlint | I wonder if the docs still pass lint |
        would you check whether the docs have lint errors? | can you check {docs} for broken formatting? |
        make sure the documentation passes lint | is the documentation clean? | are the docs well formed? |
        before the release, lint {docs} | the docs look messy, lint them |
        does the documentation pass the linter? | any warnings from the docs linter? |
        check the rendering of {docs} | look for broken links in {docs} |
        proofread {docs} for formatting issues | validate the markdown in {docs} |
        are there dead links or bad headings in {docs}? | docs? | lint docs | lint the docs pls |
        docs lint pls | markdownlint pls | are {docs} lint-clean? | do {docs} pass markdownlint? |
        any lint warnings in {docs}? | any markdown errors? | any dead links in {docs}? | is the markdown valid? |
        are there broken links anywhere in {docs}? | are {docs} ready for the release? lint them |
        I need {docs} linted | I'd like {docs} linted | check the spelling in {docs} | spellcheck the docs |
        is the README well-formed? | does the changelog pass lint? | do {docs} have formatting problems? |
        run vale on the docs | docs look ok? | are {docs} clean? |
        are the docs tidy? | any style issues in {docs}? | are {docs} well formatted? | do {docs} have typos? |
        any bad headings in {docs}? | how clean is the markdown? | is the markdown lint-free? |
        any formatting errors in the README? | are there any broken anchors in {docs}? | docs in good shape? |
        does markdownlint complain about {docs}? | do the docs pass the style checks?""",
    LEAN_SUITE="""do {lean_p} still go through? | are {lean_p} still valid? | does {lean_s} pass? |
        do {lean_p} compile? | is {lean_s} green? | I wonder whether {lean_p} still hold |
        would you mind running {lean_s}? | can you verify {lean_p}? | lean suite | lean check please |
        make sure {lean_p} still compile | after the mathlib bump, do {lean_p} still work? |
        did anything break in {lean_s}? | any failing theorems in {lean_s}? |
        is every theorem in {lean_s} still proved? | how's {lean_s} looking? |
        are there broken proofs in {lean_s}? | typecheck {lean_p} | please run the Lean proof checks |
        lean proofs ok? | I changed a lemma, can you {run} {lean_s}? | give {lean_s} a run | lean? |
        lean suite pls | run lean pls | does {lean_s} still pass? | are {lean_p} still green? |
        do {lean_p} still typecheck? | did the mathlib bump break {lean_p}? | any failures in {lean_s}? |
        is everything in {lean_s} still proved? | I need {lean_s} run | I'd like {lean_p} re-checked |
        how are {lean_p} doing? | are {lean_p} ok? | do all the theorems still check? | re-check the theorems |
        do the lemmas still go through? |
        do all {lean_p} still check? | is mathlib still happy with {lean_p}? | does lake build pass? |
        any sorries left in {lean_p}? | are {lean_p} sound? | any proof errors in {lean_s}? |
        has anything in {lean_s} regressed? | do the formal proofs still hold up? | lean green? | lake build? |
        can Lean still verify {lean_p}? | are {lean_p} all checked?""",
    EVAL="""how well does {model} do on the benchmarks? | how good is {model} now? |
        what are the eval numbers right now? | what's the current accuracy? | how does {model} score? |
        let's see how {model} scores | I wonder how {model} performs on the held-out set |
        can you evaluate {model}? | benchmark yourself | is {model} any better now? evaluate it | eval pls |
        get me fresh eval numbers | how accurate is {model}? | run {evals} and report the scores |
        could you score {model} on the benchmarks? | grade {model} | how did {model} do on the eval set? |
        report the eval metrics for {model} | give me the benchmark numbers | compute metrics for {model} |
        did {model} get better? run the evals | eval? | evals? | scores? | eval please | run evals pls |
        how's {model} doing? | how is {model} performing? | what's {model}'s accuracy? |
        what score does {model} get? | what are the latest numbers? | where are we on the benchmarks? |
        how does {model} stack up on the benchmarks? | has {model} improved? | did the last run help? |
        is {model} better than before? | what's our accuracy at? | I need eval numbers |
        I'd like to see how {model} does | can I get a score for {model}? | give me the scores for {model} |
        test {model} on the held-out set | assess {model} | measure how good {model} is |
        show me the metrics for {model} | how well is {model} doing? | numbers for {model}? |
        how well do you score on the benchmarks? | how good are you on {evals} now? | how accurate are you now? |
        how do you perform on the held-out set? | what's your score on {evals}? | test yourself on the benchmarks |
        evaluate yourself | grade yourself on {evals} | are you getting any better? run {evals} |
        did training make you better? evaluate | what accuracy do you get? | run {evals} on yourself |
        has {model} regressed? | what's the eval loss? | how do the numbers look for {model}? |
        where does {model} land on {evals}?""",
    TRAIN="""start training | let's train | time to {tverb} {model} | can you {tverb} {model}? |
        please train yourself | could you {tverb} {model} for me? | I'd like you to {start} {trainrun} |
        {tverb} {model} on the built-in data | {tverb} {model} for a few more steps |
        we need a fresh training run | resume training | train for a while | do another training run |
        fit {model} to the data | update the weights with a training run |
        I wonder if you could {tverb} {model} overnight | {start} {trainrun} now |
        can we {start} {trainrun}? | the model is undertrained, {tverb} it more |
        let's {tverb} {model} again | more training please | get a training run going | train! | train pls |
        go train | retrain | retrain pls | train it | more training | more epochs please | another epoch? |
        another round of training please | train for {num} steps | train for another {num} steps |
        can you train for {num} more steps? | train on the new data | train a bit more |
        train {model} overnight | keep training | resume training from the last checkpoint |
        I need {model} retrained | I'd like {model} trained some more | can we {tverb} {model}? |
        let's do a training run | {optimise/optimize} the weights | teach {model} some more |
        update {model} with more training | is it time to {tverb} {model}? go for it |
        improve yourself on the new data | can you learn from the new data? | go learn some more |
        get smarter, train on the data | could you train yourself a bit? | please fine-tune yourself |
        learn from the latest examples | keep learning | teach yourself on the built-in data |
        how about another training run? | let's fine-tune on the fresh data | can you update your weights? |
        time for some more training | train yourself overnight | can you study the new data? |
        I'd like you to get better through training""",
    SEARCH="""where is {pat} used? | where is {pat} defined? | who calls {pat}? | which files mention {pat}? |
        is {pat} used anywhere? | any mentions of {pat} in the codebase? | can you find where {pat} appears? |
        I wonder where {pat} is used | where do we call {pat} | search the workspace for {pat} |
        please search the code for {pat} | look up every mention of {pat} | hunt down every use of {pat} |
        show me every place that uses {pat} | grep -rn {pat} | rg {pat} | find all instances of {pat} |
        find references to {pat} | track down {pat} | where does {pat} show up? |
        do we still use {pat} somewhere? | find the string {pat} | search {pat} | grep the repo for {pat} |
        I need every occurrence of {pat} | could you grep for {pat}? | search for {pat} across the project |
        what references {pat}? | git grep {pat} | ag {pat} | {pat} where? | usages of {pat}? |
        callers of {pat}? | who uses {pat}? | who references {pat}? | where's {pat}? | where's {pat} defined? |
        where's {pat} referenced? | where is {pat} referenced? | where is {pat} declared? |
        where do we set {pat}? | which module defines {pat}? | what calls {pat}? |
        is {pat} still referenced anywhere? | is there any code that uses {pat}? | does anything import {pat}? |
        I need to find {pat} | I'm looking for {pat} | I'd like to know where {pat} is used |
        help me find {pat} | can you locate {pat}? | any hits for {pat}? | how many places use {pat}? |
        grep -r {pat} . | grep -rn {pat} src | rg -n {pat} | search: {pat} | find: {pat} |
        look for {pat} everywhere | find every usage of {pat} | search for instances of {pat} |
        scan the repo for {pat} | where does {pat} live? | grep -i {pat} | which files contain {pat}? |
        what files reference {pat}? | is {pat} defined anywhere? | show me the lines with {pat} |
        is there a {pat} anywhere in the code? | where can I find {pat}? | any code touching {pat}? |
        what uses {pat}? | who imports {pat}? | where does {pat} come from? | where do we reference {pat}? |
        list every occurrence of {pat} | show me all hits for {pat} | grep me {pat} | search code: {pat} |
        give me all the places where {pat} appears | is {pat} mentioned anywhere? | which files use {pat}? |
        quick grep: {pat}""",
    READ_FILE="""what's in {path}? | what does {path} say? | what does {path} look like? |
        can you show the contents of {path}? | could you open {path} for me? | I want to read {path} |
        I wonder what's inside {path} | let me see {path} | please read the file {path} |
        print the file {path} | show the contents of {path} | open the file named {path} |
        give me the contents of {path} | look at the file {path} | pull up {path} | bring up {path} |
        mind opening {path}? | can I see {path}? | need to look at {path} | take a look at {path} |
        peek at {path} | read me {path} | what is in the file {path}? | show me what {path} contains |
        less {path} | bat {path} | {path}? | contents of {path}? | open {path} pls | show {path} pls |
        what's inside {path}? | what does {path} contain? | what's written in {path}? |
        could you print {path}? | can you display {path}? | I need to see {path} | I'd like to read {path} |
        I need the contents of {path} | let me look at {path} | read {path} to me | show me the file {path} |
        open up {path} please | print out {path} | print the contents of {path} |
        dump the contents of {path} | can you pull up {path}? | have a look at {path} |
        show me the source of {path} | what's the content of {path}? | how does {path} look? |
        show me what {path} has in it | could you read out {path}? | let me have a look at {path} |
        I'd like a look at {path} | can you cat {path}? | what's inside the file {path}? |
        open {path} so I can see it | mind showing me {path}? | paste {path} here |
        can you print out {path} for me? | how is {path} written? | I'm curious what {path} says |
        quick look at {path}? | head {path}""",
    LIST_FILES="""what files are in {dir}? | which files live in {dir}? | what's in the {dir} folder? |
        what's inside the {dir} directory? | can you list the files under {dir}? |
        show me the directory tree under {dir} | show the contents of directory {dir} |
        what do we have in {dir}? | I wonder what's in the {dir} directory | enumerate files in {dir} |
        ls -la {dir} | give me a listing of {dir} | how many files are in {dir}? | list the files |
        what files do we have? | list everything in the workspace | what's in the repo? |
        please list the files at the project root | ls | show me the project structure |
        which files are here? | what does the workspace contain? | give me a directory listing |
        show all files | list the top-level files | what's at the root of the repo? |
        I wonder what files are in this project | ls {dir} | ls -l {dir} | ls -R {dir} | tree {dir} |
        dir {dir} | what's under {dir}? | what lives in {dir}? | what's in {dir}? | contents of {dir}? |
        files in {dir}? | {dir} contents? | which files are under {dir}? | what's inside {dir}? |
        show me what's in {dir} | show me the files in {dir} | I need a listing of {dir} |
        I'd like to see what's in {dir} | can you enumerate {dir}? | how is {dir} laid out? |
        what does {dir} contain? | what's the layout of the repo? | what's in here? | what files are there? |
        show me the files | ls pls | list files pls | tree | what's in this directory? |
        what's in the current directory? | what do we have here? | show the repo layout |
        give me the file list | what sits in {dir}? | which files does {dir} have? | show directory {dir} |
        what's in the {dir} dir? |
        anything in {dir}? | is {dir} empty? | what does {dir} hold? | what kinds of files are in {dir}? |
        how's the repo {organised/organized}? | can you show me the folder structure? |
        what's the directory structure of {dir}? | give me an overview of the files in {dir} |
        which files are in the root? | what's at the top level? | what directories are there? |
        show me the tree | what got checked into {dir}?""",
    PATCH_DRY_RUN="""would {patch} apply? | does {patch} apply cleanly? |
        does {patch} still apply on top of main? | can you see whether {patch} applies? |
        would my patch at {patch} go in cleanly? | I wonder if {patch} applies |
        check if {patch} applies cleanly | verify that {patch} applies without conflicts |
        simulate applying {patch} | git apply --check {patch} | see if {patch} conflicts with anything |
        will {patch} apply to the current tree? | try {patch} without actually applying it |
        sanity-check that {patch} applies | preview applying {patch} | check the patch {patch} |
        dry run {patch} | is {patch} safe to apply? | any conflicts if I apply {patch}? |
        patch dry run on {patch} | I got {patch} from a colleague, does it apply? | will {patch} apply? |
        does {patch} apply? | {patch} apply cleanly? | can {patch} be applied cleanly? |
        would {patch} conflict? | does {patch} conflict with main? | any conflicts with {patch}? |
        patch --dry-run -p1 < {patch} | patch -p1 --dry-run -i {patch} | dry-run {patch} pls |
        I need to know if {patch} applies | I'd like to test-apply {patch} | can you dry-run {patch}? |
        {person} sent {patch}, does it apply? | before I apply {patch}, will it go in cleanly? |
        is {patch} still good against HEAD? | does {patch} apply on HEAD? |
        can {patch} go in without conflicts? | will {patch} merge cleanly? | is {patch} still applicable? |
        does {patch} still fit the current tree? | do all hunks of {patch} apply? | is {patch} stale? |
        does {patch} need a rebase? | git apply --check {patch} pls | can you trial {patch}? |
        what happens if I apply {patch}? dry run it | is {patch} compatible with HEAD? |
        would {patch} apply on main? | any rejected hunks in {patch}?""",
    PROVE_ALGEBRA="""prove {eq} | show that {lhs} equals {rhs} | is {lhs} equal to {rhs}? |
        is {lhs} the same as {rhs}? | verify {eq} | can you prove that {lhs} equals {rhs}? | check that {eq} |
        prove the identity {eq} | demonstrate that {lhs} equals {rhs} | verify algebraically: {eq} |
        are {lhs} and {rhs} equal? | does {eq} hold? | confirm that {lhs} equals {rhs} |
        I think {eq}, can you prove it? | I wonder if {lhs} really equals {rhs} |
        double-check the algebra: {eq} | show {lhs} simplifies to {rhs} | prove: {eq} |
        is it true that {eq}? | formally verify {eq} | quick proof: {eq}? | does {lhs} equal {rhs}? |
        show me a proof that {eq} | expand {lhs} and show it's {rhs} | {eq}? | is {eq} true? |
        is {eq} correct? | true or false: {eq} | {eq} - true? | {eq}, right? | prove pls: {eq} |
        can you show {eq}? | I need a proof that {eq} | I'd like to see a proof that {eq} |
        does {lhs} expand to {rhs}? | does {lhs} simplify to {rhs}? | is {lhs} identical to {rhs}? |
        is {lhs} equivalent to {rhs}? | check my algebra: {eq} | my homework says {eq}, is that right? |
        confirm the identity {eq} | establish {eq} | verify the identity {eq} | is it the case that {eq}? |
        show algebraically that {eq} | prove {lhs} equals {rhs} | prove that {lhs} is equal to {rhs} |
        is {eq} an identity? | does {lhs} reduce to {rhs}? | is {lhs} always {rhs}? |
        can {lhs} be rewritten as {rhs}? | prove for me that {eq} | want a proof: {eq} |
        is this identity true: {eq}? | does {lhs} work out to {rhs}? | does the identity {eq} hold? |
        check: {eq} | does {lhs} come out as {rhs}? | I claim {eq}. prove it""",
    MEMORY_ADD="""note: {note} | remember {note} | please remember that {note} | keep in mind that {note} |
        save a note: {note} | add to memory: {note} | don't forget: {note} | store this: {note} |
        make a note that {note} | jot down that {note} | memo: {note} | remember '{note}' |
        note to self - {note} | for future reference, {note} | write down that {note} |
        commit to memory that {note} | can you remember that {note}? | I want you to remember that {note} |
        remember this for later: {note} | {memorise/memorize}: {note} | could you note that {note}? |
        heads up: {note}. remember that | FYI {note}, keep it in mind | remember: {note} | note this: {note} |
        note this down: {note} | jot this down: {note} | mental note: {note} | keep this in mind: {note} |
        for the record, {note} | for the record: {note} | log this: {note} | pin this: {note} |
        reminder: {note} | add a note: {note} | save this for later: {note} |
        please {memorise/memorize} that {note} | make sure you remember that {note} |
        don't let me forget that {note} | I need you to remember that {note} |
        I'd like you to remember that {note} | just so you know, {note}. remember that |
        btw {note} - note that down | fyi: {note}. save it | important: {note}. don't forget |
        remember this: {note} | store: {note} | file this away: {note} | take note: {note} |
        take a note that {note} | could you make a note that {note}? | write this down: {note} |
        save to memory: {note} | note for later: {note} |
        please keep this: {note} | save this: {note} | store in memory: {note} | new note: {note} |
        add a memory: {note} | remember, {note} | make sure to note that {note} | you should know that {note} |
        can you store that {note}? | would you jot down that {note}? | put this in your notes: {note} |
        add to your notes that {note} | record this: {note} | bookmark this: {note} | please record that {note}""",
    MEMORY_SEARCH="""what do you remember about {topic}? | do you remember anything about {topic}? |
        what did I tell you about {topic}? | remind me what I said about {topic} |
        search your memory for {topic} | what was the thing about {topic}? |
        have I mentioned {topic} before? | check memory: {topic} | what notes do you have on {topic}? |
        could you look through your notes for {topic}? | memory search: {topic} |
        what do we know about {topic} | anything stored about {topic}? | did I ever tell you about {topic}? |
        any notes on {topic}? | what have I said regarding {topic}? | refresh my memory on {topic} |
        what's in your memory about {topic}? | I wonder what I told you about {topic} | recall: {topic} |
        recall {topic} | recall anything on {topic} | remind me about {topic} | what did I say about {topic}? |
        what was {topic} again? | what did we decide about {topic}? | what did I note about {topic}? |
        notes on {topic}? | do I have any notes on {topic}? | any memories of {topic}? |
        have you got anything on {topic}? | do you recall {topic}? | do you recall what I said about {topic}? |
        can you recall {topic}? | look up {topic} in your notes | look up {topic} in memory |
        check your notes for {topic} | search my notes for {topic} | find my note about {topic} |
        pull up what I told you about {topic} | I forgot what I said about {topic}, remind me |
        I need my notes on {topic} | I'd like to know what I told you about {topic} |
        my memory's hazy - what did I say about {topic}? | what's stored under {topic}? |
        what do you have on {topic}? | query memory: {topic} | what's in my notes about {topic}? |
        anything in memory about {topic}? | search notes: {topic} | do my notes say anything about {topic}? |
        what have we got on {topic}? | does {topic} ring a bell? | did I ever mention {topic}? |
        anything in your notes on {topic}? | what was it I said about {topic}? | what do you recall about {topic}? |
        can you remind me about {topic}? | jog my memory on {topic} | what's on file for {topic}? |
        what's the note on {topic}? | any saved info on {topic}? | search your notes: {topic} |
        what did we note down about {topic}? | tell me what you remember about {topic}""",
).items()}

# Clauses start with their verb (gerund() turns it into "running", "fixing", ...); commands that start
# with a program name ("cargo check") go after "run" or in FRAMES.
CLAUSES = {k: table(v) for k, v in dict(
    RUN_TESTS="""{run} {tests} | {run} {suite} | run tests | run the {kind} tests | {run} pytest |
        give {tests} a run | test {proj} | test my changes | run npm test | run cargo test | run make test |
        run the {kind} suite | give {suite} a spin | do a test run | do a quick test pass | smoke-test {proj} |
        {run} the {kind} tests | run {runner} | {run} {runner} |
        give {tests} a go | run pytest on the {w} package | run the tests for the {w} module |
        check the tests pass | launch the test runner |
        execute the {kind} specs | verify {tests} pass | confirm {tests} are green | run the test target |
        run every test | rerun CI locally | kick the tests | do a full test pass | spin up the test runner |
        run a regression pass | run the test suite for the {w} package | exercise {proj}""",
    CHECK_BUILD="""check the build | {verify/confirm} the build | build {proj} | compile {proj} |
        type-check {proj} | typecheck {proj} | run a build check | do a build check |
        {check} that {proj} compiles | try building {proj} | run cargo check | run the type checker |
        check for compile errors | make sure {proj} builds | build it | compile everything | run the build |
        do a build | kick off a build | run cargo build | run go build | run tsc | run mypy |
        run the typechecker | typecheck everything | see if it builds | see whether {proj} compiles |
        {check} that {proj} still builds | check for type errors | verify it builds | test the build |
        do a clean build | {check} the build is green | run {builder} | rebuild {proj} | recompile {proj} |
        do a full build | check it compiles | compile and report errors |
        run a compile | produce a build | assemble {proj} | give {proj} a compile | put {proj} through the compiler |
        run the type checks | do a full rebuild | build from scratch | check that it compiles cleanly |
        run a debug build | run a release build | build the {w} crate | compile the {w} package |
        typecheck the {w} module""",
    FIX_TESTS="""{fix} {failing} | make the failing tests pass | get {suite} green again | fix the tests |
        fix what fails | fix any failures | attempt a fix for the test failures |
        try to fix whatever is failing | make the tests pass | fix the {kind} tests | make {failing} pass |
        get {tests} passing again | turn the tests green | get CI green again | heal the test suite |
        repair the broken tests | make everything pass | debug the failing tests and fix them |
        fix whatever's failing | get the tests to pass | make the suite pass again | repair the suite |
        unbreak {tests} | get {failing} working again | make the red tests green | debug {failing} |
        mend {failing} | debug and fix {failing} | patch the failing tests | {stabilise/stabilize} the flaky tests |
        make CI pass | repair {suite} | fix the red specs | chase down the test failures and fix them |
        bring {suite} back to green | sort out the broken tests | make the failures go away |
        correct the failing assertions | fix the code until the tests pass | resolve the test failures""",
    DOCS_LINT="""{lint} {docs} | lint the docs | run the docs linter | lint the markdown |
        check {docs} for lint errors | run a lint pass over {docs} | check the docs | lint the README |
        run markdownlint | run markdownlint on {docs} | check the markdown for errors |
        check {docs} for broken links | check for dead links in {docs} | run a link check on {docs} |
        check the docs formatting | validate the docs | lint all the markdown | run vale on {docs} |
        review {docs} for lint issues | run the doc checks | check the doc links |
        make sure {docs} are lint-clean |
        lint-check {docs} | run the markdown linter | scan {docs} for dead links |
        look over {docs} for formatting mistakes | run the prose linter | run a style check on {docs} |
        check the headings in {docs} | validate the links in {docs} | verify the markdown formatting |
        audit {docs} for broken links | do a docs lint pass | check the docs for typos""",
    LEAN_SUITE="""{run} {lean_s} | {run} {lean_p} | run lean | check {lean_p} | verify {lean_p} |
        run the Lean checks | re-verify {lean_p} | give {lean_s} a run | re-check {lean_p} | typecheck {lean_p} |
        make sure {lean_p} still go through | confirm {lean_p} still hold | check the theorems |
        compile the Lean proofs | run the proof checker | check every Lean theorem |
        check that the Lean files compile |
        run lake build | build the Lean project | check the proofs | verify the theorems | check the lemmas |
        re-run the proof checks | run the Lean verifier | machine-check {lean_p} |
        run the theorem checker over {lean_p} | validate {lean_p} | check {lean_s} |
        make sure every lemma is still proved | verify the formal proofs""",
    EVAL="""{run} {evals} | evaluate {model} | score {model} | benchmark {model} | run {evals} on {model} |
        measure {model}'s accuracy | evaluate | eval {model} | kick off an evaluation run | run eval |
        measure how {model} does | check how {model} scores | test {model} on the benchmarks | grade {model} |
        run the benchmark suite | compute the metrics | get eval numbers for {model} | run {evals} against {model} |
        see how {model} performs | assess {model} | do an eval pass | evaluate {model} on the held-out set |
        check {model}'s accuracy | re-run the evals | run the evaluation on {model} |
        run a self-evaluation | run yourself through {evals} | score yourself on {evals} |
        test yourself on the held-out set |
        measure your accuracy | run the scorer | compute the eval metrics for {model} | rate {model} on {evals} |
        put {model} through {evals} | check {model} against the benchmarks | take {model} through an eval pass |
        get a score for {model} | measure {model} on {evals} | quantify how good {model} is""",
    TRAIN="""{tverb} {model} | {start} {trainrun} | train | {tverb} it | run a training session |
        do a training run | train for {num} steps | train for another {num} steps | run {num} more training steps |
        train on the latest data | update the weights | do some training | resume training |
        train a bit more | fit {model} | run the trainer | launch the trainer | give {model} more training |
        do another epoch | run another epoch | train overnight | {optimise/optimize} the weights |
        run training | train up {model} | train {model} more | retrain from scratch | do more training on {model} |
        get better by training on the new data | train yourself | fine-tune yourself | retrain yourself |
        learn from the new data | teach yourself more | update your weights | fit the weights to the new data |
        do a fine-tuning pass | do a few epochs | run a few epochs | run some training steps |
        train {model} from the last checkpoint | warm-start {model} and train it""",
    SEARCH="""search for {pat} | grep for {pat} | grep {pat} | find uses of {pat} | find usages of {pat} |
        look for {pat} | find where {pat} is defined | search the code for {pat} |
        find occurrences of {pat} | locate {pat} | search the repo for {pat} | hunt down {pat} |
        hunt for {pat} | track down {pat} | scan the code for {pat} | search the codebase for {pat} |
        grep the repo for {pat} | find references to {pat} | find all instances of {pat} |
        find every mention of {pat} | list all uses of {pat} | find callers of {pat} | find who calls {pat} |
        find where we use {pat} | find where {pat} is used | search for the string {pat} |
        look for {pat} in the code | find every reference to {pat} | look up where {pat} is referenced |
        scan for {pat} | find {pat} in the codebase | search for occurrences of {pat} | run git grep {pat} |
        look up {pat} in the code | find anything matching {pat} | find lines matching {pat} |
        search for lines containing {pat} | find the declaration of {pat} | find the implementation of {pat} |
        grep the sources for {pat} | ripgrep for {pat} | find mentions of {pat} | pinpoint {pat} |
        search everything for {pat} | seek out {pat} | find places that call {pat} | comb the repo for {pat} |
        dig for {pat} in the code | run rg {pat} | look through the code for {pat} | chase down every use of {pat} |
        find all the spots where {pat} appears | search all files for {pat}""",
    READ_FILE="""open {path} | read {path} | cat {path} | show me {path} | show {path} | view {path} |
        print {path} | open up {path} | dump {path} | display {path} | look at {path} | inspect {path} |
        have a look at {path} | take a look at {path} | peek at {path} | pull up {path} | bring up {path} |
        load {path} | skim {path} | examine {path} | show the contents of {path} |
        print the contents of {path} | display the file {path} | open the file {path} | read through {path} |
        show me what's in {path} | dump the contents of {path} | print out {path} | output {path} |
        give me {path} | fetch {path} |
        read out {path} | paste {path} | go through {path} | cat out {path} | open and read {path} |
        show me the file at {path} | pop open {path} | crack open {path} | look over {path} |
        print {path} to the screen | display the contents of {path} | view the file {path} |
        read the contents of {path} | open the file at {path}""",
    LIST_FILES="""list {dir} | list the files in {dir} | ls {dir} | list files under {dir} |
        show what's under {dir} | list what's in {dir} | list the repo root | ls | list the files |
        list everything in the workspace | show the contents of the {dir} folder | show what's inside {dir} |
        list out {dir} | enumerate {dir} | tree {dir} | print a listing of {dir} | get a listing of {dir} |
        ls -l {dir} | ls -la {dir} | list the directory {dir} | list the folder {dir} | browse {dir} |
        look inside {dir} | list whatever is in {dir} | show me the files in {dir} | enumerate the files |
        list the top-level files | show the project layout | list the contents of {dir} |
        list all files under {dir} | list {dir} recursively | show the tree of {dir} | ls the {dir} folder |
        list the entries in {dir} | run ls on {dir} | show the folder structure | print the tree of {dir} |
        walk the {dir} tree | inventory {dir} | list the directory contents | list the subfolders of {dir} |
        show what {dir} holds | dump the file list of {dir} | {catalogue/catalog} the files in {dir} |
        list the root directory | list the workspace | show every file in {dir}""",
    PATCH_DRY_RUN="""dry-run {patch} | dry-run the patch {patch} | test-apply {patch} | dry-apply {patch} |
        check that {patch} applies | do a dry run of {patch} | try applying {patch} without committing |
        apply {patch} in dry-run mode | see if {patch} applies cleanly | test {patch} without applying it |
        check whether {patch} would apply | see whether {patch} applies | verify {patch} applies |
        run git apply --check on {patch} | trial-apply {patch} | do a trial apply of {patch} |
        check {patch} for conflicts | try {patch} in dry-run mode | preview {patch} | simulate applying {patch} |
        run a dry run of {patch} |
        trial {patch} | dry-apply the patch {patch} | test {patch} against the tree | check {patch} applies on HEAD |
        check {patch} still applies | validate {patch} | see if {patch} goes in cleanly |
        run patch --dry-run on {patch} | try {patch} out without applying | make sure {patch} applies |
        confirm {patch} applies cleanly | check {patch} for rejected hunks | test whether {patch} applies""",
    PROVE_ALGEBRA="""prove {eq} | prove that {eq} | show that {lhs} equals {rhs} | verify {eq} |
        check that {eq} | demonstrate that {eq} | confirm {lhs} equals {rhs} | establish that {eq} | show {eq} |
        verify that {lhs} and {rhs} are equal | check whether {lhs} equals {rhs} | prove the identity {eq} |
        show {lhs} expands to {rhs} | confirm that {eq} holds | check the identity {eq} |
        simplify {lhs} and check it equals {rhs} |
        reduce {lhs} to {rhs} | expand {lhs} and compare with {rhs} | prove the equation {eq} |
        prove {eq} formally | verify the equation {eq} | show the identity {eq} holds | check my identity {eq} |
        work out whether {eq} | rewrite {lhs} as {rhs} and prove it | prove {lhs} is {rhs} |
        show {lhs} is equal to {rhs} | demonstrate {eq} | confirm the equation {eq} | double-check {eq}""",
    MEMORY_ADD="""remember that {note} | note that {note} | save a note that {note} | make a note that {note} |
        jot down that {note} | keep in mind that {note} | add to memory that {note} |
        store the fact that {note} | write down that {note} | add a note that {note} |
        {memorise/memorize} that {note} | note down that {note} | log that {note} | record that {note} |
        commit to memory that {note} | remember this: {note} | save this note: {note} |
        remember for later that {note} | keep a note that {note} | add this to your notes: {note} |
        store that {note} | put in memory that {note} | save the note '{note}' | file away that {note} |
        keep track of the fact that {note} | record the fact that {note} | add a memory that {note} |
        save to memory that {note} | put down that {note} | log a note that {note} |
        remember the fact that {note} | capture the note that {note}""",
    MEMORY_SEARCH="""recall what I said about {topic} | look up my notes on {topic} |
        check memory for {topic} | recall anything about {topic} | search memory for {topic} |
        recall my notes on {topic} | dig up what you know about {topic} | pull up my notes about {topic} |
        recall {topic} | recall what I told you about {topic} | remind me what I said about {topic} |
        remind me about {topic} | look up {topic} in memory | look up {topic} in your notes |
        fetch my notes on {topic} | retrieve what you know about {topic} | search the notes for {topic} |
        find the note about {topic} | check what I said about {topic} | go through my notes on {topic} |
        bring up my notes on {topic} | query memory for {topic} | check your notes on {topic} |
        jog my memory about {topic} | retrieve my notes on {topic} | dig out the note about {topic} |
        scan your memory for {topic} | look through memory for {topic} | fetch what you remember about {topic} |
        recall the note on {topic} | pull up anything on {topic} | check the notes on {topic} |
        consult your notes on {topic} | read back my notes on {topic} | look up what we noted about {topic}""",
    TALK="""tell me how it went | explain the results to me | tell me what you think |
        let me know if it worked | tell me about it | summarize what happened | explain what's wrong |
        give me a quick summary | tell me if it worked | walk me through the results | tell me how it did |
        explain it in plain words | let me know how it goes | report back | give me the gist |
        tell me what you found | {summarise/summarize} the results | explain what you found | fill me in |
        give me a summary | tell me the outcome | tell me what broke | let me know what happened |
        walk me through it | explain the output | talk me through it |
        give me a rundown | break it down for me | {summarise/summarize} the outcome | tell me what changed |
        let me know the verdict | share your thoughts | describe what went wrong | give me your take |
        tell me what you make of it | sum it up for me | tell me whether it worked | give me a short report""",
).items()}

# Noun phrases of a step: "..., followed by a build check", "once the test run is done, ...". Singular,
# so "{noun} is done" reads well.
NOUNS = {k: table(v) for k, v in dict(
    RUN_TESTS="a test run | a full test run | the test run | the test suite | a round of tests",
    CHECK_BUILD="a build check | a compile check | a type-check | the build | a clean build",
    DOCS_LINT="a docs lint | a lint pass over the docs | the docs linter | a link check of the docs",
    LEAN_SUITE="a Lean suite run | the lean suite | the Lean proof check",
    EVAL="an eval run | an evaluation | the benchmark suite | an eval pass",
    TRAIN="a training run | a round of training | the training job | a fine-tuning run",
).items()}

# A step that uses the step before it: (tool of that step, tool) → frames; {nth} sets the pick.
REFS = {k: table(v) for k, v in {
    ("SEARCH", "READ_FILE"): """open the {nth} hit | open the {nth} match | read the {nth} result | open it |
        show me the {nth} file that matches | cat the {nth} hit | open that file | read it |
        open the file it's in | pull up the {nth} match | open up the {nth} result |
        open the file with the {nth} hit | take me to the {nth} match | jump to the {nth} hit |
        go to the {nth} result | bring up the {nth} hit | view the {nth} match | print the {nth} matching file |
        show me the {nth} one | display the {nth} hit | open the {nth} file it finds |
        read the file where it's defined | show me where it's defined |
        open hit {no} | read hit {no} | open result {no} | show me result {no} | open match {no} | cat hit {no} |
        open item {no} | view result {no} | pull up hit {no} | read result {no} | show me match {no} |
        open search result {no}""",
    ("LIST_FILES", "READ_FILE"): """open the {nth} one | read the {nth} file | cat the {nth} entry |
        show the {nth} file | open the {nth} file | show me the {nth} entry | open the {nth} file listed |
        open the {nth} entry | print the {nth} file | show me the {nth} item | read the {nth} one |
        cat the {nth} file in the listing | open the {nth} thing in there | display the {nth} file |
        view the {nth} entry |
        open entry {no} | read file {no} | cat item {no} | show me entry {no} | open item {no} | open file {no} |
        print entry {no} | view item {no} | read entry {no} | cat file {no}""",
    ("SEARCH", "MEMORY_ADD"): """remember the {nth} hit | note down the {nth} match |
        remember where it's defined | save the {nth} result to memory | note it down |
        make a note of the {nth} hit | save the {nth} hit as a note | jot down the {nth} result |
        keep the {nth} match in mind | note where it lives | remember the file it's in | write down the {nth} hit |
        remember hit {no} | note down result {no} | save match {no} to memory | jot down hit {no} |
        if it finds anything, remember the {nth} hit""",
    ("LIST_FILES", "MEMORY_ADD"): """remember the {nth} file | note the {nth} entry |
        save the {nth} filename to memory | jot down the {nth} filename | remember the {nth} entry |
        keep the {nth} name in mind |
        remember entry {no} | note down file {no} | save item {no} to memory""",
    ("READ_FILE", "MEMORY_ADD"): """remember the path | note down the path | save that path to memory |
        note it down | jot down the path | remember which file that was | keep the path in mind""",
    ("EVAL", "MEMORY_ADD"): """remember the score | remember the result | save the numbers to memory |
        note the score | save the first line of the report to memory | write the score down |
        store the eval result in memory | log the score to memory | jot down the results |
        keep a note of the numbers | remember how it did | save the score | note down the accuracy |
        store the metrics |
        if it improved, remember the score | if the numbers beat the baseline, note them |
        should the score go up, save it to memory""",
    ("PROVE_ALGEBRA", "MEMORY_ADD"): """remember the result | remember the outcome | note whether it held |
        note it down | jot down whether it holds | save the result""",
    ("FIX_TESTS", "MEMORY_ADD"): """remember what you changed | note down the fix |
        save a note of what you fixed | jot down what the fix was | remember the fix""",
    ("RUN_TESTS", "MEMORY_ADD"): """remember the {nth} failure | note the results |
        save the test results to memory | jot down the failures | remember which tests failed |
        note the {nth} failing test |
        remember failure {no} | note down failure {no} | should anything fail, remember the {nth} failure |
        in case of failures, note them down""",
    ("CHECK_BUILD", "MEMORY_ADD"): """remember the {nth} error | note down the errors |
        save the build output to memory | jot down the {nth} error | remember what broke |
        note down error {no} | remember error {no} | if the build is red, note the {nth} error""",
    ("DOCS_LINT", "MEMORY_ADD"): """remember the {nth} warning | note the lint results | jot down the warnings |
        save the lint output |
        remember warning {no} | note warning {no} | if there are warnings, jot them down""",
    ("LEAN_SUITE", "MEMORY_ADD"): """remember the result | note which proofs failed | jot down the failures |
        save the result to memory""",
    ("TRAIN", "MEMORY_ADD"): """remember the final loss | note the training result | jot down the loss |
        remember how training went | save the final metrics""",
}.items()}

# References of several steps, one per pick: {card} is a pick by number, {@k} picks 1 to k ("the top two").
REFS_MULTI = {k: table(v) for k, v in {
    ("SEARCH", "READ_FILE"): """open hits {card} and {card} | show results {card} and {card} |
        read matches {card} and {card} | open results {card}, {card} and {card} | cat hits {card} & {card} |
        open the top {two/2} results{@2} | open the top {two/2} hits{@2} | read the first {two/2} matches{@2} |
        open the first couple of hits{@2} | open the top {three/3} results{@3} | show me the first {three/3} hits{@3} |
        pull up results {card} and {card} | view matches {card} and {card} | open {card} and {card}""",
    ("LIST_FILES", "READ_FILE"): """open files {card} and {card} | read entries {card} and {card} |
        cat items {card} and {card} | show me the first {two/2} files{@2} | open the first {three/3} entries{@3} |
        read the top {two/2} files{@2} | open entries {card}, {card} and {card} | open the first couple of files{@2}""",
    ("SEARCH", "MEMORY_ADD"): """remember hits {card} and {card} | note down the top {two/2} results{@2} |
        save the first {two/2} matches{@2} | jot down results {card} and {card}""",
    ("LIST_FILES", "MEMORY_ADD"): "remember entries {card} and {card} | note the first {two/2} filenames{@2}",
    ("RUN_TESTS", "MEMORY_ADD"): "remember failures {card} and {card} | note down the first {two/2} failures{@2}",
    ("CHECK_BUILD", "MEMORY_ADD"): "note down the first {two/2} errors{@2} | remember errors {card} and {card}",
}.items()}

# Clauses that only read well right after a given tool's step ("run the tests; if anything fails, fix
# it"): (tool before, tool) → frames. They take no reference and stay after the step they follow.
FOLLOWUPS = {k: table(v) for k, v in {
    ("RUN_TESTS", "FIX_TESTS"): """if anything fails, fix it | fix whatever fails | if any fail, fix them |
        fix anything that breaks | if something's red, fix it | repair whatever breaks | if they fail, fix them |
        whatever breaks, fix it | whatever fails, {fix} it | should anything fail, fix it |
        should any test fail, {fix} it | in case of failures, {fix} them | in case anything fails, fix it |
        if there are failures, {fix} them | if the suite is red, fix it | if any test is red, {fix} it |
        any failures, fix them | anything red, mend it | if it fails, debug it | where something fails, repair it""",
    ("RUN_TESTS", "TALK"): """if anything fails, tell me what | should anything break, explain why |
        in case of failures, walk me through them | if they're red, tell me which""",
    ("CHECK_BUILD", "TALK"): """if the build is red, tell me why | if the build is red, explain the errors |
        should it fail to compile, tell me what broke | in case of errors, walk me through them""",
    ("LEAN_SUITE", "TALK"): """if a proof breaks, tell me which | should anything fail, explain it |
        in case of failures, tell me what went wrong""",
    ("DOCS_LINT", "TALK"): "if there are warnings, explain them | in case of errors, walk me through them",
    ("EVAL", "TRAIN"): """if the score dropped, {tverb} {model} | if it got worse, retrain |
        should the numbers be bad, train some more | in case it regressed, {tverb} {model}""",
    ("FIX_TESTS", "RUN_TESTS"): """run them again | rerun them | check that they pass now | confirm they pass |
        rerun the suite to confirm | make sure they're green""",
    ("TRAIN", "EVAL"): """evaluate it | see how it scores | score the result | benchmark the result |
        evaluate the new weights | check how it does | once it finishes, evaluate it |
        when training is done, score it | if the loss went down, evaluate it""",
    ("CHECK_BUILD", "RUN_TESTS"): """if it builds, {run} {tests} | if that's green, {run} {tests} |
        if it compiles, {run} {tests} | assuming it builds, {run} {tests} | should it compile, {run} {tests} |
        if the build is green, {run} {tests} | provided it builds, {run} {tests}""",
    ("PROVE_ALGEBRA", "LEAN_SUITE"): "if it holds, {run} {lean_s} | double-check with {lean_s}",
    ("PATCH_DRY_RUN", "CHECK_BUILD"): """if it applies, check the build | if it goes in, make sure it compiles |
        should it apply cleanly, check the build | if there are no conflicts, build it""",
    ("PATCH_DRY_RUN", "RUN_TESTS"): """if it applies, {run} {tests} | if that's clean, {run} {tests} |
        if it goes in cleanly, {run} {tests} | should it apply, {run} {tests} |
        if there are no conflicts, {run} {tests}""",
}.items()}

# Goals that are one frame of several steps. "TOOL<k" takes step k's {nth} (else 1st) result; "<k=" the same
# pick as the reference before it. Spans are handed to the steps in order.
COMBOS = tuple((f, spec.split()) for f, spec in (
    ("search for {pat} and {pat}", "SEARCH SEARCH"), ("grep for {pat} and also {pat}", "SEARCH SEARCH"),
    ("find uses of {pat} and of {pat}", "SEARCH SEARCH"), ("open {path} and {path}", "READ_FILE READ_FILE"),
    ("show me {path} and {path}", "READ_FILE READ_FILE"), ("read {path}, then {path}", "READ_FILE READ_FILE"),
    ("list {dir} and {dir}", "LIST_FILES LIST_FILES"),
    ("what's in {dir} and {dir}?", "LIST_FILES LIST_FILES"),
    ("dry-run {patch} and {patch}", "PATCH_DRY_RUN PATCH_DRY_RUN"),
    ("check whether {patch} and {patch} apply", "PATCH_DRY_RUN PATCH_DRY_RUN"),
    ("remember that {note} and that {note}", "MEMORY_ADD MEMORY_ADD"),
    ("what do you remember about {topic} and about {topic}?", "MEMORY_SEARCH MEMORY_SEARCH"),
    ("prove {eq} and also {eq}", "PROVE_ALGEBRA PROVE_ALGEBRA"),
    ("show me the {nth} file in {dir}", "LIST_FILES READ_FILE<1"),
    ("open the {nth} file under {dir}", "LIST_FILES READ_FILE<1"),
    ("what's in {dir}? show me the {nth} file", "LIST_FILES READ_FILE<1"),
    ("look in {dir} and show the {nth} file", "LIST_FILES READ_FILE<1"),
    ("ls, then cat the {nth} entry", "LIST_FILES READ_FILE<1"),
    ("list the repo root and open the {nth} file", "LIST_FILES READ_FILE<1"),
    ("where is {pat} defined? open the file", "SEARCH READ_FILE<1"),
    ("where is {pat} set? open it", "SEARCH READ_FILE<1"),
    ("find the definition of {pat} and read it", "SEARCH READ_FILE<1"),
    ("grep {pat} and read the {nth} file that has it", "SEARCH READ_FILE<1"),
    ("search for {pat} then open the {nth} and {nth} hits", "SEARCH READ_FILE<1 READ_FILE<1"),
    ("find {pat}, open the {nth} hit and remember the path", "SEARCH READ_FILE<1 MEMORY_ADD<1="),
    ("prove {eq} and tell me if it worked", "PROVE_ALGEBRA TALK"),
    ("{run} {tests}; if anything breaks, fix it", "RUN_TESTS FIX_TESTS"),
    ("{run} {tests} and fix any failures", "RUN_TESTS FIX_TESTS"),
    ("{fix} {failing} and check that they pass", "FIX_TESTS RUN_TESTS"),
    ("{tverb} {model} and then evaluate it", "TRAIN EVAL"),
    ("train, then evaluate, then {remember/note/save} the {score/numbers}", "TRAIN EVAL MEMORY_ADD<2"),
    ("{evaluate/eval/score} {model}, then train, then {evaluate/eval} again", "EVAL TRAIN EVAL"),
    ("{check/verify} the build and {docs}", "CHECK_BUILD DOCS_LINT"),
    ("{run} {tests}, fix the failures, run them again", "RUN_TESTS FIX_TESTS RUN_TESTS"),
    ("check the build, {run} {tests}, fix failures, and run them again",
     "CHECK_BUILD RUN_TESTS FIX_TESTS RUN_TESTS"),
    ("{tverb}, evaluate, remember the score, and {tell me about it/tell me how it went}",
     "TRAIN EVAL MEMORY_ADD<2 TALK"),
    ("search for {pat}, open the {nth} and {nth} hits, then remember the path of the first",
     "SEARCH READ_FILE<1 READ_FILE<1 MEMORY_ADD<1.1"),
    ("lint {docs}, check {proj} builds, run {tests}, run {lean_s}",
     "DOCS_LINT CHECK_BUILD RUN_TESTS LEAN_SUITE"),
    # telegraphic and noun-list forms: one verb for several steps
    ("build and test{/ it/ pls/ please}", "CHECK_BUILD RUN_TESTS"),
    ("build, test, lint", "CHECK_BUILD RUN_TESTS DOCS_LINT"), ("test and fix{/ pls/ it}", "RUN_TESTS FIX_TESTS"),
    ("train then eval{/ pls}", "TRAIN EVAL"), ("build, test, fix, retest", "CHECK_BUILD RUN_TESTS FIX_TESTS RUN_TESTS"),
    ("train -> eval -> {remember/save} the score", "TRAIN EVAL MEMORY_ADD<2"),
    ("{run} {tests} and {lean_s}", "RUN_TESTS LEAN_SUITE"),
    ("{run} {tests}, {lean_s} and {evals}", "RUN_TESTS LEAN_SUITE EVAL"),
    ("check the build and the docs", "CHECK_BUILD DOCS_LINT"),
    ("open {path}, {path} and {path}", "READ_FILE READ_FILE READ_FILE"),
    ("search for {pat}, {pat} and {pat}", "SEARCH SEARCH SEARCH"),
    ("list {dir}, {dir} and {dir}", "LIST_FILES LIST_FILES LIST_FILES"),
    ("cat {path} {path}", "READ_FILE READ_FILE"), ("ls {dir} {dir}", "LIST_FILES LIST_FILES"),
    ("remember that {note}, and also that {note}", "MEMORY_ADD MEMORY_ADD"),
    ("what did I say about {topic} and {topic}?", "MEMORY_SEARCH MEMORY_SEARCH"),
    # conditions: the steps run in order, the condition is the tool's own business
    ("{run} {tests} and if anything fails, fix it and rerun", "RUN_TESTS FIX_TESTS RUN_TESTS"),
    ("fix {failing}, then make sure it still builds", "FIX_TESTS CHECK_BUILD"),
    ("if {patch} applies, {run} {tests}", "PATCH_DRY_RUN RUN_TESTS"),
    ("does {patch} apply? if so, check the build", "PATCH_DRY_RUN CHECK_BUILD"),
    ("check the build; if it's green, {run} {tests}; if they fail, fix them", "CHECK_BUILD RUN_TESTS FIX_TESTS"),
    ("dry-run {patch}, build, test, and tell me what broke", "PATCH_DRY_RUN CHECK_BUILD RUN_TESTS TALK"),
    ("{tverb} {model}, evaluate it, and if it improved, remember the score", "TRAIN EVAL MEMORY_ADD<2"),
    # references past the step just before
    ("where's {pat} used? open the {nth} and {nth} hits", "SEARCH READ_FILE<1 READ_FILE<1"),
    ("grep {pat}, cat the {nth} hit, then {run} {tests}", "SEARCH READ_FILE<1 RUN_TESTS"),
    ("ls {dir} and open the {nth} and {nth} files", "LIST_FILES READ_FILE<1 READ_FILE<1"),
    ("grep {pat} and {pat}, then open the {nth} hit of the second search", "SEARCH SEARCH READ_FILE<2"),
    ("what's in {dir}? open the {nth} and remember its name", "LIST_FILES READ_FILE<1 MEMORY_ADD<1="),
    ("run {evals} on {model} and note the {score/numbers}; then {tverb} {model}", "EVAL MEMORY_ADD<1 TRAIN"),
    ("prove {eq}, run {lean_s}, then tell me how it went", "PROVE_ALGEBRA LEAN_SUITE TALK"),
    ("recall {topic}, then {tverb} {model} and evaluate it", "MEMORY_SEARCH TRAIN EVAL"),
    ("lint {docs} and fix the tests", "DOCS_LINT FIX_TESTS"),
    # picks by number
    ("grep {pat} and open hits {card} and {card}", "SEARCH READ_FILE<1 READ_FILE<1"),
    ("search for {pat}; open the top {two/2} results{@2}", "SEARCH READ_FILE<1 READ_FILE<1"),
    ("ls {dir}, then open entries {card}, {card} and {card}", "LIST_FILES READ_FILE<1 READ_FILE<1 READ_FILE<1"),
    ("where's {pat}? open result {no}", "SEARCH READ_FILE<1"),
    ("what's in {dir}? read item {no} and remember its name", "LIST_FILES READ_FILE<1 MEMORY_ADD<1="),
    ("find {pat}, open match {no}, then {run} {tests}", "SEARCH READ_FILE<1 RUN_TESTS"),
    ("search {pat} and {pat}; open hit {no} of the second search", "SEARCH SEARCH READ_FILE<2"),
    # conditions first, and the thing asked for first
    ("{run} {tests}; should anything fail, {fix} it and rerun", "RUN_TESTS FIX_TESTS RUN_TESTS"),
    ("I need {tests} run; whatever fails, fix it", "RUN_TESTS FIX_TESTS"),
    ("get the build checked and {docs} linted", "CHECK_BUILD DOCS_LINT"),
    ("the tests, then a lint pass{/ please/, thanks}", "RUN_TESTS DOCS_LINT"),
    ("I want {model} {trained/retrained/fine-tuned}, then evaluated", "TRAIN EVAL"),
    ("if the build is green, {run} {tests}; if not, tell me why", "CHECK_BUILD RUN_TESTS TALK"),
    ("{tverb} {model} and evaluate it; should the score drop, {tverb} it again", "TRAIN EVAL TRAIN"),
))

# Two-part orders of a composite: A is its first step's clause, B the rest (joined with connectors), B1
# the rest when it is one clause. {A-ing} is A with its verb as a gerund ("after running the tests, ..."),
# {A-noun} a NOUNS phrase. Frames that write B before A say so ("..., but check the build first"), and B
# may not then start with a step that uses A's result; "{B1} after {A-ing}" takes one clause, as with
# more "after" would read as the last one's only.
ORDERS = table("""after {A-ing}, {B} | start by {A-ing}, then {B} | begin by {A-ing} and then {B} |
    {B1} after {A-ing} | {B}, but {A} first | {B}, but first {A} | before {B-ing}, {A} | {A} before {B-ing} |
    {A} first, then {B} | once you've finished {A-ing}, {B} | when you're done {A-ing}, {B} |
    {A}; once that's done, {B} | {A} and, once that's done, {B} | {B} - but {A} first |
    {B1}. before that, {A} | {B1}, but before that {A} | once {A-noun} is done, {B} | when {A-noun} finishes, {B} |
    after {A-noun}, {B} | {B1} after {A-noun} | start with {A-noun}, then {B} | {A-noun} first, then {B}""")
NUMBERED = ("{k}) ", "{k}. ", "({k}) ", "step {k}: ", "{k}- ", "{k}/ ")
FIRST = ("first ", "first, ", "first off, ", "to start, ", "to begin with, ")


def forms_of(block: str) -> dict[str, tuple[str, ...]]:
    """'terse: a | b  again: c | d' → {"terse": ("a", "b"), "again": ("c", "d")}."""
    parts = re.split(r"\b(terse|again|cond|passive|items):", block)
    return {k: table(v) for k, v in zip(parts[1::2], parts[2::2])}


# Per tool, the forms a composite or a goal may take besides its frames and clauses: `terse`, bare verbs for
# telegraphic chains of the argument-less tools ("build, test, fix, retest"), `again` when that tool comes a
# second time; `cond`, a condition on how its step went, before the next clause ("if the build is green, run
# the tests"): the steps still run in order (the tools judge the outcome) and the clause so opened stays after
# its step, and none asks to fix ("if it passes, fix the tests" does not read); `passive`, a participle for
# the thing asked for first ("I need the tests run", "get the build checked and the docs linted", "I want a
# build check done, then ..."); `items`, a noun for it ("the tests, then a lint pass"). Written
# "kind: a | b | ..." a kind.
FORMS = {t: forms_of(v) for t, v in dict(
    TALK="""terse: report back | {summarise/summarize} | tell me | explain | sum up | tell me how it went
        items: a summary | a quick report | your take | a short rundown""",
    RUN_TESTS="""terse: test | run tests | run the tests | tests | test it | pytest | run the suite | unit-test |
            run specs
        again: retest | re-test | rerun tests | re-run the tests | test again | tests again
        cond: if the tests pass, | if everything is green, | once they pass, | if nothing fails, |
            should they pass, | if it's all green, | provided the tests pass,
        passive: {tests} run | the tests run | {suite} run | a test run done | {tests} executed |
            the {kind} tests run | {tests} run through
        items: the tests | a pass of the tests | a test run | {suite} | a round of tests | the {kind} tests |
            a full test pass""",
    CHECK_BUILD="""terse: build | compile | typecheck | type-check | check the build | build it | compile it |
            cargo check | tsc
        again: rebuild | recompile | build again | re-typecheck
        cond: if the build is green, | if it compiles, | once it builds, | should it build, | if the build passes, |
            if it type-checks,
        passive: the build checked | {proj} compiled | {proj} built | {proj} type-checked | a build check done |
            the build verified | {proj} typechecked
        items: the build | a build check | a compile | a type-check | a clean build | a build | a typecheck pass""",
    FIX_TESTS="""terse: fix tests | fix the tests | repair the tests | mend the tests | debug the tests |
            fix the failing tests
        again: fix again | fix what's still red
        cond: once they're fixed, | once the tests are green, | after the fix,
        passive: {failing} fixed | the tests fixed | {suite} green again | the failures fixed | {failing} repaired |
            {failing} sorted out | the red tests fixed
        items: a fix for the failures | fixes for {failing} | a round of test fixes | a repair of {failing}""",
    DOCS_LINT="""terse: lint | lint docs | lint the docs | docs lint | check the docs | markdownlint |
            lint the markdown
        again: re-lint | lint again
        cond: if the docs are clean, | if there are no lint errors, | should the docs pass,
        passive: {docs} linted | the docs checked | the markdown linted | {docs} lint-checked | a docs lint done |
            the links in {docs} checked
        items: a lint pass | a docs lint | the docs linter | a link check on {docs} | markdownlint |
            a lint of {docs}""",
    LEAN_SUITE="""terse: check the proofs | run lean | lean | verify the proofs | check proofs | lean check |
            run the lean suite
        again: re-check the proofs | recheck proofs | run lean again
        cond: if the proofs check, | if lean is green, | if everything is proved,
        passive: {lean_p} checked | {lean_p} verified | {lean_s} run | {lean_p} re-checked | a Lean check done
        items: the lean suite | {lean_s} | a Lean proof check | the proof checks""",
    EVAL="""terse: evaluate | eval | benchmark | score | evaluate it | score it | bench | run evals |
            run the benchmarks
        again: re-evaluate | re-eval | eval again | re-score | score again | re-benchmark
        cond: if the numbers look good, | if the score improved, | if it beats the baseline, | should it score well,
        passive: {model} evaluated | {model} benchmarked | {model} scored | an eval done | {evals} run |
            {model} assessed
        items: an eval | the evals | {evals} | a benchmark run | a round of evals | an evaluation of {model}""",
    TRAIN="""terse: train | retrain | fine-tune | finetune | train it | train the model | fine-tune it | train a bit
        again: retrain | re-train | train again | fine-tune again
        cond: once training finishes, | when it's done training, | if the loss looks ok, | once the run is over,
        passive: {model} trained | {model} retrained | {model} fine-tuned | a training run done |
            some training done | {model} trained a bit more
        items: a training run | a training pass | some training | a fine-tune | another epoch | a round of training""",
    SEARCH="""cond: if it finds anything, | if there are hits,
        passive: the code searched for {pat} | every use of {pat} found | the repo grepped for {pat} |
            {pat} tracked down | all references to {pat} found
        items: a grep for {pat} | a search for {pat} | every use of {pat} | all mentions of {pat}""",
    READ_FILE="""passive: {path} opened | {path} printed | {path} shown to me | {path} opened up
        items: the contents of {path} | a look at {path} | {path}""",
    LIST_FILES="""passive: {dir} listed | the files in {dir} listed | the contents of {dir} listed
        items: a listing of {dir} | the files in {dir} | an ls of {dir} | the file list""",
    PATCH_DRY_RUN="""cond: if it applies, | should it apply cleanly, | if there are no conflicts, |
            if the patch is clean,
        passive: {patch} dry-run | {patch} test-applied | {patch} checked for conflicts | {patch} dry-applied
        items: a dry run of {patch} | a test-apply of {patch} | a conflict check on {patch}""",
    PROVE_ALGEBRA="""cond: if it holds, | if that's true, | should it hold, | if the identity is right,
        passive: {eq} proved | {eq} verified | the identity {eq} checked
        items: a proof that {eq} | a proof of {eq}""",
    MEMORY_ADD="""passive: it noted that {note} | it on record that {note} | it written down that {note}
        items: a note that {note}""",
    MEMORY_SEARCH="""passive: my notes on {topic} pulled up | {topic} looked up in memory |
            what I said about {topic} dug up
        items: my notes on {topic} | whatever you remember about {topic}""",
).items()}


def forms(kind: str) -> dict[str, tuple[str, ...]]:
    return {t: f[kind] for t, f in FORMS.items() if kind in f}


TERSE, AGAIN, PASSIVE, ITEMS = forms("terse"), forms("again"), forms("passive"), forms("items")
CONDITIONS = forms("cond") | dict(any=table("""if that works, | if all goes well, | if that passes, |
    assuming that's fine, | if nothing breaks, | if that's clean, | provided that succeeds, | should that pass, |
    if it's all good, | if that goes through, | if no errors, | once that's done,"""))
# Bare verbs that read only after a given tool ("test, fix"); words that mark a tool's second time.
TERSE_AFTER = {("RUN_TESTS", "FIX_TESTS"): table("""fix | repair | mend | debug | fix failures | fix what breaks |
    fix them | fix what fails | fix anything red | repair what fails""")}
AGAIN_WORDS = (" again", " once more", " one more time", " again pls", " a second time")
TERSE_SEP = (", ", " and ", " then ", ", then ", " -> ", " / ", "; ", " → ", " > ", " + ", " & ", " => ", ". ")
TERSE_LAST = (", and ", " and ", " and then ", ", then ", ", and finally ", " then finally ")
TERSE_NEXT = dict(RUN_TESTS="FIX_TESTS", CHECK_BUILD="RUN_TESTS", TRAIN="EVAL", FIX_TESTS="RUN_TESTS", EVAL="TRAIN",
                  DOCS_LINT="CHECK_BUILD", LEAN_SUITE="EVAL")

# Position words: "{A} first, {B} second", "first {A}, second {B}", "{A} to start, {B} next, {C} last",
# "step one: {A}, step two: {B}". The words say the order, so a frame that puts them after the clauses may
# give the clauses in another order ("lint the docs second, check the build first").
ORDINAL_WORDS = (("first", "second", "third", "fourth"), ("1st", "2nd", "3rd", "4th"),
                 ("firstly", "secondly", "thirdly", "fourthly"))
AT_FIRST = ("to start", "to begin with", "first of all", "up front", "first thing")
AT_NEXT = ("next", "after that", "then", "afterwards", "after this")
AT_LAST = ("last", "at the end", "to finish", "last of all", "at the very end", "finally")
LAST_WORDS = ("finally", "lastly", "last", "and finally", "and last")
STEP_MARKS = ("step {w}: ", "step {d}: ", "step {w} - ", "stage {w}: ", "{o} step: ", "#{d}: ", "#{d} ",
              "{o} thing: ", "task {d}: ", "{o}: ", "step #{d}: ", "part {w}: ")

# Thing-first goals: LEADS around them per form; THING_SEP between two things ("the build checked and the docs
# linted"), THING_LAST before the last of three or more, THING_TO_CLAUSE before the clauses that follow
# ("I need the tests run; whatever fails, fix it").
LEADS = {"passive": table("""I need {} | I want {} | I'd like {} | get {} | can I get {}? | could I have {}? |
             let's get {} | we need {} | please get {} | I'd love to see {} | I'd like to have {} | have {}, please"""),
         "items": table("""{} | I need {} | I'd like {} | give me {} | can I get {}? | let's have {} | I want {} |
             {} please | {}, please | {} pls | let's do {} | do {}""")}
THING_SEP = (" and ", ", then ", ", ", " and then ", ", followed by ", " then ", " -> ", ", after that ")
THING_LAST = (", and ", ", and then ", ", and finally ", " and finally ", " and ")
THING_TO_CLAUSE = ("; ", ", then ", ". ", " - ", "; then ", ", and ")
THEN = (", then", " and then", "; then", ", and then", ". Then", ", next", ", after that")

# Wrappers around imperative clauses; INTERJECTIONS fit any goal. POLITE_ING take the clause as a
# gerund ("would you mind running the tests?").
POLITE = table("""please {} | {} please | can you {}? | could you {}? | could you please {}? | would you {}? |
    I need you to {} | I'd like you to {} | go ahead and {} | {} for me | pls {} | {} asap |
    {} when you get a chance | let's {} | can you {} for me? | I wonder if you could {} |
    do me a favour and {} | do me a favor and {} | time to {} | {}! | I'd love it if you could {} |
    it would be great if you could {} | it'd be nice if you could {} | would it be possible to {}? |
    is it possible to {}? | any chance you could {}? | can I get you to {}? | can you please {}? | kindly {} |
    I want you to {} | you should {} | I'd appreciate it if you could {} | would you be able to {}? |
    could I ask you to {}? | help me {} | let's go ahead and {} | we need to {} | we should {} | next up: {} |
    your task: {} | now {} | just {} | quickly {} | real quick, {} | {} real quick | {} please and thank you |
    {}, ty | {} when you can | {} if you don't mind | {} if you can | {} - thanks! | {}, would you? |
    {}, could you? | {} now | {}? | {} plz | can u {} | could u {} pls | i need u to {} | {} ASAP |
    {} when you're free | how about you {}? | think you could {}? | you can {} now""")
POLITE_ING = table("""would you mind {}? | mind {}? | do you mind {}? | how about {}? | what about {}? |
    could you try {}? | try {} | consider {} | fancy {}? | would you consider {}?""")
INTERJECTIONS = table("""hey, {} | ok, {} | so {} | hmm, {} | gestalt, {} | alright, {} | yo {} | {} thanks |
    {}, cheers | {} thx | quick one: {} | right, {} | okay, {} | well, {} | um, {} | oh and {} | btw {} |
    also, {} | listen, {} | hey gestalt, {} | gestalt: {} | @gestalt {} | ok next: {} | hi! {} | morning! {} |
    hello, {} | sorry, {} | one more thing: {} | last thing: {} | ok so {} | so yeah, {} | right then, {} |
    {}, ta | {} ty | {} 🙏""")
CONNECT = table("""then | , then | and then | , after that | ; | and | , | . Then | , and once that's done, |
    . After that, | , next | and after that | ; afterwards | -> | , and then | , after which | , and also |
    and also | . Also, | ; also | , plus | & | + | && | => | , and when that's done, |
    , and once it finishes, | . When that's done, | . Once that's finished, | , then afterwards |
    . Afterwards, | . Next, | , and next | , subsequently | and right after that | .""")
LAST = table(""", and | , and then | , then | and finally | , finally | and | ; then | . Finally, | , and lastly |
    . Lastly, | , and to finish, | , and at the end | , and then finally""")
# A sentence before the request that says why: per tool, or for any tool ("any").
CONTEXT = {k: table(v) for k, v in dict(
    any="""quick one. | sorry to bug you. | one more thing: | ok so | right, so | before I forget, |
        while I grab a coffee, | I'm in a rush, | when you have a sec, | new task: | next up: | morning! |
        hey there. | got a minute? | I'm back. | ok, next thing: | another request: | small {favour/favor}: |
        here's what I need: | for {person}:""",
    RUN_TESTS="""I just merged {person}'s branch. | just pulled the latest main. | I touched the {w} module. |
        I refactored {ident}. | about to open a PR. | I changed a few things in {dir}. | before I push: |
        CI is queued for ages, so | not sure my change is safe.""",
    FIX_TESTS="""the CI went red after my merge. | CI is failing on main. | my last commit broke something. |
        {num} tests started failing after the upgrade. | the nightly run was red. |
        {person} says the tests are broken. | the pipeline is red again. | ugh, red again.""",
    CHECK_BUILD="""I bumped the {w} dependency. | just rebased onto main. | I renamed a bunch of types. |
        I moved some modules around. | I upgraded the compiler. | about to push. | I touched {ident}.""",
    DOCS_LINT="""I rewrote the getting-started guide. | the release is on {day}. | I added a new page. |
        someone said the links are broken. | I edited the README. | the docs PR is up.""",
    SEARCH="""I'm trying to remove a deprecated API. | I want to rename something. | I'm chasing a bug. |
        I'm cleaning up dead code. | I saw a weird error in the logs. | I'm tracking down a regression.""",
    READ_FILE="""I'm reviewing a PR. | something looks off in the config. | I want to understand how this works. |
        {person} asked me about a file. | I'm debugging a crash.""",
    LIST_FILES="""I'm new to this repo. | first day on this codebase. | I lost track of where things are. |
        I can't remember the layout.""",
    PATCH_DRY_RUN="""{person} sent me a patch. | I got a patch from upstream. | I have a patch from the mailing list. |
        I'm not sure my patch is still current.""",
    PROVE_ALGEBRA="""I'm checking my homework. | doing some algebra. | I'm not sure about this identity. |
        quick maths question. | quick math question.""",
    LEAN_SUITE="I bumped mathlib. | I edited a lemma. | I tweaked a definition in the Lean files.",
    MEMORY_ADD="this is important. | for later: | something to keep: | quick fact for you:",
    MEMORY_SEARCH="I forgot something. | my memory is hazy. | I told you something a while ago.",
    EVAL="""the new checkpoint just landed. | training finished overnight. | I changed the tokenizer. |
        we need numbers for the report.""",
    TRAIN="""we got more data. | the loss is still high. | the new dataset is ready. | the GPUs are free tonight.""",
).items()}
# Endings people add; the spaced ones fit after a search pattern too.
TRAIL = (".", "!", "!!", "?", "...", " :)", " :D", " 🙏", " 👍", " 🙂")
TOOL_WEIGHT = dict(TALK=1.6, SEARCH=1.4, READ_FILE=1.3, LIST_FILES=1.1, PATCH_DRY_RUN=1.1, PROVE_ALGEBRA=1.3,
                   MEMORY_ADD=1.3, MEMORY_SEARCH=1.3)
FOLLOW = dict(RUN_TESTS="FIX_TESTS", FIX_TESTS="RUN_TESTS", TRAIN="EVAL", PATCH_DRY_RUN="RUN_TESTS",
              PROVE_ALGEBRA="LEAN_SUITE", CHECK_BUILD="RUN_TESTS")
# Words that would ask for a tool; a CONVERSATION goal holds one only in a chat shape (CHAT_CUES: thanks
# for past work, "what is a linter?"), where a person reads it as talk about the tool, not a request.
TALK_WORDS = re.compile(r"\b(tests?|testing|build\w*|compil\w*|lint\w*|docs?|documentation|lean|eval\w*|"
                        r"train\w*|search\w*|grep\w*|remember|memory|memori[sz]e|notes?|prove|proofs?|"
                        r"patch\w*|files?|open|read|recall|suite|specs?|benchmark\w*|type-?check\w*|"
                        r"remind\w*|directory|folder|markdown|theorems?|lemmas?|checkpoint)\b", re.IGNORECASE)
CHAT_CUES = re.compile(r"\b(thanks for|thank you for|what'?s the point of|what is an? |explain how|do you enjoy|"
                       r"how do you feel about|why do people|is it hard to|who invented)", re.IGNORECASE)
# Verbs whose -ing form doubles the last consonant; first words that are not verbs ("ls", "cat", "go run").
DOUBLE = set("run rerun get set jot fit spin begin grep scan dig skim log pin stop output spit commit debug put pop "
             "ripgrep sum jog let".split())
NO_ING = set("ls cat less bat tree dir rg ag git npm cargo go eval pytest try".split())


# ---------------------------------------------------------------- frames → goals

SLOT = re.compile(r"\{([^{}]*)\}")
ARGS = {"path": ("path", file_path), "dir": ("path", dir_path), "patch": ("path", patch_path),
        "pat": ("pattern", pattern), "note": ("text", lambda r: text(pick(r, NOTES), r)),
        "topic": ("text", lambda r: text(pick(r, TOPICS), r))}
REF_ARG = {"READ_FILE": "path", "MEMORY_ADD": "text"}


@dataclasses.dataclass
class Span:
    """An argument value written into the goal, between optional quotes."""
    name: str
    value: str
    quote: str = ""


def _quote(name: str, value: str, rng) -> str:
    p = (0.75 if " " in value else 0.12) if name == "pattern" else 0.06 if name == "path" else 0.0
    q = pick(rng, ('"', "'", "'", "`"))
    return q if rng.random() < p and q not in value else ""


def fill(template: str, rng, st: dict | None = None) -> list:
    """Pieces (str, Span) of `template` with every {slot} drawn. `st` gathers a frame's picks and
    equation; without it (inside notes and paths) arguments are plain text."""
    out, pos = [], 0
    for m in SLOT.finditer(template):
        out.append(template[pos:m.start()])
        pos, key = m.end(), m.group(1)
        if key in SLOTS:
            out += fill(pick(rng, SLOTS[key]), rng, st)
        elif key in DYNAMIC:
            out.append(DYNAMIC[key](rng))
        elif "/" in key:
            out += fill(pick(rng, key.split("/")), rng, st)
        elif key in ("nth", "card", "no"):
            prev = st["picks"][-1] if st["picks"] else 0  # "the 2nd and 4th": increasing
            st["picks"].append(k := prev + int(rng.integers(1, 3)) if prev else int(rng.choice(5, p=PICK_P)) + 1)
            form = (pick(rng, ORDINALS[k]) if key == "nth" else pick(rng, NUMBER_FORMS) if key == "no"
                    else CARD_FORMS[st.setdefault("card", int(rng.integers(len(CARD_FORMS))))])
            out.append(form.replace("{d}", str(k)).replace("{w}", CARDINALS[k - 1]))
        elif key[0] == "@":  # "the top two": picks 1 to k, no text
            st["picks"] += range(1, int(key[1:]) + 1)
        elif key in ("eq", "lhs", "rhs"):
            if key != "rhs":
                st["eq"] = identity(rng)
            lhs, rhs = Span("lhs", st["eq"][0]), Span("rhs", st["eq"][1])
            out += [lhs, pick(rng, (" = ", " = ", " = ", "=", " == ")), rhs] if key == "eq" else [
                lhs if key == "lhs" else rhs]
        else:
            name, make = ARGS[key]
            value = make(rng)
            out.append(value if st is None else Span(name, value, _quote(name, value, rng)))
    out.append(template[pos:])
    return [p for p in out if p != ""]


def text(template: str, rng) -> str:
    return "".join(fill(template, rng))


def build(frame: str, spec: list[str], rng) -> tuple[list, list]:
    """(pieces, steps) of one frame; steps are (tool, args) with spans handed out in order. A spec
    "TOOL<k*" is one reference step per pick of the frame ("open hits 1 and 3")."""
    st = {"picks": [], "eq": None}
    pieces = fill(frame, rng, st)
    spans, picks, steps, last = [p for p in pieces if isinstance(p, Span)], st["picks"], [], 1
    spec = [s for x in spec for s in ([x[:-1]] * len(picks) if x.endswith("*") else [x])]
    for s in spec:
        tool, _, ref = s.partition("<")
        args = {}
        if ref:
            k, same, n = re.fullmatch(r"(\d+)(=?)\.?(\d*)", ref).groups()
            last = int(n) if n else last if same else picks.pop(0) if picks else 1
            args[REF_ARG[tool]] = {"from": int(k), "pick": last}
        for name in labels.TOOL_ARGS[tool] if not ref else ():
            if spans and spans[0].name == name:
                args[name] = spans.pop(0)
            elif tool != "LIST_FILES":
                raise ValueError(f"frame {frame!r}: no {name} for {tool}")
        steps.append((tool, args))
    if spans or picks:
        raise ValueError(f"frame {frame!r}: {spans or picks} left over for {spec}")
    return pieces, steps


def gerund(pieces: list) -> list | None:
    """The clause with its leading verb as a gerund ("run the tests" → "running the tests",
    "dry-run x" → "dry-running x"), or None when it does not start with a verb ("ls src")."""
    m = re.match(r"([a-z]+-)?([a-z]+)\b", pieces[0]) if isinstance(pieces[0], str) else None
    if not m or m.group(0) in NO_ING:
        return None
    v = m.group(2)
    ing = (v + v[-1] if v in DOUBLE else v[:-2] + "y" if v.endswith("ie")
           else v[:-1] if v.endswith("e") and not v.endswith("ee") else v) + "ing"
    return [(m.group(1) or "") + ing + pieces[0][m.end():]] + pieces[1:]


def capital(pieces: list) -> list:
    return [pieces[0][0].upper() + pieces[0][1:]] + pieces[1:] if isinstance(pieces[0], str) else pieces


def context(tool: str, rng, p: float) -> str | None:
    """With probability p, a sentence of context to put before a request for `tool`: mostly one of its
    own ("CI is failing on main."), else one for any request ("sorry to bug you.")."""
    if tool == "TALK" or rng.random() >= p:
        return None
    own = CONTEXT.get(tool)
    return text(pick(rng, own if own and rng.random() < 0.7 else CONTEXT["any"]), rng)


def wrap(pieces: list, rng, p: float, polite: bool, ing: bool = False, ctx: str | None = None) -> list:
    """With probability p, the pieces inside an interjection ("ok, {}") or, when `polite` and the pieces
    are one plain request (no "?" or "."), a POLITE wrapper ("can you {}?") or, when `ing` too, a
    POLITE_ING one around its gerund ("mind running the tests?"). Then the sentence `ctx` before it
    all; it takes the place of an interjection (both would open the goal)."""
    plain = polite and not any(isinstance(x, str) and ("?" in x or "." in x) for x in pieces)
    if rng.random() < p:
        forms, inner = INTERJECTIONS, pieces
        if plain and rng.random() < 0.7:
            g = gerund(pieces) if ing and rng.random() < 0.15 else None
            forms, inner = (POLITE_ING, g) if g else (POLITE, pieces)
        if not (ctx and forms is INTERJECTIONS):
            pieces = lead(inner, pick(rng, forms))
    if ctx:
        pieces = [ctx + " "] + (capital(pieces) if ctx[-1] in ".!?" and rng.random() < 0.5 else pieces)
    return pieces


def lead(pieces: list, form: str) -> list:
    """`pieces` in a form such as "I need {}", "can I get {}?" or "ok, {}" (no comma after a question)."""
    before, after = form.split("{}")
    if isinstance(pieces[-1], str) and pieces[-1].endswith("?"):
        after = after.lstrip(",")
    return [x for x in [before] + pieces + [after] if x != ""]


def leads(kind: str, tool: str, question: bool = True) -> list[str]:
    """The LEADS of a thing-first goal that opens with `tool`'s thing: "do {}" only for a tool without
    arguments ("do a test run", not "do my notes on ..."); a question only when `question`."""
    return [f for f in LEADS[kind] if (question or "?" not in f) and not ("do {}" in f and labels.TOOL_ARGS[tool])]


def single(tool: str, rng) -> tuple[list, list]:
    r = rng.random()
    if tool == "TALK" or r < 0.55:
        pieces, steps = build(pick(rng, FRAMES[tool]), [tool], rng)
        return wrap(pieces, rng, 0.2, polite=False, ctx=context(tool, rng, 0.12)), steps
    if r < 0.61:  # the thing first: "I need the build checked", "a listing of src, please"
        kind = "passive" if tool in PASSIVE and rng.random() < 0.6 else "items"
        pieces, steps = build(pick(rng, (PASSIVE if kind == "passive" else ITEMS)[tool]), [tool], rng)
        form = pick(rng, [f for f in leads(kind, tool) if f != "{}"])
        return wrap(lead(pieces, form), rng, 0.15, polite=False, ctx=context(tool, rng, 0.12)), steps
    pieces, steps = build(pick(rng, CLAUSES[tool]), [tool], rng)
    return wrap(pieces, rng, 0.6, polite=True, ing=True, ctx=context(tool, rng, 0.12)), steps


def next_tool(prev: str | None, rng) -> str:
    if prev in FOLLOW and rng.random() < 0.3:
        return FOLLOW[prev]
    tools = [t for t in labels.TOOLS[1:] if t != prev or labels.TOOL_ARGS[t]]
    w = np.array([TOOL_WEIGHT.get(t, 1.0) for t in tools])
    return tools[int(rng.choice(len(tools), p=w / w.sum()))]


def picks_of(frame: str) -> int:
    """How many picks a REFS_MULTI frame makes ("open hits {card} and {card}": 2, "the top two{@2}": 2)."""
    return frame.count("{card}") + sum(int(k) for k in re.findall(r"\{@(\d)\}", frame))


def ref_clause(steps: list, room: int, rng) -> tuple[list, list] | None:
    """A clause using the last step's result ("open the 2nd hit", "remember the score", "open hits 1 and
    3": one step a pick, at most `room` steps), if it has one."""
    prev, prev_args = steps[-1]
    if prev == "READ_FILE":  # "..., open the first hit and remember the path": the hit of the search
        src = prev_args["path"]
        if not isinstance(src, dict) or len(steps) > 1 and isinstance(steps[-2][1].get("path"), dict):
            return None  # not after "open hits 1 and 2": which path?
        spec = f"MEMORY_ADD<{src['from']}.{src['pick']}"
        return build(pick(rng, REFS["READ_FILE", "MEMORY_ADD"]), [spec], rng)
    dsts = [dst for src, dst in REFS if src == prev]
    if not dsts:
        return None
    dst = pick(rng, dsts)
    multi = [f for f in REFS_MULTI.get((prev, dst), ()) if picks_of(f) <= room]
    if multi and rng.random() < 0.3:
        return build(pick(rng, multi), [f"{dst}<{len(steps)}*"], rng)
    return build(pick(rng, REFS[prev, dst]), [f"{dst}<{len(steps)}"], rng)


@dataclasses.dataclass
class Clause:
    """Steps of a composite in words (one, or one a pick: "open hits 1 and 3"); `dep` when it reads only
    right after the step before it (a reference, a follow-up, a condition, a closing TALK), so no order frame
    may move it in front of that step."""
    tool: str
    pieces: list
    dep: bool
    steps: list


def clauses(n: int, rng) -> tuple[list[Clause], list]:
    """Clauses of n steps in all and the steps: references to the step before, follow-ups, or a next tool,
    sometimes after a condition on the step before ("if it builds, ...")."""
    out, steps = [], []
    while len(steps) < n:
        made, dep = (ref_clause(steps, n - len(steps), rng) if steps and rng.random() < 0.35 else None), True
        prev = steps[-1][0] if steps else None
        if made is None and len(steps) == n - 1 and rng.random() < 0.15:
            follow = FOLLOWUPS.get((prev, "TALK"))
            made = build(pick(rng, follow if follow and rng.random() < 0.4 else CLAUSES["TALK"]), ["TALK"], rng)
        if made is None:
            tool = next_tool(prev, rng)
            follow = FOLLOWUPS.get((prev, tool))
            dep = bool(follow) and rng.random() < 0.5
            made = build(pick(rng, follow if dep else CLAUSES[tool]), [tool], rng)
            if not dep and not labels.TOOL_ARGS[tool] and any(t == tool for t, _ in steps) and rng.random() < 0.6:
                made[0].append(" again")
            if prev and not dep and tool != "FIX_TESTS" and rng.random() < 0.1:
                cond = text(pick(rng, CONDITIONS.get(prev, ()) + CONDITIONS["any"]), rng)
                made, dep = ([cond + " "] + made[0], made[1]), True
        out.append(Clause(made[1][-1][0], made[0], dep, made[1]))
        steps += made[1]
    return out, steps


def chain(cs: list[Clause], rng, lead: bool = True) -> list:
    """The clauses joined with connectors ("a, then b and finally c"); `lead`: may open with "first"."""
    first = lead and len(cs) > 1 and rng.random() < 0.1
    pieces = ([pick(rng, FIRST)] if first else []) + cs[0].pieces
    for i, c in enumerate(cs[1:], 1):
        more = c.pieces
        if c.tool in NOUNS and not c.dep and rng.random() < 0.1:
            conn, more = ", followed by", [pick(rng, NOUNS[c.tool])]
        else:
            conn = pick(rng, THEN if first and i == 1 else LAST if i == len(cs) - 1 and len(cs) > 2 else CONNECT)
        if conn == "." and rng.random() < 0.6:  # "Run the tests. Fix what fails."
            more = capital(more)
        pieces += [("" if conn[0] in ",;." else " ") + conn + " "] + more
    return pieces


def marked(cs: list[Clause], rng) -> list:
    """The clauses on one line, each after a mark of its place: "1) a 2) b", "step one: a; step two: b",
    "first a, second b, finally c"."""
    n, r = len(cs), rng.random()
    if r < 0.35:
        form, sep = pick(rng, NUMBERED), pick(rng, (" ", "; ", ", "))
        marks = [form.replace("{k}", str(k)) for k in range(1, n + 1)]
    else:
        sep = pick(rng, (", ", "; ", ". ", " "))
        if r < 0.65:
            form = pick(rng, STEP_MARKS)
            marks = [form.replace("{w}", CARDINALS[k]).replace("{d}", str(k + 1)).replace("{o}", ORDINAL_WORDS[0][k])
                     for k in range(n)]
        else:
            punct = pick(rng, (" ", ", ", ": "))
            marks = [w + punct for w in ORDINAL_WORDS[int(rng.integers(3))][:n]]
            if n > 2 and rng.random() < 0.4:
                marks[-1] = pick(rng, LAST_WORDS) + punct
    pieces = []
    for k, c in enumerate(cs):
        pieces += [(sep if k else "") + marks[k]] + c.pieces
    return pieces


def positioned(cs: list[Clause], rng) -> tuple[list, bool] | None:
    """The clauses each with its place after it: "a first, b second", "a to start, b next, c last", "a, b
    after that, and c at the end". Ordinals may give the clauses in another order ("lint the docs second,
    check the build first"); None when a clause must stay right after its step (a reference, a follow-up)."""
    n = len(cs)
    if any(c.dep for c in cs):
        return None
    ordinal = rng.random() < 0.5
    if ordinal:
        tags = list(ORDINAL_WORDS[int(rng.integers(2))][:n])
        if rng.random() < 0.4:
            tags[-1] = pick(rng, AT_LAST)
    else:
        tags = ([pick(rng, AT_FIRST) if rng.random() < 0.6 else ""] + [pick(rng, AT_NEXT) for _ in range(n - 2)]
                + [pick(rng, AT_LAST)])
    # another order only with distinct tools: "run the tests again first" would read before its first time
    shuffle = ordinal and len({c.tool for c in cs}) == n and rng.random() < 0.3
    order = [int(i) for i in rng.permutation(n)] if shuffle else list(range(n))
    sep = pick(rng, (", ", "; "))
    last = sep if shuffle else pick(rng, (sep, ", and ", " and "))
    pieces = []
    for j, i in enumerate(order):
        pieces += ([last if j == n - 1 else sep] if j else []) + cs[i].pieces + ([" " + tags[i]] if tags[i] else [])
    return pieces, True


def thing_first(cs: list[Clause], rng) -> tuple[list, bool] | None:
    """The things asked for first: "I need the tests run; whatever fails, fix it", "get the build checked
    and the docs linted", "the tests, then a lint pass". The first clauses that have a PASSIVE (or ITEMS)
    form are put in it (`cs` changed in place, with their steps), the rest stay clauses; None when the first
    has no such form."""
    kind = "passive" if rng.random() < 0.6 else "items"
    forms = PASSIVE if kind == "passive" else ITEMS
    if cs[0].tool not in forms:
        return None
    k = 0  # clauses made things
    while k < len(cs) and cs[k].tool in forms and (not cs[k].dep or cs[k].tool == "TALK") and (
            k == 0 or rng.random() < 0.85):
        pieces, steps = build(pick(rng, forms[cs[k].tool]), [cs[k].tool], rng)
        if not labels.TOOL_ARGS[cs[k].tool] and any(c.tool == cs[k].tool for c in cs[:k]) and rng.random() < 0.6:
            pieces.append(" again")
        cs[k] = Clause(cs[k].tool, pieces, cs[k].dep, steps)
        k += 1
    n, pieces = len(cs), list(cs[0].pieces)
    for i, c in enumerate(cs[1:], 1):
        sep = (pick(rng, THING_TO_CLAUSE) if i >= k else " first, then " if i == 1 and rng.random() < 0.15
               else pick(rng, THING_LAST if i == n - 1 and n > 2 and rng.random() < 0.5 else THING_SEP))
        pieces += [sep] + (capital(c.pieces) if sep == ". " and rng.random() < 0.5 else c.pieces)
    if k == n > 1 and rng.random() < 0.15:
        pieces.append(", in that order")
    return lead(pieces, pick(rng, leads(kind, cs[0].tool, question=k == n))), False


def terse(n: int, rng) -> tuple[list, list]:
    """n steps of the argument-less tools as bare verbs in order: "build, test, fix, retest", "train ->
    eval -> retrain -> re-eval"."""
    tools = []
    for i in range(n):
        prev = tools[-1] if tools else None
        if i == n - 1 and i and rng.random() < 0.08:
            tools.append("TALK")
        elif prev and rng.random() < 0.45:
            tools.append(TERSE_NEXT[prev])
        else:
            tools.append(pick(rng, [t for t in TERSE if t not in ("TALK", prev)]))
    sep = pick(rng, TERSE_SEP)
    last = pick(rng, TERSE_LAST) if n > 2 and sep in (", ", "; ") and rng.random() < 0.4 else sep
    words = []
    for i, t in enumerate(tools):
        if t in tools[:i] and rng.random() < 0.9:
            w = pick(rng, AGAIN[t]) if rng.random() < 0.5 else pick(rng, TERSE[t]) + pick(rng, AGAIN_WORDS)
        else:
            w = pick(rng, TERSE[t] + TERSE_AFTER.get((tools[i - 1] if i else None, t), ()))
        words.append(text(w, rng))
    goal = sep.join(words[:-1]) + last + words[-1]
    return wrap([goal], rng, 0.3, polite=True, ctx=context(tools[0], rng, 0.06)), [(t, {}) for t in tools]


def ordered(cs: list[Clause], rng) -> tuple[list, bool] | None:
    """The clauses in an ORDERS frame ("after running the tests, fix ..."), and whether the frame starts
    with a clause (so a polite wrapper fits around it); None when the frame drawn does not fit them."""
    frame, a, rest = pick(rng, ORDERS), cs[0], cs[1:]
    if frame.index("{B") < frame.index("{A") and rest[0].dep:
        return None
    one = len(rest) == 1 and not rest[0].dep
    fills = {"A": a.pieces, "A-ing": gerund(a.pieces), "B": chain(rest, rng, lead=False),
             "A-noun": [pick(rng, NOUNS[a.tool])] if a.tool in NOUNS else None,
             "B1": rest[0].pieces if one else None, "B-ing": gerund(rest[0].pieces) if one else None}
    out = []
    for i, part in enumerate(re.split(r"\{([AB](?:1|-ing|-noun)?)\}", frame)):
        if i % 2 == 0:
            out.append(part)
        elif fills[part] is None:
            return None
        else:
            out += fills[part]
    return [p for p in out if p != ""], bool(re.match(r"\{[AB]1?\}", frame))


def composite(n: int, rng) -> tuple[list, list]:
    """A goal of n steps: a COMBO frame; bare verbs of the argument-less tools ("build, test, fix, retest");
    or clauses joined with connectors, marked ("1) a 2) b", "first a, second b"), with their places after
    them ("a first, b second"), in an ORDERS frame, or with the things asked for first ("I need the tests
    run; ...")."""
    combos, r = [c for c in COMBOS if len(c[1]) == n], rng.random()
    if combos and r < 0.2:
        pieces, steps = build(*pick(rng, combos), rng)
        return wrap(pieces, rng, 0.4, polite=True, ctx=context(steps[0][0], rng, 0.06)), steps
    if r < 0.32:
        return terse(n, rng)
    cs, _ = clauses(n, rng)
    style = rng.random()
    made = ((marked(cs, rng), False) if style < 0.1 else ordered(cs, rng) if style < 0.22
            else positioned(cs, rng) if style < 0.32 else thing_first(cs, rng) if style < 0.44 else None)
    pieces, polite = made or (chain(cs, rng), True)
    polite = polite and pieces[0] not in FIRST  # "can you first off, ..." does not read
    steps = [s for c in cs for s in c.steps]  # thing_first makes new ones
    return wrap(pieces, rng, 0.4, polite, ctx=context(cs[0].tool, rng, 0.08)), steps


def noise(pieces: list, rng) -> list:
    """Typos in the text around the spans, sometimes; a capital first letter, all capitals or all small
    letters; dropped apostrophes ("whats"); an ending ("!", " :)")."""
    for _ in range(int(rng.choice(3, p=(0.86, 0.11, 0.03)))):
        words = [(i, m) for i, p in enumerate(pieces) if isinstance(p, str)
                 for m in re.finditer(r"[A-Za-z]{4,}", p)]
        if not words:
            break
        i, m = pick(rng, words)
        w, j = m.group(), int(rng.integers(1, len(m.group()) - 1))
        w = pick(rng, (w[:j] + w[j + 1] + w[j] + w[j + 2:], w[:j] + w[j + 1:], w[:j] + w[j] + w[j:]))
        pieces[i] = pieces[i][:m.start()] + w + pieces[i][m.end():]
    if rng.random() < 0.06:
        pieces = [re.sub(r"(?<=\w)'(?=\w)", "", p) if isinstance(p, str) else p for p in pieces]
    r = rng.random()
    if r < 0.04:  # shouting: the text, and notes and topics with it
        for i, p in enumerate(pieces):
            if isinstance(p, str):
                pieces[i] = p.upper()
            elif p.name == "text":
                p.value = p.value.upper()
    elif r < 0.3:
        pieces = capital(pieces)
    elif r < 0.36:
        pieces = [p.lower() if isinstance(p, str) else p for p in pieces]
    last = pieces[-1]
    tail = last if isinstance(last, str) else last.quote or last.value
    if rng.random() < 0.1 and (tail[-1].isalnum() or tail[-1] in ")]'\"`"):
        bare = isinstance(last, Span) and last.name == "pattern" and not last.quote  # "grep foo." is ambiguous
        pieces = pieces + [pick(rng, [t for t in TRAIL if t[0] == " "] if bare else TRAIL)]
    return pieces


def chat_problem(goal: str) -> bool:
    """A conversation goal with a tool word outside a chat shape: it could read as a request."""
    return bool(TALK_WORDS.search(goal)) and not CHAT_CUES.search(goal)


def record(pieces: list, steps: list) -> dict | None:
    """The labelled goal, or None when it breaks a rule: a span not at its first occurrence, a repeated
    step with arguments, stray spaces, a tool word in a conversation goal (chat_problem), or a goal too
    long for the planner or the policy."""
    goal, at = "", []
    for p in pieces:
        if isinstance(p, Span):
            at.append((p.value, len(goal) + len(p.quote)))
            goal += p.quote + p.value + p.quote
        else:
            goal += p
    args = [{k: v.value if isinstance(v, Span) else v for k, v in a.items()} for _, a in steps]
    keyed = [json.dumps([t, a], sort_keys=True) for (t, _), a in zip(steps, args) if a]
    if goal != goal.strip() or "  " in goal or len(set(keyed)) < len(keyed):
        return None
    if any(goal.find(v) != i for v, i in at):
        return None
    actions = [t for t, _ in steps]
    intent = "COMPOSITE" if len(actions) > 1 else "CONVERSATION" if actions[0] == "TALK" else actions[0]
    if intent == "CONVERSATION" and chat_problem(goal):
        return None
    r = dict(goal=goal, intent=intent, actions=actions, args=args)
    if examples.goal_problem(r) or examples.planner_truncated(r, 160) or examples.policy_truncated(r, 128):
        return None
    return r


def shares(total: int, weights: list[float]) -> list[int]:
    """`total` split in proportion to `weights`, remainders to the largest fractions."""
    w = np.array(weights) / sum(weights) * total
    out = np.floor(w).astype(int)
    out[np.argsort(out - w, kind="stable")[:total - out.sum()]] += 1
    return [int(k) for k in out]


def folded(goal: str) -> str:
    """A goal's words, lower-cased, without punctuation, emoji or extra spaces: two goals that fold
    alike say the same thing ("Repair the suite!" and "repair the suite 🙏")."""
    return " ".join(re.sub(r"[^\w\s]", " ", goal.casefold()).split())


def generate(n: int, seed: int, exclude: set[str]) -> list[dict]:
    """n goals that fold (`folded`) apart: 35% composites of 2/3/4 steps (52/31/17%), the rest split
    over the tools by TOOL_WEIGHT; none that folds like a goal in `exclude` (folded goals)."""
    rng = np.random.default_rng(seed)
    n_comp = round(0.35 * n)
    weights = [TOOL_WEIGHT.get(t, 1.0) for t in labels.TOOLS]
    jobs = [(single, t) for t, k in zip(labels.TOOLS, shares(n - n_comp, weights)) for _ in range(k)]
    jobs += [(composite, m) for m, k in zip((2, 3, 4), shares(n_comp, [0.52, 0.31, 0.17])) for _ in range(k)]
    seen, out = set(exclude), []
    for make, what in jobs:
        for _ in range(1000):
            pieces, steps = make(what, rng)
            r = record(noise(pieces, rng), steps)
            if r and folded(r["goal"]) not in seen:
                break
        else:
            raise RuntimeError(f"no new valid goal for {make.__name__} {what} in 1000 draws")
        seen.add(folded(r["goal"]))
        out.append(r)
    return [out[i] for i in rng.permutation(len(out))]


def dumps(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


# ---------------------------------------------------------------- self-test and command line

def holds(lhs: str, rhs: str, rng) -> bool:
    """Both sides agree at five random integer points."""
    names = sorted(set(re.findall(r"[a-z]", lhs + rhs)))
    for _ in range(5):
        env = {"__builtins__": {}} | {v: int(x) for v, x in zip(names, rng.integers(-20, 21, len(names)))}
        if eval(lhs.replace("^", "**"), env) != eval(rhs.replace("^", "**"), env):
            return False
    return True


def self_test(out: Path, n: int, seed: int, exclude: set[str]) -> list[str]:
    """Every rule the file must keep; the problems found (empty when it passes)."""
    try:
        records = examples.load_goals(out)  # every goal through goal_problem
    except examples.DataError as e:
        return [str(e)]
    goals = [r["goal"] for r in records]

    rng = np.random.default_rng(0)
    problems = [f"{len(goals) - len(set(goals))} duplicate goals"] if len(set(goals)) < len(goals) else []
    problems += [f"{len(records)} goals, asked for {n}"] if len(records) != n else []
    problems += [f"a goal of train.jsonl or held_out.jsonl, but for case or punctuation: {g!r}"
                 for g in goals if folded(g) in exclude]
    for r in records:
        cut = examples.planner_truncated(r, 160) + examples.policy_truncated(r, 128)
        problems += [f"{examples.where(r)}: {', '.join(cut)}"] if cut else []
        if SLOT.search(r["goal"]):
            problems.append(f"{examples.where(r)}: an unfilled {{slot}} (a wrapper or connector holding one?)")
        if r["intent"] == "CONVERSATION" and chat_problem(r["goal"]):
            problems.append(f"{examples.where(r)}: a tool word in a conversation goal, not in a chat shape")
        for a in r["args"]:
            if "lhs" in a and not holds(a["lhs"], a["rhs"], rng):
                problems.append(f"{examples.where(r)}: {a['lhs']} = {a['rhs']} is not an identity")
            if "lhs" in a and r["goal"].find(a["lhs"]) + len(a["lhs"]) > r["goal"].find(a["rhs"]):
                problems.append(f"{examples.where(r)}: lhs and rhs overlap")
    if dumps(generate(n, seed, exclude)).encode() != out.read_bytes():
        problems.append("a second run with the same seed gives another file")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60000, help="goals to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "synthetic.jsonl")
    a = ap.parse_args()
    # Never a goal of the training file or, word for word (case and punctuation aside), of the
    # held-out bench (only read here, to keep its goals out: the phrase tables are written without it).
    exclude = {folded(r["goal"]) for name in ("train.jsonl", "held_out.jsonl")
               for r in examples.load_goals(HERE / name)}
    t0 = time.perf_counter()
    records = generate(a.n, a.seed, exclude)
    a.out.write_text(dumps(records), encoding="utf-8")
    took = time.perf_counter() - t0
    problems = self_test(a.out, a.n, a.seed, exclude)
    if problems:
        sys.exit("self-test FAILED:\n  " + "\n  ".join(problems[:50]))
    def count(key):
        return dict(sorted(collections.Counter(key(r) for r in records).items()))

    print(f"{a.out}: {len(records)} goals, {a.out.stat().st_size} bytes, generated in {took:.2f}s;"
          " self-test passed")
    print("per intent:", count(lambda r: r["intent"]))
    print("per number of actions:", count(lambda r: len(r["actions"])))
    print("frames per tool (whole + clauses):",
          {t: f"{len(FRAMES.get(t, ()))}+{len(CLAUSES[t])}" for t in labels.TOOLS},
          f"+ {sum(map(len, REFS.values()))} reference-step",
          f"({sum(map(len, REFS_MULTI.values()))} more of several picks),",
          f"{sum(map(len, FOLLOWUPS.values()))} follow-up, {sum(map(len, CONDITIONS.values()))} condition,",
          f"{len(COMBOS)} multi-step and {len(ORDERS)} order frames;",
          f"{sum(map(len, TERSE.values())) + sum(map(len, TERSE_AFTER.values()))} bare verbs and",
          f"{sum(map(len, AGAIN.values()))} repeats; {sum(map(len, PASSIVE.values()))} participle and",
          f"{sum(map(len, ITEMS.values()))} noun forms")


if __name__ == "__main__":
    main()
