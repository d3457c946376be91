"""SQLiteStore: the durable default for workflow runs (standard-library ``sqlite3``).

Design:

* **One transaction per ``put``.** The connection is in autocommit mode and every write is a
  single statement (or a short ``BEGIN IMMEDIATE … COMMIT``), so when ``put`` returns the entry
  is committed. A run calls ``put`` once per completed task, before that task's dependants are
  released.
* **WAL journal.** Readers never block the writer and the writer never blocks readers; several
  processes may read while one writes. Writers are serialized by SQLite's lock: a writer waits
  up to ``timeout`` seconds (the busy timeout), then :class:`StateLockedError`.
* **Durability** is ``PRAGMA synchronous``: ``"normal"`` (default) with WAL does not fsync on
  each commit, only at checkpoints. A committed task survives the *process* crashing (SIGKILL,
  an exception, Ctrl-C) — the WAL is in the operating system's hands — but the last commits
  before an *operating-system* crash or power loss may be lost (never corrupted: the database
  rolls back to an earlier commit). ``"full"`` fsyncs the WAL on every commit and survives
  power loss, at the price of one fsync per task (milliseconds on many disks).
* **Expiry**: entries with a TTL are in a partial index (``flowweaver_expiry``; rows without a
  TTL, such as a run's results, are not), and every :data:`PURGE_EVERY` writes ``put``
  deletes the expired ones through it; :meth:`SQLiteStore.purge` does it on demand.
* **Schema version** lives in the ``flowweaver_meta`` table. A store written by a newer schema
  raises :class:`StateVersionError` on open and is not touched (the version is read before the
  file is switched to WAL, which would rewrite its header). Tables are prefixed
  ``flowweaver_``, so the store may share a database file with other tables. An older schema
  is migrated in one transaction when the file is opened for writing (1 → 2: every run
  committed before run history existed gets a history record with status ``unknown``, so
  ``runs()`` lists it); a migrated file is refused by releases older than the migration.
* **Errors**: a file that is not a database, or is truncated or damaged, raises
  :class:`StateCorruptError`; nothing is ever rewritten to "repair" it. A file that cannot be
  opened or written raises :class:`StateAccessError`.
* **Permissions**: a new database file is created 0o600 (SQLite gives its ``-wal``/``-shm``
  files the same mode); a missing folder is created 0o700.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any, NoReturn

from ._checks import check_number
from ._claim import FileClaims
from ._errors import (
    ConfigurationError,
    SerializationError,
    StateAccessError,
    StateCorruptError,
    StateLockedError,
    StateVersionError,
)
from ._history import (
    DEFAULT_KEEP_RUNS,
    HISTORY_NAMESPACE,
    RunKind,
    check_keep_runs,
    legacy_record,
    runs_namespace,
)
from ._history_read import HasRunHistory
from ._public import publish
from ._store import (
    PURGE_EVERY,
    Closing,
    StateEntry,
    check_clock,
    check_serializer,
    make_private_dirs,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._claim import Claim, RunLabel
    from ._serialize import Serializer

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

#: The schema this module writes; it reads every version up to this one.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flowweaver_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flowweaver_entries (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    fingerprint TEXT NOT NULL,
    metadata TEXT,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS flowweaver_expiry
    ON flowweaver_entries (expires_at) WHERE expires_at IS NOT NULL;
"""
# Added to schema version 1 files when they are opened (older releases keep it up to date
# without knowing it: SQLite maintains every index), so it needs no version of its own.
_PARTS = ("flowweaver_entries", "flowweaver_expiry")
_PURGE = "DELETE FROM flowweaver_entries WHERE expires_at IS NOT NULL AND expires_at <= ?"

_SYNCHRONOUS = ("normal", "full", "extra")
_COLUMNS = "data, created_at, expires_at, fingerprint, metadata"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
# What a call on the connection may raise that _raise() turns into a typed error.
_ERRORS = (sqlite3.Error, UnicodeEncodeError)

