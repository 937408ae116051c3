"""Synthetic labelled goals for training the planner and policy (format: README.md here).

    python datasets/goals/synthesize.py [--n 3000] [--seed 0] [--out datasets/goals/synthetic.jsonl]

Each goal is drawn from sentence frames: "{run} {tests}", "where is {pat} used?", ... A
{slot} is filled from a phrase table (SLOTS), a value generator (DYNAMIC), an inline choice
{a/b/c}, or an argument (ARGS: a path, a search pattern, a note, an equation), which becomes
a labelled span of the goal. A single-step goal is a full frame of its tool, or an imperative
clause in a wrapper ("can you {}?"); a composite joins 2 to 4 clauses with connectors, with
reference steps ("... and open the second hit") or is one multi-step frame (COMBOS). Surface
noise (a typo, capitals) touches only the text around the spans. The file is training data
only; the script checks it before it exits and fails when any check does not hold.
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


SLOTS = {k: table(v) for k, v in dict(
    run="run | execute | kick off | launch | fire off | start | trigger | rerun | go run",
    tests="the tests | the unit tests | all the tests | all tests | the specs | our tests | the test cases |"
          "the integration tests | the smoke tests | the regression tests",
    suite="the test suite | the whole test suite | the testsuite | pytest | the unit test suite |"
          "the full suite",
    kind="unit | integration | smoke | regression | end-to-end | e2e | fast | slow | API | UI",
    proj="the project | the code | the repo | the codebase | everything | this branch | my branch |"
         "the workspace | it | the sources | the crate | the package",
    check="check | verify | confirm | make sure",
    fix="fix | repair | patch up | sort out | deal with | resolve | clean up",
    failing="the failing tests | the broken tests | the test failures | the red tests | the failing specs |"
            "the broken unit tests | whatever tests are failing | the tests that fail",
    docs="the docs | the documentation | the markdown docs | our docs | the doc pages | the user guide |"
         "the API docs | the docs site | the README and the guides",
    lint="lint | check | validate | proofread | scan",
    lean_s="the lean suite | the Lean suite | the Lean proof suite | the Lean 4 suite | the theorem suite |"
           "the formal verification suite",
    lean_p="the Lean proofs | the lean proofs | the formal proofs | the Lean theorems | all the Lean proofs |"
           "our Lean lemmas | the mathlib proofs",
    model="the model | the brain | the current checkpoint | the latest checkpoint | the network |"
          "the planner | the policy | the new weights | the best checkpoint",
    evals="the eval | the evaluation | the evals | the benchmarks | the eval suite | the eval harness |"
          "the benchmark suite | an eval pass | a round of evals",
    tverb="train | retrain | fine-tune | finetune",
    start="start | begin | launch | kick off | spin up",
    trainrun="training | a training run | a training session | model training | a new training run |"
             "a fine-tuning run | the training job | another training round",
    greet="hi | hello | hey | hiya | howdy | good morning | good evening | good afternoon | yo | heya |"
          "morning | greetings",
    botlike="a robot | an AI | a real person | human | conscious | sentient | a chatbot",
    fav="colour | movie | book | food | season | song | programming language | animal | city",
    pairq="a list and a tuple | TCP and UDP | a process and a thread | stack and heap |"
          "git merge and rebase | HTTP and HTTPS | an interface and a class | RAM and disk |"
          "a virus and a bacterium",
    concept="recursion | a monad | a closure | a hash map | big O notation | garbage collection |"
            "a linked list | DNS | a race condition | dependency injection | entropy | a black hole |"
            "inflation",
    opinion="tabs vs spaces | vim or emacs | dark mode | Rust | functional programming | remote work |"
            "pineapple on pizza | AI art | static typing | microservices | office dogs",
    feeling="tired | happy | stressed | bored | excited | a bit down | sleepy | great | anxious",
    bad="my coffee spilled | the wifi is down again | I missed the bus | it's raining all day |"
        "my cat knocked over a plant | I locked myself out",
    rec="book on algorithms | sci-fi novel | podcast | board game | hiking trail | pasta recipe | movie",
    topic_fun="octopuses | space | the ocean | honey bees | volcanoes | penguins | Rome | the moon",
    person="Alice | Bob | Carol | Dave | Erin | Frank | Grace | Heidi | Ivan | Judy | Mallory | Priya |"
           "Olivia | Rupert | Sybil | Trent | Victor | Walter | Yusuf | Mei | José | Zoë",
    day="Monday | Tuesday | Wednesday | Thursday | Friday | Saturday | Sunday",
    time="9am | 10:30 | 3pm | noon | 16:00 | half past two | 11am",
    env="staging | prod | dev | qa | local | canary",
    fmt="black | ruff | prettier | gofmt | rustfmt | clang-format",
    editor="vim | emacs | VS Code | helix | nano",
    pref="short answers | tabs over spaces | dark mode | detailed explanations | British spelling",
    gpu="A100 | T4 | laptop GPU | V100 | H100 | 3090",
    lr="3e-4 | 1e-3 | 5e-5 | 2e-4 | 0.01",
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
    java | rb | sh | sql | css | html | txt | cfg | ini | lean | proto | kt | swift | lua | vue""")
