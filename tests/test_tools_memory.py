"""The memory store's keyword side and file on real SQLite files, and MEMORY_ADD / MEMORY_SEARCH
(episodes, concepts and `gestalt memory`: test_memory.py)."""

import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent import memory
from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools import memory as memory_tools
from gestalt_jax.agent.tools.base import OK, Context, ToolError


@pytest.fixture
def ctx(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    config = config_lib.base()
    ctx = Context(sandbox=Sandbox(ws, config.agent), config=config, workdir=tmp_path / "work",
                  goal="fix the build")
    yield ctx
    if "memory" in ctx.services:
        ctx.services["memory"].close()


@pytest.fixture
def store(tmp_path):
    a = config_lib.base().agent
    s = memory.MemoryStore(tmp_path / "deep" / "dir" / "memory.sqlite", a.memory_capacity, a.memory_merge_cosine,
                           a.memory_rrf_k)
    yield s
    s.close()


def test_add_then_search_by_keyword(store):
    first = store.add("The build needs Rust 1.79 for let-else")
    other = store.add("Tests run with pytest -n 0 on two cores")
    hits = store.search("which rust version", k=5)
    assert [(h.id, h.goal) for h in hits] == [(first, "The build needs Rust 1.79 for let-else")]
    assert hits[0].score > 0
    assert [h.id for h in store.search("pytest", k=5)] == [other]
    assert [h.id for h in store.search("running", k=5)] == [other]  # porter stemming: running ~ run


def test_search_ranks_by_bm25_and_caps_k(store):
    ids = [store.add(f"note {i} about cats") for i in range(4)]
    best = store.add("cats cats cats and dogs")
    hits = store.search("cats dogs", k=3)
    assert len(hits) == 3 and hits[0].id == best
    assert set(h.id for h in hits[1:]) <= set(ids)


def test_duplicates_are_not_added_again(store):
    first = store.add("remember this")
    assert store.add("  remember this \n") == first
    assert [f.id for f in store.list(10)] == [first]


@pytest.mark.parametrize("query", ['"foo AND (', "*", 'NEAR(a b', "x OR", "-", "^col:", "", '"""', "AND OR NOT"])
def test_fts_hostile_queries_do_not_raise(store, query):
    store.add("foo bar and not baz")
    hits = store.search(query, k=5)
    assert isinstance(hits, list)
    if query == '"foo AND (':
        assert [h.goal for h in hits] == ["foo bar and not baz"]


def test_match_expression_quotes_every_word_but_stopwords():
    assert memory.match_expression('"foo AND (bar*') == '"foo" OR "bar"'
    assert memory.match_expression("what did I say about the deploy key?") == '"deploy" OR "key"'
    assert memory.match_expression("what is it") == '"what" OR "is" OR "it"'  # nothing else to search by
    assert memory.match_expression("* ( )") == ""


def test_store_is_a_wal_file_on_disk(store):
    store.add("on disk")
    assert store.path.is_file()
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == memory.SCHEMA_VERSION
        assert db.execute("SELECT goal, response FROM episodes").fetchall() == [("on disk", "")]


WRITER = """
import pathlib, sys, time
from gestalt_jax.agent.memory import MemoryStore
path, name, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), pathlib.Path(sys.argv[4])
while not go.exists():  # both start together: creating the file and every write overlap
    time.sleep(0.001)
store = MemoryStore(path, 10000, 0.98, 60)
for i in range(n):
    store.add(f"fact {name} number {i}", response=name)
store.close()
"""


def test_two_processes_write_one_file_concurrently(tmp_path):
    path, go = tmp_path / "shared" / "memory.sqlite", tmp_path / "go"
    n = 200
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(n), str(go)],
                                stderr=subprocess.PIPE) for name in ("alpha", "beta")]
    time.sleep(0.5)  # let both interpreters start and wait
    go.touch()
    for w in writers:
        assert w.wait(timeout=60) == 0, w.stderr.read().decode()
    store = memory.MemoryStore(path, 10000, 0.98, 60)
    try:
        goals = {e.goal for e in store.list(1000)}
        assert goals == {f"fact {name} number {i}" for name in ("alpha", "beta") for i in range(n)}
        assert len(store.search("beta", k=1000)) == n  # the index saw every row too
    finally:
        store.close()


