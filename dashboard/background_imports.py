"""CSV uploads imported in the background, one at a time, each with a stored report.

The upload is saved under ``<data dir>/uploads`` first, so a big file never sits in memory, and
the request answers at once with the task's id. The import itself is ``import_recipients``:
all or nothing, so a task that failed, or that the server stopped in the middle of, imported
nobody, and says so.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update

from campaigns.core.errors import EdmError, InputError, NotFound
from campaigns.core.models import ImportTask, utc_now
from campaigns.core.private_files import create_private_file, make_private_directory
from campaigns.core.storage import Database, rows_matched
from campaigns.lists.importer import import_recipients
from dashboard.file_progress import bytes_read

log = logging.getLogger("edm.dashboard.imports")

MAX_LIST_NAME_CHARS = 200
INTERRUPTED = "the server stopped before this import finished; nothing was imported"


class ImportState:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ImportProgress:
    id: int
    list_name: str
    file_name: str
    state: str
    bytes_total: int
    bytes_read: int | None
    """None when unknown (not started, finished, or not measurable on this system)."""
    report: dict[str, Any] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def percent(self) -> float | None:
        if self.state == ImportState.DONE:
            return 100.0
        if self.bytes_read is None or not self.bytes_total:
            return None
        return min(99.0, 100.0 * self.bytes_read / self.bytes_total)


class BackgroundImports:
    def __init__(
        self,
        database: Database,
        uploads_dir: Path,
        *,
        secret: bytes | None = None,
        blocked_domains: frozenset[str] = frozenset(),
    ) -> None:
        self._database = database
        self._uploads_dir = uploads_dir
        self._secret = secret
        self._blocked_domains = blocked_domains
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edm-import")
        self._running_paths: dict[int, Path] = {}

    def mark_interrupted(self) -> int:
        """Tasks a previous server left unfinished end as failed (their import rolled back)."""
        with self._database.session() as session:
            result = session.execute(
                update(ImportTask)
                .where(ImportTask.state.in_((ImportState.QUEUED, ImportState.RUNNING)))
                .values(state=ImportState.FAILED, error=INTERRUPTED, finished_at=utc_now())
            )
            return rows_matched(result)

    def submit(
        self,
        upload: BinaryIO,
        *,
        file_name: str,
        list_name: str,
        encoding: str | None,
        user_id: int | None,
    ) -> int:
        list_name = list_name.strip()
        if not list_name:
            raise InputError("list: a list name is required")
        if len(list_name) > MAX_LIST_NAME_CHARS:
            raise InputError(f"list: at most {MAX_LIST_NAME_CHARS} characters")
        make_private_directory(self._uploads_dir)
        path = self._uploads_dir / f"{uuid.uuid4().hex}.csv"
        with create_private_file(path) as saved:
            shutil.copyfileobj(upload, saved, length=1024 * 1024)
        size = path.stat().st_size
        if size == 0:
            path.unlink()
            raise InputError(f"{file_name}: the file is empty")
        with self._database.session() as session:
            task = ImportTask(
                list_name=list_name,
                file_name=file_name[:400],
                state=ImportState.QUEUED,
                bytes_total=size,
                encoding=encoding or None,
                created_by=user_id,
            )
            session.add(task)
            session.flush()
            task_id = task.id
        self._running_paths[task_id] = path
        self._executor.submit(self._run, task_id, path)
        return task_id

    def progress(self, task_id: int) -> ImportProgress:
        with self._database.session() as session:
            task = session.get(ImportTask, task_id)
            if task is None:
                raise NotFound(f"import {task_id} not found")
            path = self._running_paths.get(task_id)
            position = (
                bytes_read(path) if path is not None and task.state == ImportState.RUNNING else None
            )
            return ImportProgress(
                id=task.id,
                list_name=task.list_name,
                file_name=task.file_name,
                state=task.state,
                bytes_total=task.bytes_total,
                bytes_read=position,
                report=task.report,
                error=task.error,
                created_at=task.created_at,
                finished_at=task.finished_at,
            )

    def recent(self, limit: int = 20) -> list[ImportProgress]:
        with self._database.session() as session:
            ids = list(
                session.scalars(select(ImportTask.id).order_by(ImportTask.id.desc()).limit(limit))
            )
        return [self.progress(task_id) for task_id in ids]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self, task_id: int, path: Path) -> None:
        with self._database.session() as session:
            task = session.get(ImportTask, task_id)
            if task is None:
                return
            task.state = ImportState.RUNNING
            list_name, file_name, encoding = task.list_name, task.file_name, task.encoding
        state, report, error = ImportState.FAILED, None, None
        try:
            result = import_recipients(
                self._database,
                path,
                list_name,
                encoding=encoding,
                secret=self._secret,
                blocked_domains=self._blocked_domains,
            )
            report = result.as_dict()
            report["path"] = file_name
            state = ImportState.DONE
        except EdmError as failure:
            # Messages name the saved copy; the person knows the file by the name they chose.
            error = str(failure).replace(str(path), file_name)
        except Exception:
            log.exception("import %d (%s) failed", task_id, file_name)
            error = "internal error while importing; the server log has the details"
        finally:
            self._running_paths.pop(task_id, None)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with self._database.session() as session:
            session.execute(
                update(ImportTask)
                .where(ImportTask.id == task_id)
                .values(state=state, report=report, error=error, finished_at=utc_now())
            )