FILE_FORMS = table("""{dirp}{special} | {special} | tests/test_{w}.py | {dirp}{w}_test.go | src/{w}.spec.ts |
    src/main/java/{Cap}{Cap}.java | src/components/{Cap}.tsx | {dirp}{w}-{w}.{ext} | ~/{dirp}{w}.{ext} |
    ../{w}/{w}.{ext} | /etc/{w}.conf | {dirp}v{num}/{w}.{ext} | .github/workflows/{w}.yml""")
SPECIAL_FILES = table("""Makefile | Dockerfile | README.md | LICENSE | CHANGELOG.md | setup.py | Cargo.toml |
    package.json | go.mod | pyproject.toml | .gitignore | .env.example | tsconfig.json | requirements.txt |
    docker-compose.yml | CMakeLists.txt | conftest.py | __init__.py | index.ts | main.rs | lib.rs |
    Gemfile""")
DIR_FORMS = table("""src | docs | tests/unit | scripts/ci | .github/workflows | third_party/ | assets/img |
    internal/api/v2 | lib/ | examples/ | config/ | cmd/{w} | pkg/{w} | app/models | {dirp}{w}-{w} |
    ~/projects/{w} | ./{w} | {dirp}v{num} | migrations | benchmarks/{w}""")
PATCH_NAMES = table("""{n4}-{w}-{w} | fix-{w} | fix_{ident} | {w}-{w} | {w} | {w}_{w} | bump-{w}-v{ver} |
    {n4}-{w}""")
PATCH_DIRS = ("", "patches/", "hotfix/", "tmp/", "series/", "contrib/", "fixes/", "upstream/", "./",
              "~/work/", "patches/deps/", "../", "out/")
ERROR_PHRASES = table("""connection refused | permission denied | out of memory | segmentation fault |
    index out of range | unexpected EOF | no such file or directory | deadline exceeded | key not found |
    already borrowed | not implemented | division by zero | {failed} {verb} {obj}""")
SLOTS |= dict(failed=table("failed to | could not | unable to | cannot | timed out trying to"),
              verb=table("open | parse | connect to | read | load | resolve | decode | bind | flush"),
              obj=table("config | socket | header | database | the cache | host | token | session | buffer"),
              special=SPECIAL_FILES, recv=table("self | this | np | os | jax | ctx | app | req | {w}"))
REGEXES = (r"^def {w}_\w+", r"{W}_[A-Z]+", r"\b{w}\b", r"{w}.*{w}", r"[0-9]+\.[0-9]+", r"{w}\(\s*\)",
           r"(get|set){Cap}", r"^import {w}", r"TODO\({w}\)", r"\.{w}\(", r"^class \w+{Cap}", r"{w}_v[0-9]+",
           r"\d+ms", r"log\.(warn|error)", r"#\s*{w}", r"^\s*@{w}", r"fn {w}<.*>", r"{W}=.*")
MARKERS = ("TODO", "FIXME", "XXX", "HACK", "NOTE:", "@deprecated", "@override", "#pragma once", "unsafe",
           "panic!(", "unwrap()", "console.log(", "print(", "breakpoint()", "pdb.set_trace()",
           "# type: ignore", "noqa", "async fn", "#[derive(Debug)]", "// TODO", "@pytest.mark.skip",
           "raise NotImplementedError", "__init__", "__main__", "eval(")
CODE = table("""import {w} | from {w} import {ident} | class {Cap}{Cap} | def {ident} | fn {ident} |
    func {Cap} | #include <{w}.h> | struct {Cap} | interface {Cap} | const {W} = | let {ident} = |
    impl {Cap} for | {w}: {Cap} | return {ident} | {Cap}<{Cap}> | {recv}.{ident} | {recv}.{ident}( |
    {Cap}::{ident} | std::{w} | {w}::{w}::{ident} | {ident}(""")