def test_memory_tools_keep_facts_in_the_workdir(ctx):
    added = memory_tools.memory_add(ctx, {"text": "The CI uses Python 3.12"})
    fact_id = added.data["id"]
    assert (added.status, added.summary) == (OK, f"remembered #{fact_id}: The CI uses Python 3.12")
    assert added.items[0].text == "The CI uses Python 3.12"
    assert (ctx.workdir / ctx.agent.memory_file).is_file()
    assert not any(ctx.sandbox.root.iterdir())  # nothing written to the workspace
    fact = memory.store(ctx).get(fact_id)
    assert (fact.goal, fact.response, fact.success, fact.concept, fact.brain) == (
        "The CI uses Python 3.12", "The CI uses Python 3.12", True, None, None)
    assert fact.plan == [{"tool": "MEMORY_ADD", "args": {"text": "The CI uses Python 3.12"}}]
    assert memory_tools.memory_add(ctx, {"text": "The CI uses Python 3.12"}).data["id"] == fact_id

    found = memory_tools.memory_search(ctx, {"text": "which python?"})
    assert found.status == OK
    assert [i.text for i in found.items] == ["The CI uses Python 3.12"]
    assert found.data["ids"] == [fact_id]

    none = memory_tools.memory_search(ctx, {"text": "kubernetes"})
    assert (none.status, none.summary, none.items) == (OK, "nothing remembered about 'kubernetes'", [])


def test_memory_search_caps_hits(ctx):
    for i in range(ctx.agent.memory_max_hits + 3):
        memory_tools.memory_add(ctx, {"text": f"deploy step {i}"})
    assert len(memory_tools.memory_search(ctx, {"text": "deploy"}).items) == ctx.agent.memory_max_hits


def test_memory_tools_need_text(ctx):
    with pytest.raises(ToolError, match="MEMORY_ADD needs a text"):
        memory_tools.memory_add(ctx, {"text": "  "})
    with pytest.raises(ToolError, match="MEMORY_SEARCH needs a text"):
        memory_tools.memory_search(ctx, {})


def test_memory_tools_use_the_concept_of_a_trained_brain(ctx):
    vectors = {"the deploy key rotates on fridays": np.eye(8, dtype=np.float32)[0],
               "when does my ssh credential change": np.array([1, .2, 0, 0, 0, 0, 0, 0], np.float32),
               "run the tests with pytest": np.eye(8, dtype=np.float32)[1]}
    ctx.services["concept"] = lambda text: (vectors[text], "brain-7")
    fact_id = memory_tools.memory_add(ctx, {"text": "the deploy key rotates on fridays"}).data["id"]
    memory_tools.memory_add(ctx, {"text": "run the tests with pytest"})
    fact = memory.store(ctx).get(fact_id)
    assert fact.brain == "brain-7"
    np.testing.assert_array_equal(fact.concept, vectors["the deploy key rotates on fridays"])

    found = memory_tools.memory_search(ctx, {"text": "when does my ssh credential change"})  # no word in common
    assert found.data["ids"][0] == fact_id
    assert found.items[0].text == "the deploy key rotates on fridays"
    # The unrelated fact (cosine 0.2, below config.agent.memory_min_cosine) is not recalled.
    assert found.summary == "1 thing remembered about 'when does my ssh credential change'"


def test_memory_tools_say_which_file_they_cannot_use(ctx):
    ctx.workdir.mkdir()
    with sqlite3.connect(ctx.workdir / ctx.agent.memory_file) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ToolError, match=f"{ctx.workdir / ctx.agent.memory_file}.*schema version 99"):
        memory_tools.memory_search(ctx, {"text": "anything"})
