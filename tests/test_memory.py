"""Episodic memory (agent/memory.py) on real SQLite files, and `gestalt memory` (agent/memory_cli.py)."""

import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent import memory, memory_cli

D = 16  # concept width in these tests
BRAIN = "brain-a"


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(D).astype(np.float32)
    return v / np.linalg.norm(v)


def basis(i: int) -> np.ndarray:
    return np.eye(D, dtype=np.float32)[i]


@pytest.fixture
def config():
    return config_lib.base()


@pytest.fixture
def open_store(tmp_path, config):
    """MemoryStore(tmp_path/..., capacity, ...) as config.agent says, closed after the test."""
    stores = []

    def make(capacity=None, path=None):
        a = config.agent
        stores.append(memory.MemoryStore(path or tmp_path / "work" / a.memory_file, capacity or a.memory_capacity,
                                         a.memory_merge_cosine, a.memory_rrf_k))
        return stores[-1]
    yield make
    for s in stores:
        s.close()


@pytest.fixture
def store(open_store):
    return open_store()


def test_concept_search_finds_the_nearest_episode(store):
    ids = [store.add(f"goal number {i}", concept=unit(i), brain=BRAIN, response=f"done {i}") for i in range(6)]
    query = unit(3) + 0.3 * unit(100)  # near episode 3, sharing no word with any goal
    hits = store.search("zzz", concept=query, brain=BRAIN, k=3)
    assert [h.id for h in hits][0] == ids[3] and len(hits) == 3
    assert (hits[0].goal, hits[0].response) == ("goal number 3", "done 3")
    np.testing.assert_array_equal(hits[0].episode.concept, unit(3))
    later = store.add("one more goal", concept=unit(200), brain=BRAIN)  # the cached matrix sees own writes
    assert store.search("zzz", concept=unit(200), brain=BRAIN, k=1)[0].id == later
    store.forget(later)  # the next row takes its id: same row count, same largest id, no concept
    assert store.add("another goal") == later
    assert later not in [h.id for h in store.search("zzz", concept=unit(200), brain=BRAIN, k=3)]
    assert store.search("zzz", concept=query, k=3) == []  # a concept without its brain is not compared


def test_keyword_search_finds_a_word_match(store):
    deploy = store.add("rotate the deploy key", outcome="key rotated", response="rotated on friday")
    store.add("run the tests", response="12 passed")
    assert [h.id for h in store.search("which key rotation?", k=5)] == [deploy]
    assert [h.id for h in store.search("deploying", k=5)] == [deploy]  # porter stemming, goal column
    assert [h.id for h in store.search("friday", k=5)] == [deploy]  # response column
    assert store.search("kubernetes", k=5) == []


def test_rrf_puts_an_episode_found_by_both_rankings_first(store, config):
    by_concept = store.add("alpha beta", concept=basis(0), brain=BRAIN)                  # concept rank 1
    by_words = store.add("deploy deploy deploy")                                            # keyword rank 1
    both = store.add("deploy notes from the long release checklist", concept=0.8 * basis(0) + 0.6 * basis(1),
                     brain=BRAIN)                                                         # rank 2 in both
    hits = store.search("deploy", concept=basis(0), brain=BRAIN, k=5)
    k = config.agent.memory_rrf_k
    assert [h.id for h in hits][0] == both
    assert hits[0].score == pytest.approx(2 / (k + 2))
    assert {h.id: h.score for h in hits[1:]} == pytest.approx({by_concept: 1 / (k + 1), by_words: 1 / (k + 1)})


def test_vectors_of_another_brain_are_never_compared(store):
    old = store.add("what the old brain saw", concept=unit(1), brain="brain-old")
    store.add("a fact without a concept")
    assert store.search("zzz", concept=unit(1), brain=BRAIN, k=5) == []
    assert [h.id for h in store.search("zzz", concept=unit(1), brain="brain-old", k=5)] == [old]


def test_near_duplicates_merge_but_other_goals_do_not(store):
    first = store.add("run the tests", concept=unit(1), brain=BRAIN, response="3 failed", success=False)
    again = store.add("Run the tests!", concept=unit(1) + 1e-3 * unit(2), brain=BRAIN,
                      plan=[{"tool": "RUN_TESTS", "args": {}}], outcome="12 passed", response="all green")
    assert again == first and store.count() == 1
    episode = store.get(first)
    assert (episode.goal, episode.response, episode.success, episode.uses) == ("run the tests", "all green", True, 1)
    assert episode.plan == [{"tool": "RUN_TESTS", "args": {}}] and episode.last_used is not None
    # close concepts, other words: two facts; same words, other brain or a far concept: new episodes
    x = store.add("remember that X is 1", concept=unit(5), brain=BRAIN)
    assert store.add("remember that Y is 1", concept=unit(5) + 1e-3 * unit(6), brain=BRAIN) != x
    assert store.add("run the tests", concept=unit(1), brain="brain-b") != first
    assert store.add("run the tests", concept=unit(9), brain=BRAIN) != first
    # without concepts, only the very same goal text is the same episode
    fact = store.add("the CI uses Python 3.12")
    assert store.add("  the CI uses Python 3.12\n") == fact and store.get(fact).uses == 1
    assert store.add("The CI uses Python 3.12") != fact
    assert store.count() == 7