NOTES = table("""the {env} server is on port {port} | {person} owns the {w} module |
    deploys happen on {day}s | {person} is on holiday until {day} | the meeting moved to {time} |
    lr {lr} worked best for the {w} run | {path} is flaky | run {num} diverged at step {step} |
    we use {fmt} for formatting | the API key rotates every {num} days | the release branch is release/{ver} |
    my favourite editor is {editor} | I prefer {pref} | {ident} returns None on empty input |
    the GPU box is called {host} | we never push to main on {day}s |
    batch size {num} runs out of memory on the {gpu} | standup is at {time} |
    the {w} cache lives in /var/cache/{w} | {person} reviews every change to {dir} | the demo is on {day} |
    the checkpoint from run {num} is the best so far | the {env} database password is in the vault |
    {person}'s birthday is in {March/June/October} | we should rename {ident} to {ident} |
    the docs build needs sphinx {ver} | {person} wants a heads-up before anyone touches {path} |
    {ident} is deprecated since v{ver} | the nightly job takes {num} minutes | {person} prefers {pref} |
    the {w} service restarts every {day} at {time}""")
TOPICS = table("""the {env} server | {person} | the {w} module | port {port} | {ident} | the release branch |
    {host} | deploys | the meeting | learning rate | the GPU quota | flaky tests | the CI cache |
    my favourite editor | the {w} migration | run {num} | the rule about {day}s | {person}'s birthday |
    the {env} database | standup | the API key | {fmt} | batch size | the nightly job | the demo |
    the {w} cache | the {w} service | what {person} said about {w} | the {day} deploy | the vault |
    {person} and the {w} module""")

ORDINALS = {1: ("first", "1st", "top"), 2: ("second", "2nd"), 3: ("third", "3rd"), 4: ("fourth", "4th"),
            5: ("fifth", "5th"), 6: ("sixth", "6th"), 7: ("seventh", "7th")}
PICK_P = (0.4, 0.25, 0.15, 0.12, 0.08)


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# ---------------------------------------------------------------- argument values

def file_path(rng) -> str:
    if rng.random() < 0.6:
        shape = pick(rng, ("a/b.", "a.", "./a/b.", "a/b/c.", "/a/b.", "a/b."))  # _path keeps lead and ext
        return _path(shape + pick(rng, FILE_EXTS), rng)
    return text(pick(rng, FILE_FORMS), rng)


def dir_path(rng) -> str:
    if rng.random() < 0.6:
        return _path(pick(rng, ("a/b", "a/b/", "./a", "a", "a/b/c", "/a/b", "a/")), rng)
    return text(pick(rng, DIR_FORMS), rng)


def patch_path(rng) -> str:
    ext = ".diff" if rng.random() < 0.25 else ".patch"
    return pick(rng, PATCH_DIRS) + text(pick(rng, PATCH_NAMES), rng) + ext


