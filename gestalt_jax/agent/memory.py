"""The agent's episodic memory: what it set out to do, how, and how it went, kept in a SQLite file
in the run's workdir and found again by meaning (concept vectors) and by words (keywords).

One row per episode: the goal, the concept the brain made of it (float32, stored with the identity
of the brain that made it: two brains' vectors live in different spaces, so they are never
compared), the plan, what the tools did, the answer and whether it worked. A fact remembered with
MEMORY_ADD is an episode too, whose goal and answer are the fact.

Retrieval fuses two rankings by reciprocal rank fusion (RRF): concept cosine, which finds the same
request in other words, and FTS5 BM25 over goal, response and outcome, which finds exact names and
numbers that a concept blurs (and is all there is before a brain is trained). RRF adds 1/(k + rank)
per ranking, so the two scores never need calibrating against each other.

Consolidation happens at write time: an episode that repeats a kept one (same brain, concept cosine
>= merge_cosine, same goal words) updates that row and counts a use instead of adding a row, so
repeated work strengthens one memory rather than crowding out others. Beyond `capacity` rows the
least used, then least recently used, episode goes.

Several processes may use one file at once (an agent run and a TRAIN or EVAL it started, two runs
on one workdir): every connection sets WAL mode (readers never block the writer) and a busy
timeout (a writer waits for another instead of failing), and a write is one IMMEDIATE transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sqlite3
import threading
import time
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

if typing.TYPE_CHECKING:
    import ml_collections

    from gestalt_jax.agent.tools.base import Context

BUSY_TIMEOUT_MS = 30_000
MAX_TERMS = 32  # a keyword search ORs at most this many of the query's words
SCHEMA_VERSION = 1  # PRAGMA user_version of a memory file; a file with another is refused
COSINE_SLACK = 1e-6  # float32 rounding: a vector's cosine with itself may come out just below 1

ConceptFn = Callable[[str], tuple[np.ndarray, str]]
"""ctx.services["concept"]: text -> (its concept, float32 [D]; the identity string of the brain)."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS episodes(
    id INTEGER PRIMARY KEY, time REAL, goal TEXT NOT NULL, concept BLOB, brain TEXT, plan TEXT,
    outcome TEXT, response TEXT, success INTEGER, uses INTEGER DEFAULT 0, last_used REAL);
CREATE INDEX IF NOT EXISTS episodes_by_goal ON episodes(goal);
CREATE INDEX IF NOT EXISTS episodes_by_brain ON episodes(brain);
CREATE VIRTUAL TABLE IF NOT EXISTS episodes_fts USING fts5(
    goal, response, outcome, content='episodes', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS episodes_ai AFTER INSERT ON episodes BEGIN
    INSERT INTO episodes_fts(rowid, goal, response, outcome)
        VALUES (new.id, new.goal, new.response, new.outcome);
END;
CREATE TRIGGER IF NOT EXISTS episodes_ad AFTER DELETE ON episodes BEGIN
    INSERT INTO episodes_fts(episodes_fts, rowid, goal, response, outcome)
        VALUES ('delete', old.id, old.goal, old.response, old.outcome);
END;
CREATE TRIGGER IF NOT EXISTS episodes_au AFTER UPDATE OF goal, response, outcome ON episodes BEGIN
    INSERT INTO episodes_fts(episodes_fts, rowid, goal, response, outcome)
        VALUES ('delete', old.id, old.goal, old.response, old.outcome);
    INSERT INTO episodes_fts(rowid, goal, response, outcome)
        VALUES (new.id, new.goal, new.response, new.outcome);
END;
PRAGMA user_version = {SCHEMA_VERSION};
"""
_COLUMNS = "id, time, goal, concept, brain, plan, outcome, response, success, uses, last_used"


class MemoryFileError(Exception):
    """The memory file cannot be used (not SQLite, or another schema); the message names it."""


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: `concept` is an array; compare ids
class Episode:
    """One remembered episode: a row of the memory file."""
    id: int
    time: float               # when it was added or last merged into (seconds since the epoch)
    goal: str
    concept: np.ndarray | None  # float32 [D], read-only; None when no brain was trained
    brain: str | None         # identity of the brain that made `concept`
    plan: list[dict[str, Any]]  # [{"tool": ..., "args": {...}}, ...]
    outcome: str              # what the tools did, short
    response: str             # the answer given
    success: bool
    uses: int                 # merges into it and searches that returned it
    last_used: float | None


class Hit(typing.NamedTuple):
    """One search result: the episode and why it ranks where it does."""
    id: int
    goal: str
    response: str
    score: float  # reciprocal rank fusion: sum over rankings of 1 / (rrf_k + rank), higher is better
    episode: Episode


@dataclasses.dataclass
class _Vectors:
    """One brain's concepts of one width, row-normalised, and the file state they were read at."""
    signature: tuple
    ids: np.ndarray   # int64 [N]
    unit: np.ndarray  # float32 [N, D]


# Words that would make a keyword search match nearly every episode ("what did I say about the key").
STOPWORDS = frozenset("""a an and are as at be but by can could did do does for from had has have how i
if in into is it its me my of on or our say said so that the their them then there these they this to about
us was we were what when where which who why will with would you your""".split())


def match_expression(query: str) -> str:
    """`query` as an FTS5 MATCH expression that cannot be a syntax error: its words, each quoted
    as a string, joined by OR ("" when it has none); STOPWORDS are left out unless the query has
    nothing else. Operators and punctuation in user text (`AND`, `(`, `*`, `"`) become plain words
    or nothing."""
    words = list(dict.fromkeys(w.lower() for w in re.findall(r"\w+", query)))
    words = [w for w in words if w not in STOPWORDS] or words
    return " OR ".join(f'"{w}"' for w in words[:MAX_TERMS])


def goal_words(goal: str) -> frozenset[str]:
    """What two goals must share to be one episode: their lowercased words, as a set ("Run the
    tests!" and "run the tests" agree; "remember X" and "remember Y" do not, however close their
    concepts)."""
    return frozenset(re.findall(r"\w+", goal.lower()))


def memory_path(workdir: str | Path, agent_cfg: ml_collections.ConfigDict) -> Path:
    """The memory file of a run: workdir / config.agent.memory_file."""
    return Path(workdir) / agent_cfg.memory_file


def _vector(concept: Any) -> np.ndarray:
    vector = np.asarray(concept, dtype=np.float32)
    if vector.ndim != 1 or not vector.size or not np.all(np.isfinite(vector)):
        raise ValueError(f"a concept must be a finite non-empty 1-D vector, got shape {vector.shape}")
    return vector


def _unit(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero: its cosine with anything is 0)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, np.finfo(np.float32).tiny)


