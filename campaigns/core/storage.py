"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL through its URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Result,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.private_files import create_private_file, make_private_directory

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
POSTGRES_CONNECT_TIMEOUT_S = 10
"""A server that accepts the connection and never answers fails the attempt instead of holding
the caller forever (libpq waits without end by default); ``?connect_timeout=`` in the URL wins."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            _create_private_database_file(Path(database))
        # Several processes write (workers, dispatcher, CLI): wait for the lock, never fail on it.
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in make_url(url).query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _create_private_database_file(path: Path) -> None:
    # SQLite would create the file readable by all; its -wal and -shm files copy its mode.
    make_private_directory(path.parent)
    with contextlib.suppress(FileExistsError), create_private_file(path):
        pass


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process crash; only an OS crash can lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def conflict_insert(session: Session, table: Any) -> Any:
    """An INSERT that takes ON CONFLICT clauses, in the dialect of the session's database."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def rows_matched(result: Result[Any]) -> int:
    """Rows an UPDATE, DELETE or INSERT statement matched.

    ``Session.execute`` is typed to answer a ``Result``; for a data-changing statement it is
    always a ``CursorResult``, the one that carries ``rowcount``.
    """
    return cast(CursorResult[Any], result).rowcount


class Database:
    """An engine, its session factory, and the schema kept at the newest migration."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in a transaction that commits on success and rolls back on any error.

        For the statements run for every message: they skip the ORM session's bookkeeping,
        which costs several times what SQLite takes to run them.
        """
        with self.engine.begin() as connection:
            yield connection

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (cheap when it already is)."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        head = ScriptDirectory.from_config(config).get_current_head()
        try:
            with self.engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
                if current == head:
                    return
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
        except OperationalError as error:
            reason = _first_line(error.orig or error)
            raise ServiceUnavailable(f"database {self.engine.url!r}: {reason}") from None

    def ping(self, *, statement_timeout_s: float | None = None) -> None:
        """Raise ServiceUnavailable, in one line, unless the database answers a query.

        ``statement_timeout_s`` bounds the query on a PostgreSQL server that is up but stuck
        (locks, load); a server that does not answer at all needs a deadline of the caller's.
        """
        try:
            with self.engine.begin() as connection:
                if statement_timeout_s is not None and self.engine.dialect.name == "postgresql":
                    # Local to this transaction: the pooled connection keeps no timeout.
                    connection.execute(
                        text("SELECT set_config('statement_timeout', :milliseconds, true)"),
                        {"milliseconds": str(max(1, round(statement_timeout_s * 1000)))},
                    )
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            reason = _first_line((error.orig or error) if isinstance(error, DBAPIError) else error)
            raise ServiceUnavailable(f"database {self.engine.url!r}: {reason}") from None

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str) -> Database:
    database = Database(url)
    database.upgrade()
    return database


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