def pattern(rng) -> str:
    """An identifier, an error message, a regex, a marker (TODO, unwrap()) or a code fragment."""
    r = rng.random()
    if r < 0.35:
        return _identifier(rng)
    form = (ERROR_PHRASES if r < 0.5 else REGEXES if r < 0.62 else MARKERS if r < 0.72 else CODE)
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
        what's your favourite {fav}? | which do you prefer, {opinion}? | what do you think about {opinion}? |
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
        what day is it today?""",
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
        test everything""",
    CHECK_BUILD="""does {proj} compile? | does {proj} still build? | will it compile? |
        is the build {green/broken/red/clean/ok/passing}? | any type errors in {proj}? | any compile errors? |
        are there any build errors? | does it build cleanly? | I wonder if {proj} still compiles |
        can you tell me whether {proj} builds? | quick question: does {proj} type-check? |
        see if the build passes | do a quick build check before I push |
        would you kindly make sure {proj} still type-checks | did I break the build? |
        the build might be broken, can you check? | verify the build is clean | build check please |
        does {proj} type-check? | run the compiler and report errors | is CI going to build it?""",
    FIX_TESTS="""the tests are {red/failing/broken}, can you fix them? | tests are failing, sort it out |
        {num} tests are failing, please fix them | something broke the tests, fix it |
        can you get {suite} green again? | could you have a go at fixing the tests? |
        I wonder if you could fix {failing} | why are the tests failing? fix it |
        figure out why the tests fail and fix it | the test suite is broken - repair it | fix tests pls |
        would you repair {failing}? | tests broke after my change, can you fix them? |
        please make the tests green again | {failing} need fixing | can you make {failing} pass? |
        there are test failures, deal with them | patch the code so the tests pass |
        our test suite is red - fix it | I need {failing} fixed | the {kind} tests are failing, fix them |
        can you look into {failing} and fix them?""",
    DOCS_LINT="""any lint errors in {docs}? | any broken links in {docs}? |
        anything wrong with the formatting of {docs}? | docs lint | quick docs check | docs linter please |
        run markdownlint | I wonder if the docs still pass lint |
        would you check whether the docs have lint errors? | can you check {docs} for broken formatting? |
        make sure the documentation passes lint | is the documentation clean? | are the docs well formed? |
        before the release, lint {docs} | the docs look messy, lint them |
        does the documentation pass the linter? | any warnings from the docs linter? |
        check that {docs} render properly | look for broken links in {docs} |
        proofread {docs} for formatting issues | validate the markdown in {docs} |
        are there dead links or bad headings in {docs}?""",
    LEAN_SUITE="""do {lean_p} still go through? | are {lean_p} still valid? | does {lean_s} pass? |
        do {lean_p} compile? | is {lean_s} green? | I wonder whether {lean_p} still hold |
        would you mind running {lean_s}? | can you verify {lean_p}? | lean suite | lean check please |
        make sure {lean_p} still compile | after the mathlib bump, do {lean_p} still work? |
        did anything break in {lean_s}? | any failing theorems in {lean_s}? |
        is every theorem in {lean_s} still proved? | how's {lean_s} looking? |
        are there broken proofs in {lean_s}? | typecheck {lean_p} | please run the Lean proof checks |
        lean proofs ok? | I changed a lemma, can you {run} {lean_s}? | give {lean_s} a run""",
    EVAL="""how well does {model} do on the benchmarks? | how good is {model} now? |
        what are the eval numbers right now? | what's the current accuracy? | how does {model} score? |
        let's see how {model} scores | I wonder how {model} performs on the held-out set |
        can you evaluate {model}? | benchmark yourself | is {model} any better now? evaluate it | eval pls |
        get me fresh eval numbers | how accurate is {model}? | run {evals} and report the scores |
        could you score {model} on the benchmarks? | grade {model} | how did {model} do on the eval set? |
        report the eval metrics for {model} | give me the benchmark numbers | compute metrics for {model} |
        did {model} get better? run the evals""",
    TRAIN="""start training | let's train | time to {tverb} {model} | can you {tverb} {model}? |
        please train yourself | could you {tverb} {model} for me? | I'd like you to {start} {trainrun} |
        {tverb} {model} on the built-in data | {tverb} {model} for a few more steps |
        we need a fresh training run | resume training | train for a while | do another training run |
        fit {model} to the data | update the weights with a training run |
        I wonder if you could {tverb} {model} overnight | {start} {trainrun} now |
        can we {start} {trainrun}? | the model is undertrained, {tverb} it more |
        let's {tverb} {model} again | more training please | get a training run going""",
    SEARCH="""where is {pat} used? | where is {pat} defined? | who calls {pat}? | which files mention {pat}? |
        is {pat} used anywhere? | any mentions of {pat} in the codebase? | can you find where {pat} appears? |
        I wonder where {pat} is used | where do we call {pat} | search the workspace for {pat} |
        please search the code for {pat} | look up every mention of {pat} | hunt down every use of {pat} |
        show me every place that uses {pat} | grep -rn {pat} | rg {pat} | find all instances of {pat} |
        find references to {pat} | track down {pat} | where does {pat} show up? |
        do we still use {pat} somewhere? | find the string {pat} | search {pat} | grep the repo for {pat} |
        I need every occurrence of {pat} | could you grep for {pat}? | search for {pat} across the project |
        what references {pat}?""",
    READ_FILE="""what's in {path}? | what does {path} say? | what does {path} look like? |
        can you show the contents of {path}? | could you open {path} for me? | I want to read {path} |
        I wonder what's inside {path} | let me see {path} | please read the file {path} |
        print the file {path} | show the contents of {path} | open the file named {path} |
        give me the contents of {path} | look at the file {path} | pull up {path} | bring up {path} |
        mind opening {path}? | can I see {path}? | need to look at {path} | take a look at {path} |
        peek at {path} | read me {path} | what is in the file {path}? | show me what {path} contains""",
    LIST_FILES="""what files are in {dir}? | which files live in {dir}? | what's in the {dir} folder? |
        what's inside the {dir} directory? | can you list the files under {dir}? |
        show me the directory tree under {dir} | show the contents of directory {dir} |
        what do we have in {dir}? | I wonder what's in the {dir} directory | enumerate files in {dir} |
        ls -la {dir} | give me a listing of {dir} | how many files are in {dir}? | list the files |
        what files do we have? | list everything in the workspace | what's in the repo? |
        please list the files at the project root | ls | show me the project structure |
        which files are here? | what does the workspace contain? | give me a directory listing |
        show all files | list the top-level files | what's at the root of the repo? |
        I wonder what files are in this project""",
    PATCH_DRY_RUN="""would {patch} apply? | does {patch} apply cleanly? |
        does {patch} still apply on top of main? | can you see whether {patch} applies? |
        would my patch at {patch} go in cleanly? | I wonder if {patch} applies |
        check if {patch} applies cleanly | verify that {patch} applies without conflicts |
        simulate applying {patch} | git apply --check {patch} | see if {patch} conflicts with anything |
        will {patch} apply to the current tree? | try {patch} without actually applying it |
        sanity-check that {patch} applies | preview applying {patch} | check the patch {patch} |
        dry run {patch} | is {patch} safe to apply? | any conflicts if I apply {patch}? |
        patch dry run on {patch} | I got {patch} from a colleague, does it apply?""",
    PROVE_ALGEBRA="""prove {eq} | show that {lhs} equals {rhs} | is {lhs} equal to {rhs}? |
        is {lhs} the same as {rhs}? | verify {eq} | can you prove that {lhs} equals {rhs}? | check that {eq} |
        prove the identity {eq} | demonstrate that {lhs} equals {rhs} | verify algebraically: {eq} |
        are {lhs} and {rhs} equal? | does {eq} hold? | confirm that {lhs} equals {rhs} |
        I think {eq}, can you prove it? | I wonder if {lhs} really equals {rhs} |
        double-check the algebra: {eq} | show {lhs} simplifies to {rhs} | prove: {eq} |
        is it true that {eq}? | formally verify {eq} | quick proof: {eq}? | does {lhs} equal {rhs}? |
        show me a proof that {eq} | expand {lhs} and show it's {rhs}""",
    MEMORY_ADD="""note: {note} | remember {note} | please remember that {note} | keep in mind that {note} |
        save a note: {note} | add to memory: {note} | don't forget: {note} | store this: {note} |
        make a note that {note} | jot down that {note} | memo: {note} | remember '{note}' |
        note to self - {note} | for future reference, {note} | write down that {note} |
        commit to memory that {note} | can you remember that {note}? | I want you to remember that {note} |
        remember this for later: {note} | memorise: {note} | could you note that {note}? |
        heads up: {note}. remember that | FYI {note}, keep it in mind""",
    MEMORY_SEARCH="""what do you remember about {topic}? | do you remember anything about {topic}? |
        what did I tell you about {topic}? | remind me what I said about {topic} |
        search your memory for {topic} | what was the thing about {topic}? |
        have I mentioned {topic} before? | check memory: {topic} | what notes do you have on {topic}? |
        could you look through your notes for {topic}? | memory search: {topic} |
        what do we know about {topic} | anything stored about {topic}? | did I ever tell you about {topic}? |
        any notes on {topic}? | what have I said regarding {topic}? | refresh my memory on {topic} |
        what's in your memory about {topic}? | I wonder what I told you about {topic} | recall: {topic}""",
).items()}