def _plan_json(plan: Sequence[Mapping[str, Any]]) -> str:
    steps = []
    for step in plan:
        if not isinstance(step, Mapping) or not isinstance(step.get("tool"), str):
            raise ValueError(f'a plan step must be {{"tool": name, "args": {{...}}}}, got {step!r}')
        steps.append({"tool": step["tool"], "args": dict(step.get("args") or {})})
    return json.dumps(steps, ensure_ascii=False)


def _episode(row: tuple) -> Episode:
    id_, t, goal, concept, brain, plan, outcome, response, success, uses, last_used = row
    vector = None if concept is None else np.frombuffer(concept, dtype="<f4")
    return Episode(id_, t, goal, vector, brain, json.loads(plan or "[]"), outcome or "", response or "",
                   bool(success), uses or 0, last_used)


class MemoryStore:
    """Episodes in the SQLite file `path` (created with its directories). Usable from several
    threads (one connection behind a lock) and several processes (WAL, busy timeout).

    capacity: episodes kept. merge_cosine: concept cosine from which a new episode with the same
    brain and goal words updates an old one. rrf_k: the k of reciprocal rank fusion (larger: the
    top ranks count less against the rest). min_cosine: the concept ranking keeps only episodes at
    least this close (the nearest of unrelated episodes is still unrelated)."""

    def __init__(self, path: str | Path, capacity: int, merge_cosine: float, rrf_k: float, min_cosine: float = -1.0):
        if capacity < 1 or not 0 < merge_cosine <= 1 or rrf_k < 0:
            raise ValueError(f"memory needs capacity >= 1, 0 < merge_cosine <= 1, rrf_k >= 0; got "
                             f"{capacity}, {merge_cosine}, {rrf_k}")
        self.path = Path(path)
        self.capacity, self.merge_cosine, self.rrf_k = capacity, merge_cosine, rrf_k
        self.min_cosine = min_cosine
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._vectors: dict[tuple[str, int], _Vectors] = {}
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._open()
        except sqlite3.OperationalError:  # locked past the timeout, disk full, ...: not the file's fault
            self._db.close()
            raise
        except (sqlite3.DatabaseError, MemoryFileError) as e:
            self._db.close()
            raise MemoryFileError(f"{self.path} is not a gestalt memory file ({e}); move it away or point "
                                  f"config agent.memory_file at another file to start an empty memory") from None

    @classmethod
    def from_config(cls, workdir: str | Path, agent_cfg: ml_collections.ConfigDict) -> MemoryStore:
        """The store of a run, as config.agent says (memory_file in `workdir`, capacity, ...)."""
        return cls(memory_path(workdir, agent_cfg), agent_cfg.memory_capacity, agent_cfg.memory_merge_cosine,
                   agent_cfg.memory_rrf_k, agent_cfg.memory_min_cosine)

    def _open(self) -> None:
        """Checks the schema version before anything changes the file, then sets WAL mode and, in
        a new file, creates the schema (one transaction: a second process opening the same new
        file waits, then finds it complete)."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        empty = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if version != SCHEMA_VERSION and not (version == 0 and empty):
            raise MemoryFileError(f"schema version {version}, this gestalt reads version {SCHEMA_VERSION}")
        self._wal()
        if version == 0:
            with self._lock:
                try:
                    self._db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
                except sqlite3.Error:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise

    def _wal(self) -> None:
        """PRAGMA journal_mode=WAL, retried: unlike other statements it fails at once, without
        waiting on the busy timeout, while another process is creating or switching the same file."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _write(self):
        """One IMMEDIATE transaction: it takes the write lock at once (waiting up to the busy
        timeout), so two writers never deadlock upgrading read locks."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self):
        """One read transaction: the rankings and the rows they name come from one snapshot."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    def _matrix(self, brain: str, dim: int) -> _Vectors:
        """The concepts of `brain` that are `dim` wide, row-normalised, cached until the file
        changes. PRAGMA data_version changes when another connection (process) commits; the row
        count and largest id are checked too, for this connection's own writes, which data_version
        does not count: an insert always raises the largest id, and forget clears the cache (a
        forget and an insert can restore both count and largest id). Marking uses moves no concept."""
        signature = (self._db.execute("PRAGMA data_version").fetchone()[0],
                     *self._db.execute("SELECT count(*), max(id) FROM episodes").fetchone())
        cached = self._vectors.get((brain, dim))
        if cached is None or cached.signature != signature:
            rows = self._db.execute("SELECT id, concept FROM episodes WHERE brain = ? AND length(concept) = ? "
                                    "ORDER BY id", (brain, 4 * dim)).fetchall()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
            cached = self._vectors[(brain, dim)] = _Vectors(signature, ids, _unit(matrix.astype(np.float32)))
        return cached

    def _nearest(self, vector: np.ndarray, brain: str, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosines) of `brain`'s episodes, most similar first: the best `k`, or all (None)."""
        vectors = self._matrix(brain, vector.size)
        cosines = vectors.unit @ _unit(vector)
        order = np.arange(len(cosines))
        if k is not None and k < len(cosines):
            order = np.argpartition(-cosines, k - 1)[:k]
        order = order[np.argsort(-cosines[order], kind="stable")]
        return vectors.ids[order], cosines[order]

    def _fetch(self, ids: Sequence[int]) -> dict[int, Episode]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM episodes WHERE id IN ({','.join('?' * len(ids))})",
                                [int(i) for i in ids]).fetchall()
        return {row[0]: _episode(row) for row in rows}

    def _same(self, goal: str, vector: np.ndarray | None, brain: str | None) -> int | None:
        """The kept episode a new one repeats: with a concept, the most similar of the same brain
        at cosine >= merge_cosine with the same goal words; without, one with the very same goal
        text and no concept either."""
        if vector is None:
            row = self._db.execute("SELECT id FROM episodes WHERE goal = ? AND concept IS NULL "
                                   "ORDER BY id DESC LIMIT 1", (goal,)).fetchone()
            return None if row is None else row[0]
        ids, cosines = self._nearest(vector, brain, None)
        close = ids[cosines >= self.merge_cosine - COSINE_SLACK]
        if not len(close):
            return None
        episodes, words = self._fetch(close), goal_words(goal)
        return next((int(i) for i in close if goal_words(episodes[int(i)].goal) == words), None)

    def add(self, goal: str, *, concept: np.ndarray | None = None, brain: str | None = None,
            plan: Sequence[Mapping[str, Any]] = (), outcome: str = "", response: str = "",
            success: bool = True) -> int:
        """Remembers an episode and returns its id: a new row, or the kept episode it repeats (see
        _same), updated to this time, plan, outcome, response and success, with one use more.
        Then, beyond `capacity` rows, the least used, then least recently used, episodes go
        (never the one just written). `concept` needs the `brain` that made it."""
        goal = goal.strip()
        if not goal:
            raise ValueError("an episode needs a goal (an empty fact cannot be remembered)")
        vector = None if concept is None else _vector(concept)
        if vector is not None and not brain:
            raise ValueError("a concept needs the identity of the brain that made it (brain=...)")
        now, plan_json = time.time(), _plan_json(plan)
        with self._write():
            same = self._same(goal, vector, brain)
            if same is not None:
                self._db.execute("UPDATE episodes SET time = ?, plan = ?, outcome = ?, response = ?, success = ?, "
                                 "uses = uses + 1, last_used = ? WHERE id = ?",
                                 (now, plan_json, outcome, response, int(success), now, same))
                return same
            new_id = self._db.execute(
                "INSERT INTO episodes(time, goal, concept, brain, plan, outcome, response, success, uses) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (now, goal, None if vector is None else vector.astype("<f4").tobytes(), brain, plan_json,
                 outcome, response, int(success))).lastrowid
            excess = self._db.execute("SELECT count(*) FROM episodes").fetchone()[0] - self.capacity
            if excess > 0:
                self._db.execute("DELETE FROM episodes WHERE id IN (SELECT id FROM episodes WHERE id != ? "
                                 "ORDER BY uses, COALESCE(last_used, time), id LIMIT ?)", (new_id, excess))
            return new_id

    def search(self, text: str, *, concept: np.ndarray | None = None, brain: str | None = None,
               k: int) -> list[Hit]:
        """The `k` episodes that fit `text` best: the concept ranking (cosine over the episodes of
        `brain`, only when both `concept` and `brain` are given; those below min_cosine left out) fused with the keyword ranking
        (BM25 over goal, response and outcome) by reciprocal rank fusion. Each hit counts as a
        use of its episode. [] when neither ranking finds anything."""
        vector = None if concept is None or brain is None else _vector(concept)
        expression = match_expression(text)
        if k < 1:
            return []
        with self._read():
            rankings = []
            if vector is not None:
                ids, cosines = self._nearest(vector, brain, k)
                rankings.append([int(i) for i, cos in zip(ids, cosines) if cos >= self.min_cosine])
            if expression:
                rankings.append([r[0] for r in self._db.execute(
                    "SELECT rowid FROM episodes_fts WHERE episodes_fts MATCH ? ORDER BY bm25(episodes_fts) "
                    "LIMIT ?", (expression, k))])
            scores: dict[int, float] = {}
            best_rank: dict[int, int] = {}
            for ranking in rankings:
                for rank, id_ in enumerate(ranking, 1):
                    scores[id_] = scores.get(id_, 0.0) + 1 / (self.rrf_k + rank)
                    best_rank[id_] = min(best_rank.get(id_, rank), rank)
            top = sorted(scores, key=lambda i: (-scores[i], best_rank[i], -i))[:k]
            episodes = self._fetch(top) if top else {}
        if not top:
            return []
        now = time.time()
        with self._write():
            self._db.execute(f"UPDATE episodes SET uses = uses + 1, last_used = ? WHERE id IN "
                             f"({','.join('?' * len(top))})", [now, *top])
        hits = []
        for i in top:
            episode = dataclasses.replace(episodes[i], uses=episodes[i].uses + 1, last_used=now)
            hits.append(Hit(i, episode.goal, episode.response, scores[i], episode))
        return hits

    def get(self, episode_id: int) -> Episode | None:
        """The episode `episode_id`; None when there is none."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM episodes WHERE id = ?", (episode_id,)).fetchone()
        return None if row is None else _episode(row)

    def list(self, limit: int = 20, offset: int = 0) -> list[Episode]:
        """Episodes, most recent first (an episode merged into counts from its last merge)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM episodes ORDER BY time DESC, id DESC LIMIT ? OFFSET ?",
                                    (limit, offset)).fetchall()
        return [_episode(row) for row in rows]

    def forget(self, episode_id: int) -> bool:
        """Removes the episode `episode_id` (and its keyword entry); False when there was none."""
        with self._write():
            gone = self._db.execute("DELETE FROM episodes WHERE id = ?", (episode_id,)).rowcount > 0
            if gone:
                self._vectors.clear()
            return gone

    def count(self) -> int:
        """Episodes kept."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM episodes").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def store(ctx: Context) -> MemoryStore:
    """The run's store (ctx.workdir / config.agent.memory_file), opened once per Context."""
    if "memory" not in ctx.services:
        ctx.services["memory"] = MemoryStore.from_config(ctx.workdir, ctx.agent)
    return ctx.services["memory"]