def test_capacity_evicts_the_least_used_then_the_oldest(open_store):
    store = open_store(capacity=3)
    a = store.add("alpha episode")
    assert [h.id for h in store.search("alpha", k=1)] == [a]  # one use, before the others exist
    b, c = store.add("bravo episode"), store.add("charlie episode")
    d = store.add("delta episode")
    assert {e.id for e in store.list()} == {a, c, d}  # b: unused and older than c; a is older but used
    e = store.add("echo episode")
    assert {e.id for e in store.list()} == {a, d, e}
    store.search("delta", k=1)
    store.search("echo", k=1)
    f = store.add("foxtrot episode")  # a: used longest ago; never the episode just written, though unused
    assert {e.id for e in store.list()} == {d, e, f} and store.count() == 3


def test_forget(store):
    gone = store.add("forget me soon", concept=unit(1), brain=BRAIN)
    kept = store.add("keep me around", concept=unit(2), brain=BRAIN)
    assert store.forget(gone) is True
    assert store.forget(gone) is False
    assert store.get(gone) is None and store.count() == 1
    assert [h.id for h in store.search("me", concept=unit(1), brain=BRAIN, k=5)] == [kept]
    with sqlite3.connect(store.path) as db:  # gone from the keyword index too, not only the table
        assert db.execute("""SELECT rowid FROM episodes_fts WHERE episodes_fts MATCH '"forget"'""").fetchall() == []


def test_list_is_newest_first_and_pages(store):
    ids = [store.add(f"episode {i}") for i in range(5)]
    assert [e.id for e in store.list(2)] == ids[:-3:-1]
    assert [e.id for e in store.list(2, offset=2)] == ids[2:0:-1]
    store.add("episode 1")  # merged into: it is the most recent now
    assert store.list(1)[0].id == ids[1]


def test_files_of_another_schema_are_refused_naming_the_file(tmp_path, open_store):
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 7")
    facts = tmp_path / "facts.sqlite"  # schema version 0 with tables of its own (the old fact store)
    with sqlite3.connect(facts) as db:
        db.execute("CREATE TABLE facts(id INTEGER PRIMARY KEY, text TEXT)")
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all\n" * 10)
    for path, why in ((newer, "schema version 7"), (facts, "schema version 0"), (text, "not a database")):
        with pytest.raises(memory.MemoryFileError, match=f"{path}.*{why}"):
            open_store(path=path)
    with sqlite3.connect(facts) as db:  # refused before anything changed it
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


WRITER = """
import sys, time, pathlib
import numpy as np
from gestalt_jax.agent.memory import MemoryStore
path, go = sys.argv[1], pathlib.Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
store = MemoryStore(path, 10000, 0.98, 60)
for i in range(50):
    v = np.random.default_rng(i).standard_normal(16).astype(np.float32)
    store.add(f"task {i} of the writer", concept=v / np.linalg.norm(v), brain="brain-a", response=f"answer {i}")
store.close()
"""


def test_one_writer_process_and_a_searching_reader(tmp_path, store):
    go = tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store.path), str(go)], stderr=subprocess.PIPE)
    time.sleep(0.3)  # let the interpreter start and wait
    go.touch()
    searches = 0
    while writer.poll() is None or not searches:
        store.search("task writer", concept=unit(searches % 50), brain=BRAIN, k=3)
        searches += 1
    assert writer.wait(timeout=60) == 0, writer.stderr.read().decode()
    assert store.count() == 50 and searches > 1
    assert {e.goal for e in store.list(100)} == {f"task {i} of the writer" for i in range(50)}
    assert store.search("zzz", concept=unit(49), brain=BRAIN, k=1)[0].goal == "task 49 of the writer"


REPLACE = """
import sys
import numpy as np
from gestalt_jax.agent.memory import MemoryStore
store = MemoryStore(sys.argv[1], 10000, 0.98, 60)
assert store.forget(2)
assert store.add("the new one", concept=np.eye(16, dtype=np.float32)[2], brain="brain-a") == 2
store.close()
"""