CLAUSES = {k: table(v) for k, v in dict(
    RUN_TESTS="{run} {tests} | {run} {suite} | run tests | run the {kind} tests | {run} pytest |"
        "give {tests} a run",
    CHECK_BUILD="check the build | {verify/confirm} the build | build {proj} | compile {proj} |"
        "type-check {proj} | typecheck {proj} | run a build check | do a build check |"
        "{check} that {proj} compiles |"
        "try building {proj} | run cargo check | run the type checker | check for compile errors |"
        "make sure {proj} builds",
    FIX_TESTS="{fix} {failing} | make the failing tests pass | get {suite} green again | fix the tests |"
        "fix what fails | fix any failures | attempt a fix for the test failures |"
        "try to fix whatever is failing | make the tests pass | fix the {kind} tests",
    DOCS_LINT="{lint} {docs} | lint the docs | run the docs linter | lint the markdown |"
        "check {docs} for lint errors | run a lint pass over {docs} | check the docs | lint the README",
    LEAN_SUITE="{run} {lean_s} | {run} {lean_p} | run lean | check {lean_p} | verify {lean_p} |"
        "run the Lean checks | re-verify {lean_p} | give {lean_s} a run",
    EVAL="{run} {evals} | evaluate {model} | score {model} | benchmark {model} | run {evals} on {model} |"
        "measure {model}'s accuracy | evaluate | eval {model} | kick off an evaluation run | run eval",
    TRAIN="{tverb} {model} | {start} {trainrun} | train | {tverb} it | run a training session |"
        "do a training run",
    SEARCH="search for {pat} | grep for {pat} | grep {pat} | find uses of {pat} | find usages of {pat} |"
        "look for {pat} | find where {pat} is defined | search the code for {pat} |"
        "find occurrences of {pat} | locate {pat} | search the repo for {pat}",
    READ_FILE="open {path} | read {path} | cat {path} | show me {path} | show {path} | view {path} |"
        "print {path} | open up {path} | dump {path} | display {path} | look at {path}",
    LIST_FILES="list {dir} | list the files in {dir} | ls {dir} | list files under {dir} |"
        "show what's under {dir} | list what's in {dir} | list the repo root | ls | list the files |"
        "list everything in the workspace",
    PATCH_DRY_RUN="dry-run {patch} | dry-run the patch {patch} | test-apply {patch} | dry-apply {patch} |"
        "check that {patch} applies | do a dry run of {patch} | try applying {patch} without committing |"
        "apply {patch} in dry-run mode | see if {patch} applies cleanly",
    PROVE_ALGEBRA="prove {eq} | prove that {eq} | show that {lhs} equals {rhs} | verify {eq} |"
        "check that {eq}",
    MEMORY_ADD="remember that {note} | note that {note} | save a note that {note} | make a note that {note} |"
        "jot down that {note} | keep in mind that {note} | add to memory that {note} |"
        "store the fact that {note}",
    MEMORY_SEARCH="recall what I said about {topic} | look up my notes on {topic} |"
        "check memory for {topic} | recall anything about {topic} | search memory for {topic} |"
        "recall my notes on {topic} | dig up what you know about {topic} | pull up my notes about {topic}",
    TALK="tell me how it went | explain the results to me | tell me what you think |"
        "let me know if it worked | tell me about it | summarize what happened | explain what's wrong |"
        "give me a quick summary | tell me if it worked | walk me through the results | tell me how it did |"
        "explain it in plain words",
).items()}