# SQLite primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _CORRUPT, _NOTADB = 5, 6, 11, 26


class SQLiteStore(Closing, HasRunHistory):
    """A :class:`~flowweaver.StateStore` in one SQLite database file (WAL mode).

    Examples:
        >>> with SQLiteStore("state/etl.db") as store:  # doctest: +SKIP
        ...     workflow.execute(store=store, run_id="2024-06-01")

    Args:
        path: The database file; created (0o600, folder 0o700) if missing.
        serializer: How values become text (default :class:`~flowweaver.JSONSerializer`).
        synchronous: ``"normal"`` (default: survives a process crash; an OS crash or power
            loss may lose the last commits), ``"full"`` (survives power loss; one fsync per
            commit) or ``"extra"``. See the module docstring.
        timeout: Seconds a write waits for another writer's lock before
            :class:`StateLockedError`.
        clock: Wall-clock seconds for TTLs (default ``time.time``).
        keep_runs: Run history kept per workflow or pipeline name (default 1000; None: no
            limit; 0: record no history); see :meth:`runs`.
        read_only: Open an existing file for reading only (what ``flowweaver ui`` and
            ``flowweaver runs`` do): nothing is created, migrated or written; a write raises
            :class:`StateAccessError`. An older schema is read as it is (its runs from before
            run history are not listed).

    Raises:
        StateCorruptError: The file exists but is not a readable database.
        StateVersionError: The file was written by a newer schema version.
        StateLockedError: Creating the schema waited ``timeout`` for another writer.
        StateAccessError: The file or its folder cannot be opened or created.
        ConfigurationError: An argument is invalid.
    """

    __slots__ = (
        "_claims", "_clock", "_conn", "_lock", "_writes", "keep_runs", "path", "read_only",
        "serializer", "synchronous", "timeout",
    )  # fmt: skip

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        serializer: Serializer | None = None,
        synchronous: str = "normal",
        timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        keep_runs: int | None = DEFAULT_KEEP_RUNS,
        read_only: bool = False,
    ) -> None:
        self.read_only = bool(read_only)
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise ConfigurationError(f"SQLiteStore: path must be a file path, got {path!r}")
        self.path = os.path.abspath(os.fspath(path))
        self._claims = FileClaims(self.path)
        if synchronous not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"SQLiteStore: synchronous must be one of {list(_SYNCHRONOUS)!r}, "
                f"got {synchronous!r}"
            )
        self.synchronous = synchronous
        self.timeout = check_number("SQLiteStore", "timeout", timeout)
        self.serializer = check_serializer("SQLiteStore", serializer)
        self._clock = check_clock("SQLiteStore", clock)
        self.keep_runs = check_keep_runs("SQLiteStore", keep_runs)
        self._lock = threading.Lock()
        self._writes = 0
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            return self._open_read_only()
        folder = os.path.dirname(self.path)
        try:
            make_private_dirs(folder)
            # Create the file ourselves so that it is owner-only from its first byte.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as error:
            raise StateAccessError(self.path, error.strerror or str(error)) from error
        try:
            # Autocommit mode: each statement is its own transaction unless we BEGIN.
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except _ERRORS as error:
            self._raise(error)
        try:
            # Read the version before changing anything: switching to WAL rewrites the file's
            # header, and a file we refuse (newer schema, corrupt) must stay byte-for-byte.
            version = self._checked_version(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            if version is None:
                self._create_schema(conn)
                version = self._read_version(conn)
            if version is not None and int(version) < SCHEMA_VERSION:
                self._migrate(conn)
        except _ERRORS as error:
            conn.close()
            self._raise(error)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        if not os.path.isfile(self.path):
            raise StateAccessError(self.path, "no such file")
        try:
            uri = "file:" + urllib.parse.quote(self.path) + "?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except _ERRORS as error:
            self._raise(error)
        try:
            version = self._read_version(conn)
            if version is None or not version.isdigit():
                raise StateCorruptError(self.path, f"unreadable schema version {version!r}")
            if int(version) > SCHEMA_VERSION:
                raise StateVersionError(self.path, int(version), SCHEMA_VERSION)
        except _ERRORS as error:
            conn.close()
            self._raise(error)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older schema up to :data:`SCHEMA_VERSION`, in one transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated it while we waited for the lock.
            version = int(self._read_version(conn) or SCHEMA_VERSION)
            if version < 2:
                _backfill_history(conn)
            conn.execute(
                "UPDATE flowweaver_meta SET value = ? WHERE key = 'schema_version'",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _checked_version(self, conn: sqlite3.Connection) -> str | None:
        """The file's schema version, read without writing (None: the schema is missing or
        incomplete, and is created next).

        Raises:
            StateCorruptError: The version is unreadable.
            StateVersionError: The file was written by a newer schema.
        """
        version = self._read_version(conn)
        if version is None:
            return None
        if not version.isdigit():
            raise StateCorruptError(self.path, f"unreadable schema version {version!r}")
        if int(version) > SCHEMA_VERSION:
            raise StateVersionError(self.path, int(version), SCHEMA_VERSION)
        (parts,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name IN (?, ?)", _PARTS
        ).fetchone()
        if parts < len(_PARTS):
            return None  # half made, or made before the expiry index: add what is missing
        # Reads the table's root page: a damaged table is refused before anything is written.
        conn.execute("SELECT data FROM flowweaver_entries LIMIT 1").fetchall()
        return version

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # One statement at a time: executescript() would COMMIT our transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO flowweaver_meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # Another process may have created it first, with its own version.
        if self._checked_version(conn) is None:
            raise StateCorruptError(self.path, "unreadable schema version None")

    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> str | None:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'flowweaver_meta'"
        ).fetchone()
        if not has_meta:
            return None
        row = conn.execute(
            "SELECT value FROM flowweaver_meta WHERE key = 'schema_version'"
        ).fetchone()
        return None if row is None else str(row[0])

    def _raise(self, error: sqlite3.Error | UnicodeEncodeError) -> NoReturn:
        """Re-raise a sqlite3 error as the typed state error it means."""
        if isinstance(error, UnicodeEncodeError):
            # SQLite text is UTF-8, which cannot hold a lone surrogate ("\ud800"): a key,
            # task name or namespace with one is refused, naming it (JSONFileStore keeps it).
            raise SerializationError(
                "str",
                f"{error.object!r} contains a lone surrogate at position {error.start}, and "
                "SQLiteStore holds only valid Unicode text",
            ) from None
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if code in (_BUSY, _LOCKED):
            raise StateLockedError(self.path, self.timeout) from error
        if code in (_CORRUPT, _NOTADB) or (
            isinstance(error, sqlite3.DatabaseError)
            and not isinstance(error, sqlite3.OperationalError | sqlite3.ProgrammingError)
        ):
            raise StateCorruptError(self.path, str(error)) from error
        raise StateAccessError(self.path, str(error)) from error

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise StateAccessError(self.path, "the store is closed")
        return conn

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- the StateStore protocol -------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def get(self, namespace: str, key: str) -> StateEntry | None:
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute(
                        f"SELECT {_COLUMNS} FROM flowweaver_entries "
                        f"WHERE namespace = ? AND key = ? AND {_LIVE}",
                        (namespace, key, self._clock()),
                    )
                    .fetchone()
                )
            except _ERRORS as error:
                self._raise(error)
        return None if row is None else StateEntry(*row)

    def put(self, namespace: str, key: str, entry: StateEntry) -> None:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO flowweaver_entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        namespace, key, entry.data, entry.created_at, entry.expires_at,
                        entry.fingerprint, entry.metadata,
                    ),
                )  # fmt: skip
                self._writes += 1
                if self._writes >= PURGE_EVERY:
                    # Amortised expiry: the partial index finds only entries with a TTL, so
                    # this costs O(log n + expired) once every PURGE_EVERY writes.
                    self._writes = 0
                    conn.execute(_PURGE, (self._clock(),))
            except _ERRORS as error:
                self._raise(error)

    def delete(self, namespace: str, key: str) -> bool:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    live = conn.execute(
                        f"DELETE FROM flowweaver_entries WHERE namespace = ? AND key = ? "
                        f"AND {_LIVE}",
                        (namespace, key, self._clock()),
                    ).rowcount
                    conn.execute(  # an expired leftover goes too; it was absent already
                        "DELETE FROM flowweaver_entries WHERE namespace = ? AND key = ?",
                        (namespace, key),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except _ERRORS as error:
                self._raise(error)
        return live > 0

    def clear(self, namespace: str) -> None:
        with self._lock:
            try:
                self._connection().execute(
                    "DELETE FROM flowweaver_entries WHERE namespace = ?", (namespace,)
                )
            except _ERRORS as error:
                self._raise(error)

    def entries(self, namespace: str) -> dict[str, StateEntry]:
        rows = self._live_rows(f"key, {_COLUMNS}", namespace)
        return {row[0]: StateEntry(*row[1:]) for row in rows}

    def stamps(self, namespace: str) -> list[tuple[str, float]]:
        """``(key, created_at)`` of every live entry of ``namespace``, without their data (what
        run history sorts a long listing by)."""
        return self._live_rows("key, created_at", namespace)

    def _live_rows(self, columns: str, namespace: str) -> list[Any]:
        """``columns`` of every live (unexpired) entry of ``namespace``."""
        with self._lock:
            try:
                return (
                    self._connection()
                    .execute(
                        f"SELECT {columns} FROM flowweaver_entries WHERE namespace = ? AND {_LIVE}",
                        (namespace, self._clock()),
                    )
                    .fetchall()
                )
            except _ERRORS as error:
                self._raise(error)

    def purge(self, namespace: str | None = None) -> int:
        """Remove the expired entries of ``namespace`` (None: of every namespace); how many.

        ``put`` also removes expired entries every :data:`PURGE_EVERY` writes.
        """
        with self._lock:
            try:
                if namespace is None:
                    cursor = self._connection().execute(_PURGE, (self._clock(),))
                else:
                    cursor = self._connection().execute(
                        _PURGE + " AND namespace = ?", (self._clock(), namespace)
                    )
            except _ERRORS as error:
                self._raise(error)
        return cursor.rowcount

    def claim(self, namespace: str, label: RunLabel, timeout: float | None) -> Claim:
        """Own the run whose results live in ``namespace`` until the claim is released.

        A lock file in ``<store file>.runs/`` (see :mod:`flowweaver._claim`); durable runs
        call this, so that one run id has one owner at a time.

        Raises:
            RunLockedError: Another run owns it (still, after ``timeout`` seconds).
        """
        return self._claims.claim(namespace, label, timeout)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _backfill_history(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: a history record (status ``unknown``) for every run with results."""
    rows = conn.execute(
        "SELECT namespace, MIN(created_at), MAX(created_at), COUNT(*) FROM flowweaver_entries "
        "WHERE namespace LIKE 'run:%' OR namespace LIKE 'pipeline:%' GROUP BY namespace"
    ).fetchall()
    for namespace, first, last, count in rows:
        prefix, _, pair = str(namespace).partition(":")
        try:
            name, run_id = json.loads(pair)
        except ValueError:
            continue
        kind = RunKind.WORKFLOW if prefix == "run" else RunKind.PIPELINE
        key = json.dumps([kind.value, name])
        conn.execute(
            "INSERT OR IGNORE INTO flowweaver_entries VALUES (?, ?, '{}', ?, NULL, '', NULL)",
            (HISTORY_NAMESPACE, key, first),
        )
        conn.execute(
            "INSERT OR IGNORE INTO flowweaver_entries VALUES (?, ?, ?, ?, NULL, '', NULL)",
            (runs_namespace(kind, name), run_id, legacy_record(first, last, count), first),
        )


publish(__name__)  # last: every exported class above exists
