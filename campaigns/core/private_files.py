"""Files and folders only their owner may read: the data folder holds the signing secret, the
database and uploaded recipient lists, none of which other accounts on the machine should see."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_directory(path: Path) -> None:
    """Create ``path`` and any missing parents as owner-only folders; existing ones are left as
    they are (someone may have opened them up on purpose)."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIRECTORY_MODE, exist_ok=True)


def create_private_file(path: Path) -> BinaryIO:
    """Open a new file for writing, owner-only from the moment it exists (no window in which a
    chmod has yet to happen); ``FileExistsError`` if ``path`` exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    return os.fdopen(descriptor, "wb")