# "followed by" takes a noun phrase.
NOUNS = {k: table(v) for k, v in dict(
    RUN_TESTS="a test run | a full test run",
    CHECK_BUILD="a build check | a compile check | a type-check",
    DOCS_LINT="a docs lint | a lint pass over the docs",
    LEAN_SUITE="a Lean suite run | the lean suite",
    EVAL="an eval run | an evaluation | the benchmarks",
    TRAIN="a training run | some training",
).items()}

# A step that uses the step before it: (tool of that step, tool) → frames; {nth} sets the pick.
REFS = {k: table(v) for k, v in {
    ("SEARCH", "READ_FILE"): "open the {nth} hit | open the {nth} match | read the {nth} result | open it |"
        "show me the {nth} file that matches | cat the {nth} hit | open that file | read it |"
        "open the file it's in | pull up the {nth} match | open up the {nth} result",
    ("LIST_FILES", "READ_FILE"): "open the {nth} one | read the {nth} file | cat the {nth} entry |"
        "show the {nth} file | open the {nth} file | show me the {nth} entry | open the {nth} file listed",
    ("SEARCH", "MEMORY_ADD"): "remember the {nth} hit | note down the {nth} match |"
        "remember where it's defined | save the {nth} result to memory | note it down |"
        "make a note of the {nth} hit",
    ("LIST_FILES", "MEMORY_ADD"): "remember the {nth} file | note the {nth} entry |"
        "save the {nth} filename to memory",
    ("READ_FILE", "MEMORY_ADD"): "remember the path | note down the path | save that path to memory |"
        "note it down",
    ("EVAL", "MEMORY_ADD"): "remember the score | remember the result | save the numbers to memory |"
        "note the score | save the first line of the report to memory | write the score down |"
        "store the eval result in memory",
    ("PROVE_ALGEBRA", "MEMORY_ADD"): "remember the result | remember the outcome | note whether it held |"
        "note it down",
    ("FIX_TESTS", "MEMORY_ADD"): "remember what you changed | note down the fix |"
        "save a note of what you fixed",
    ("RUN_TESTS", "MEMORY_ADD"): "remember the {nth} failure | note the results |"
        "save the test results to memory",
    ("CHECK_BUILD", "MEMORY_ADD"): "remember the {nth} error | note down the errors |"
        "save the build output to memory",
    ("DOCS_LINT", "MEMORY_ADD"): "remember the {nth} warning | note the lint results",
    ("LEAN_SUITE", "MEMORY_ADD"): "remember the result | note which proofs failed",
    ("TRAIN", "MEMORY_ADD"): "remember the final loss | note the training result",
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
))

# Wrappers around imperative clauses; INTERJECTIONS fit any goal.
POLITE = table("""please {} | {} please | can you {}? | could you {}? | could you please {}? | would you {}? |
    I need you to {} | I'd like you to {} | go ahead and {} | {} for me | pls {} | {} asap |
    {} when you get a chance | let's {} | can you {} for me? | I wonder if you could {} |
    do me a favour and {} | time to {} | {}!""")
INTERJECTIONS = table("""hey, {} | ok, {} | so {} | hmm, {} | gestalt, {} | alright, {} | yo {} | {} thanks |
    {}, cheers | {} thx | quick one: {} | right, {}""")
CONNECT = table("""then | , then | and then | , after that | ; | and | , | . Then | , and once that's done, |
    . After that, | , next | and after that | ; afterwards | -> | , and then""")