def test_the_concept_cache_sees_another_process_write(store):
    store.add("first", concept=basis(0), brain=BRAIN)
    store.add("second", concept=basis(1), brain=BRAIN)
    assert store.search("zzz", concept=basis(2), brain=BRAIN, k=1)[0].goal == "first"  # a tie: cached now
    # another process replaces row 2: same row count, same largest id, only PRAGMA data_version moves
    subprocess.run([sys.executable, "-c", REPLACE, str(store.path)], check=True)
    assert store.search("zzz", concept=basis(2), brain=BRAIN, k=1)[0].goal == "the new one"


# gestalt memory list | search | forget


@pytest.fixture
def workdir(tmp_path):
    return tmp_path / "run"


def remember(config, workdir, *goals, **kwargs) -> list[int]:
    s = memory.MemoryStore.from_config(workdir, config.agent)
    try:
        return [s.add(g, **kwargs) for g in goals]
    finally:
        s.close()


def test_cli_without_a_memory_file_creates_none(config, workdir, capsys):
    for args in (["list"], ["search", "deploy"], ["forget", "1"]):
        assert memory_cli.run(config, workdir, args) == 1
        assert capsys.readouterr().out == f"no memory yet in {workdir / config.agent.memory_file}\n"
    assert not workdir.exists()


def test_cli_list(config, workdir, capsys):
    old, new = remember(config, workdir, "rotate the deploy key", "run the tests")
    assert memory_cli.run(config, workdir, ["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [f"#{new}", f"#{old}"]
    assert lines[0].endswith("0 uses  run the tests")
    assert memory_cli.run(config, workdir, ["list", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"#{new}  ")
    remember(config, workdir, "a failed step", response="it broke", success=False)
    memory_cli.run(config, workdir, ["list", "1"])
    assert capsys.readouterr().out.rstrip().endswith("a failed step -> it broke  (failed)")


def test_cli_search(config, workdir, capsys):
    concept = {"rotate the deploy key": basis(0), "when does my ssh credential change": basis(0) + 0.1 * basis(1),
               "run the tests": basis(2)}
    concept_fn = lambda text: (concept[text], BRAIN)  # noqa: E731
    deploy, _ = remember(config, workdir, "rotate the deploy key", "run the tests", response="ok")
    assert memory_cli.run(config, workdir, ["search", "deploy key"]) == 0
    line, = capsys.readouterr().out.splitlines()
    assert line.startswith(f"#{deploy}  0.016  rotate the deploy key -> ok")
    for goal in ("rotate the deploy key", "run the tests"):  # the same episodes, now with concepts
        remember(config, workdir, goal, concept=concept[goal], brain=BRAIN)
    assert memory_cli.run(config, workdir, ["search", "when does my ssh credential change"], concept_fn) == 0
    assert capsys.readouterr().out.split()[0] == f"#{deploy + 2}"  # by meaning: no word in common
    assert memory_cli.run(config, workdir, ["search", "kubernetes"]) == 1
    assert capsys.readouterr().out.startswith("nothing remembered about 'kubernetes'")


def test_cli_forget(config, workdir, capsys):
    episode, = remember(config, workdir, "forget me")
    assert memory_cli.run(config, workdir, ["forget", f"#{episode}"]) == 0
    assert capsys.readouterr().out == f"forgot #{episode}\n"
    assert memory_cli.run(config, workdir, ["forget", str(episode)]) == 1
    assert capsys.readouterr().out.startswith(f"no episode #{episode} in ")
    assert memory_cli.run(config, workdir, ["list"]) == 1
    assert capsys.readouterr().out.startswith("no episodes in ")


@pytest.mark.parametrize("args, expected", [
    ([], "expected a command"), (["show"], "expected list, search or forget, got 'show'"),
    (["list", "ten"], "list: expected at most one number"), (["list", "0"], "list: expected"),
    (["list", "1", "2"], "list: expected"), (["search"], "search: expected the text"),
    (["search", "  "], "search: expected the text"), (["forget"], "forget: expected one episode id"),
    (["forget", "x"], "forget: expected one episode id"), (["forget", "1", "2"], "forget: expected")])
def test_cli_usage_errors(config, workdir, capsys, args, expected):
    assert memory_cli.run(config, workdir, args) == 2
    out, err = capsys.readouterr()
    assert out == "" and expected in err and err.count("\n") == 1 and "usage: gestalt memory" in err


def test_cli_refuses_a_file_of_another_schema(config, workdir, capsys):
    workdir.mkdir()
    path = workdir / config.agent.memory_file
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 3")
    assert memory_cli.run(config, workdir, ["list"]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "schema version 3" in err and err.count("\n") == 1
