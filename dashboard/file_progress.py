"""How far this process has read into a file, from the kernel's record of its open descriptor.

The importer opens and reads the uploaded CSV itself; the position of that descriptor
(``/proc/self/fdinfo``) is how much of the file it has read, without the importer having to
report anything. Elsewhere than Linux the answer is None and the progress bar shows activity only.
"""

from __future__ import annotations

import os
from pathlib import Path

_FD_DIR = Path("/proc/self/fd")
_FDINFO_DIR = Path("/proc/self/fdinfo")


def bytes_read(path: Path) -> int | None:
    """The furthest position of any descriptor of this process open on ``path``; None if none."""
    target = str(Path(path).resolve())
    try:
        descriptors = os.listdir(_FD_DIR)
    except OSError:
        return None
    positions = []
    for descriptor in descriptors:
        try:
            if os.readlink(_FD_DIR / descriptor) != target:
                continue
            info = (_FDINFO_DIR / descriptor).read_text()
        except OSError:
            continue  # closed since the listing
        for line in info.splitlines():
            if line.startswith("pos:"):
                positions.append(int(line.split()[1]))
    return max(positions) if positions else None