LAST = table(", and | , and then | , then | and finally | , finally | and | ; then")
TOOL_WEIGHT = dict(TALK=1.6, SEARCH=1.4, READ_FILE=1.3, LIST_FILES=1.1, PATCH_DRY_RUN=1.1, PROVE_ALGEBRA=1.3,
                   MEMORY_ADD=1.3, MEMORY_SEARCH=1.3)
FOLLOW = dict(RUN_TESTS="FIX_TESTS", FIX_TESTS="RUN_TESTS", TRAIN="EVAL", PATCH_DRY_RUN="RUN_TESTS",
              PROVE_ALGEBRA="LEAN_SUITE", CHECK_BUILD="RUN_TESTS")
# Words that would ask for a tool; no CONVERSATION goal may hold one ("a linked list" may).
TALK_WORDS = re.compile(r"\b(tests?|testing|build|compile|lint|docs?|documentation|lean|eval\w*|train\w*|"
                        r"search|grep|remember|memory|note|prove|proof|patch|files?|open|read|recall)\b",
                        re.IGNORECASE)


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
        elif key == "nth":
            prev = st["picks"][-1] if st["picks"] else 0  # "the 2nd and 4th": increasing
            st["picks"].append(prev + int(rng.integers(1, 3)) if prev else int(rng.choice(5, p=PICK_P)) + 1)
            out.append(pick(rng, ORDINALS[st["picks"][-1]]))
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
    """(pieces, steps) of one frame; steps are (tool, args) with spans handed out in order."""
    st = {"picks": [], "eq": None}
    pieces = fill(frame, rng, st)
    spans, picks, steps, last = [p for p in pieces if isinstance(p, Span)], st["picks"], [], 1
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


def wrap(pieces: list, rng, p: float, polite: bool) -> list:
    """With probability p, the pieces inside an interjection ("ok, {}") or, when `polite` and the
    pieces are one plain request (no "?" or "."), a POLITE wrapper ("can you {}?")."""
    if rng.random() >= p:
        return pieces
    plain = polite and not any(isinstance(x, str) and ("?" in x or "." in x) for x in pieces)
    before, after = pick(rng, (POLITE if plain and rng.random() < 0.7 else INTERJECTIONS)).split("{}")
    if isinstance(pieces[-1], str) and pieces[-1].endswith("?"):
        after = after.lstrip(",")
    return [x for x in [before] + pieces + [after] if x != ""]


def single(tool: str, rng) -> tuple[list, list]:
    if tool == "TALK" or rng.random() < 0.55:
        pieces, steps = build(pick(rng, FRAMES[tool]), [tool], rng)
        return wrap(pieces, rng, 0.2, polite=False), steps
    pieces, steps = build(pick(rng, CLAUSES[tool]), [tool], rng)
    return wrap(pieces, rng, 0.6, polite=True), steps


def next_tool(prev: str | None, rng) -> str:
    if prev in FOLLOW and rng.random() < 0.3:
        return FOLLOW[prev]
    tools = [t for t in labels.TOOLS[1:] if t != prev or labels.TOOL_ARGS[t]]
    w = np.array([TOOL_WEIGHT.get(t, 1.0) for t in tools])
    return tools[int(rng.choice(len(tools), p=w / w.sum()))]


def ref_clause(steps: list, rng) -> tuple[list, list] | None:
    """A clause using the last step's result ("open the 2nd hit", "remember the score"), if it has one."""
    prev, prev_args = steps[-1]
    if prev == "READ_FILE":  # "..., open the first hit and remember the path": the hit of the search
        src = prev_args["path"]
        if not isinstance(src, dict):
            return None
        spec = f"MEMORY_ADD<{src['from']}.{src['pick']}"
        return build(pick(rng, REFS["READ_FILE", "MEMORY_ADD"]), [spec], rng)
    dsts = [dst for src, dst in REFS if src == prev]
    if not dsts:
        return None
    dst = pick(rng, dsts)
    return build(pick(rng, REFS[prev, dst]), [f"{dst}<{len(steps)}"], rng)


