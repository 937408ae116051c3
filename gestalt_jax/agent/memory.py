"""The agent's long-term memory: facts in a SQLite file in the run's workdir, found by keywords.

One table of facts and an FTS5 index over their text, kept in step by triggers, searched by
keyword and ranked by BM25. This is the store's interface: the next phase extends it into episodic
memory searched by concept vectors, beside the keyword index.

Several processes may use one file at once (an agent run and a TRAIN or EVAL it started, two runs
on one workdir): every connection sets WAL mode (readers never block the writer) and a busy
timeout (a writer waits for another instead of failing), and a write is one IMMEDIATE transaction.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
import typing
from pathlib import Path

if typing.TYPE_CHECKING:
    from gestalt_jax.agent.tools.base import Context

BUSY_TIMEOUT_MS = 30_000
MAX_TERMS = 32  # a search ORs at most this many of the query's words

_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts(id INTEGER PRIMARY KEY, time REAL, text TEXT NOT NULL, source TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS facts_by_text ON facts(text);
CREATE VIRTUAL TABLE IF NOT EXISTS facts_fts USING fts5(
    text, content='facts', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS facts_ai AFTER INSERT ON facts BEGIN
    INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS facts_ad AFTER DELETE ON facts BEGIN
    INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER IF NOT EXISTS facts_au AFTER UPDATE OF text ON facts BEGIN
    INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
END;
"""


class Fact(typing.NamedTuple):
    id: int
    time: float
    text: str
    source: str


class Hit(typing.NamedTuple):
    id: int
    text: str
    score: float  # BM25 relevance, higher is better (FTS5's bm25() negated)


def match_expression(query: str) -> str:
    """`query` as an FTS5 MATCH expression that cannot be a syntax error: its words, each quoted
    as a string, joined by OR ("" when it has none). Operators and punctuation in user text
    (`AND`, `(`, `*`, `"`) become plain words or nothing."""
    words = list(dict.fromkeys(w.lower() for w in re.findall(r"\w+", query)))[:MAX_TERMS]
    return " OR ".join(f'"{w}"' for w in words)


class MemoryStore:
    """Facts in the SQLite file `path` (created with its directories). Usable from several threads
    (one connection behind a lock) and several processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._wal()
        with self._lock:  # one transaction: a second process opening a new file waits, then sees it all
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

    def add(self, text: str, source: str = "") -> int:
        """The id of the fact `text` (stripped): a new one, or the existing one when the very same
        text is already remembered."""
        text = text.strip()
        if not text:
            raise ValueError("an empty fact cannot be remembered")
        with self._write():
            self._db.execute("INSERT INTO facts(time, text, source) VALUES (?, ?, ?) ON CONFLICT(text) DO NOTHING",
                             (time.time(), text, source))
            return self._db.execute("SELECT id FROM facts WHERE text = ?", (text,)).fetchone()[0]

    def search(self, query: str, k: int) -> list[Hit]:
        """The `k` facts that match any word of `query` best by BM25; [] for a query without words."""
        expression = match_expression(query)
        if not expression or k < 1:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT facts.id, facts.text, bm25(facts_fts) AS rank FROM facts_fts "
                "JOIN facts ON facts.id = facts_fts.rowid WHERE facts_fts MATCH ? ORDER BY rank LIMIT ?",
                (expression, k)).fetchall()
        return [Hit(i, text, -rank) for i, text, rank in rows]

    def list(self, limit: int) -> list[Fact]:
        """The `limit` most recently added facts, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, time, text, source FROM facts ORDER BY id DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [Fact(*row) for row in rows]

    def forget(self, fact_id: int) -> bool:
        """Removes the fact `fact_id`; False when there was none."""
        with self._write():
            return self._db.execute("DELETE FROM facts WHERE id = ?", (fact_id,)).rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()


def store(ctx: Context) -> MemoryStore:
    """The run's store (ctx.workdir / config.agent.memory_file), opened once per Context."""
    if "memory" not in ctx.services:
        ctx.services["memory"] = MemoryStore(ctx.workdir / ctx.agent.memory_file)
    return ctx.services["memory"]
