"""What the data folder holds (the signing secret, the database, uploaded recipient lists, DKIM
keys) is readable by its owner only, from the moment each file exists."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from campaigns.content.dkim_keys import write_private_key
from campaigns.core.private_files import create_private_file, make_private_directory
from campaigns.core.settings import Settings
from campaigns.core.storage import open_database
from dashboard.background_imports import BackgroundImports
from tests.conftest import wait_until


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    # The modes must not depend on a umask that happens to be strict.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_private_directory_and_its_missing_parents_are_owner_only(tmp_path: Path) -> None:
    make_private_directory(tmp_path / "data" / "demo")

    assert mode_of(tmp_path / "data") == 0o700
    assert mode_of(tmp_path / "data" / "demo") == 0o700


def test_an_existing_directory_keeps_the_mode_someone_gave_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)

    make_private_directory(shared / "data")

    assert mode_of(shared) == 0o755
    assert mode_of(shared / "data") == 0o700


def test_a_private_file_is_new_and_owner_only(tmp_path: Path) -> None:
    with create_private_file(tmp_path / "a") as new_file:
        new_file.write(b"x")

    assert mode_of(tmp_path / "a") == 0o600
    with pytest.raises(FileExistsError):
        create_private_file(tmp_path / "a")


def test_generated_secret_key_and_its_data_folder_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "edm-data"

    secret = Settings(data_dir=data_dir).secret

    assert mode_of(data_dir) == 0o700
    assert mode_of(data_dir / "secret.key") == 0o600
    assert len(secret) == 64
    assert Settings(data_dir=data_dir).secret == secret
    assert [path.name for path in data_dir.iterdir()] == ["secret.key"]


def test_secret_key_survives_a_candidate_left_by_a_crashed_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "edm-data"
    make_private_directory(data_dir)
    stale = data_dir / f".secret.key.{os.getpid()}"
    stale.write_text("half-written")
    stale.chmod(0o644)

    secret = Settings(data_dir=data_dir).secret

    assert (data_dir / "secret.key").read_bytes().strip() == secret
    assert mode_of(data_dir / "secret.key") == 0o600
    assert not stale.exists()


def test_sqlite_database_and_its_journal_files_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "edm-data"
    database = open_database(Settings(data_dir=data_dir).resolved_database_url)
    try:
        with database.engine.connect():
            files = sorted(data_dir.iterdir())
            assert [path.name for path in files] == [
                "edm.sqlite3",
                "edm.sqlite3-shm",
                "edm.sqlite3-wal",
            ]
            assert {path.name: mode_of(path) for path in files} == {
                path.name: 0o600 for path in files
            }
        assert mode_of(data_dir) == 0o700
    finally:
        database.engine.dispose()


class _UploadThatLooksAtItsCopy(io.BytesIO):
    """An upload that records the modes of the saved copy while it is being written."""

    def __init__(self, content: bytes, uploads_dir: Path) -> None:
        super().__init__(content)
        self.uploads_dir = uploads_dir
        self.seen_modes: dict[str, int] = {}

    def read(self, size: int | None = -1) -> bytes:
        for path in self.uploads_dir.iterdir():
            self.seen_modes[path.name] = mode_of(path)
        self.seen_modes["uploads"] = mode_of(self.uploads_dir)
        return super().read(size)


def test_uploaded_recipient_list_is_saved_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "edm-data"
    database = open_database(Settings(data_dir=data_dir).resolved_database_url)
    imports = BackgroundImports(database, data_dir / "uploads")
    upload = _UploadThatLooksAtItsCopy(b"email\nann@example.com\n", data_dir / "uploads")
    try:
        task_id = imports.submit(
            upload, file_name="people.csv", list_name="people", encoding=None, user_id=None
        )
        assert wait_until(
            lambda: imports.progress(task_id).state in ("done", "failed"), timeout_s=60
        )
    finally:
        imports.shutdown()
        database.engine.dispose()

    saved = {name for name in upload.seen_modes if name.endswith(".csv")}
    assert len(saved) == 1
    assert upload.seen_modes == {"uploads": 0o700, saved.pop(): 0o600}
    assert imports.progress(task_id).state == "done"


def test_dkim_key_file_is_owner_only(tmp_path: Path) -> None:
    key_file = tmp_path / "dkim" / "s1._domainkey.example.com.pem"

    write_private_key(Ed25519PrivateKey.generate(), key_file)

    assert mode_of(key_file) == 0o600
    assert mode_of(key_file.parent) == 0o700