def composite(n: int, rng) -> tuple[list, list]:
    """A goal of n steps: a COMBO frame, or n clauses joined by connectors."""
    combos = [c for c in COMBOS if len(c[1]) == n]
    if combos and rng.random() < 0.25:
        pieces, steps = build(*pick(rng, combos), rng)
        return wrap(pieces, rng, 0.4, polite=True), steps
    clauses, steps = [], []  # clauses: (connector before it or None, pieces)
    for i in range(n):
        clause = ref_clause(steps, rng) if steps and rng.random() < 0.35 else None
        if clause is None and i == n - 1 and rng.random() < 0.15:
            clause = build(pick(rng, CLAUSES["TALK"]), ["TALK"], rng)
        conn = None
        if clause is None:
            tool = next_tool(steps[-1][0] if steps else None, rng)
            clause = build(pick(rng, CLAUSES[tool]), [tool], rng)
            if tool in NOUNS and i and rng.random() < 0.1:
                clause, conn = ([pick(rng, NOUNS[tool])], clause[1]), ", followed by"
            elif not labels.TOOL_ARGS[tool] and any(t == tool for t, _ in steps) and rng.random() < 0.6:
                clause[0].append(" again")
        clauses.append((conn, clause[0]))
        steps += clause[1]
    first = rng.random() < 0.1
    pieces = (["first" + pick(rng, (" ", ", "))] if first else []) + clauses[0][1]
    for i, (conn, more) in enumerate(clauses[1:], 1):
        if conn is None:
            conn = pick(rng, (", then", " and then", "; then") if first and i == 1
                        else LAST if i == n - 1 and n > 2 else CONNECT)
        pieces += [("" if conn[0] in ",;." else " ") + conn + " "] + more
    return wrap(pieces, rng, 0.4, polite=True), steps


def noise(pieces: list, rng) -> list:
    """A typo in the text around the spans, sometimes; a capital first letter or all capitals."""
    words = [(i, m) for i, p in enumerate(pieces) if isinstance(p, str)
             for m in re.finditer(r"[A-Za-z]{4,}", p)]
    if words and rng.random() < 0.12:
        i, m = pick(rng, words)
        w, j = m.group(), int(rng.integers(1, len(m.group()) - 1))
        w = pick(rng, (w[:j] + w[j + 1] + w[j] + w[j + 2:], w[:j] + w[j + 1:], w[:j] + w[j] + w[j:]))
        pieces[i] = pieces[i][:m.start()] + w + pieces[i][m.end():]
    r = rng.random()
    if r < 0.04:  # shouting: the text, and notes and topics with it
        for i, p in enumerate(pieces):
            if isinstance(p, str):
                pieces[i] = p.upper()
            elif p.name == "text":
                p.value = p.value.upper()
    elif r < 0.3 and isinstance(pieces[0], str):
        pieces[0] = pieces[0][0].upper() + pieces[0][1:]
    return pieces


def record(pieces: list, steps: list) -> dict | None:
    """The labelled goal, or None when it breaks a rule: a span not at its first occurrence, a repeated
    step with arguments, stray spaces, or a goal too long for the planner or the policy."""
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


def generate(n: int, seed: int, exclude: set[str]) -> list[dict]:
    """n distinct goals: 35% composites of 2/3/4 steps (60/28/12%), the rest split over the tools by
    TOOL_WEIGHT; none whose casefolded goal is in `exclude`."""
    rng = np.random.default_rng(seed)
    n_comp = round(0.35 * n)
    weights = [TOOL_WEIGHT.get(t, 1.0) for t in labels.TOOLS]
    jobs = [(single, t) for t, k in zip(labels.TOOLS, shares(n - n_comp, weights)) for _ in range(k)]
    jobs += [(composite, m) for m, k in zip((2, 3, 4), shares(n_comp, [0.6, 0.28, 0.12])) for _ in range(k)]
    seen, out = set(exclude), []
    for make, what in jobs:
        for _ in range(1000):
            pieces, steps = make(what, rng)
            r = record(noise(pieces, rng), steps)
            if r and r["goal"].casefold() not in seen:
                break
        else:
            raise RuntimeError(f"no new valid goal for {make.__name__} {what} in 1000 draws")
        seen.add(r["goal"].casefold())
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
    train = {r["goal"] for r in examples.load_goals(HERE / "train.jsonl")}
    rng = np.random.default_rng(0)
    problems = [f"{len(goals) - len(set(goals))} duplicate goals"] if len(set(goals)) < len(goals) else []
    problems += [f"{len(records)} goals, asked for {n}"] if len(records) != n else []
    problems += [f"same as in train.jsonl: {g!r}" for g in goals if g in train]
    for r in records:
        cut = examples.planner_truncated(r, 160) + examples.policy_truncated(r, 128)
        problems += [f"{examples.where(r)}: {', '.join(cut)}"] if cut else []
        if r["intent"] == "CONVERSATION" and TALK_WORDS.search(r["goal"]):
            problems.append(f"{examples.where(r)}: a tool word in a conversation goal")
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
    ap.add_argument("--n", type=int, default=3000, help="goals to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "synthetic.jsonl")
    a = ap.parse_args()
    exclude = {r["goal"].casefold() for r in examples.load_goals(HERE / "train.jsonl")}
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
          f"+ {sum(map(len, REFS.values()))} reference-step and {len(COMBOS)} multi-step frames")


if __name__ == "__main__":
    main()
