"""Where the email templates folder is when ``EDM_TEMPLATES_DIR`` is not set.

In a checkout it is the top-level ``templates/`` folder, the one people edit and commit. An
installed copy has no such folder: its example templates sit inside the installed package
(``setup.py`` maps ``templates/`` to ``campaigns/content/example_templates``), which may be
read-only, shared by every user of the machine and replaced by the next upgrade. So there the
folder is ``templates`` inside the data folder, filled with the examples the first time it is
needed and never overwritten afterwards, and the dashboard's template editor never writes into
the package.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from campaigns.core.errors import ConfigError
from campaigns.core.private_files import make_private_directory

TEMPLATES_FOLDER_NAME = "templates"


def checkout_templates_dir(project_root: Path) -> Path | None:
    """The checkout's ``templates/`` folder; None in an installed copy."""
    checkout_templates = project_root / TEMPLATES_FOLDER_NAME
    # Another distribution's stray top-level "templates" in site-packages is not a checkout.
    if (project_root / "pyproject.toml").is_file() and checkout_templates.is_dir():
        return checkout_templates
    return None


def example_templates_dir(project_root: Path) -> Path:
    """The example templates that ship with the program: the checkout's folder, else the copy
    the wheel carries."""
    return checkout_templates_dir(project_root) or (
        project_root / "campaigns" / "content" / "example_templates"
    )


def default_templates_dir(data_dir: Path, project_root: Path) -> Path:
    """The checkout's ``templates/``; in an installed copy ``data_dir/templates``, filled with
    the examples on first use."""
    return checkout_templates_dir(project_root) or copy_examples_once(
        example_templates_dir(project_root), data_dir / TEMPLATES_FOLDER_NAME
    )


def copy_examples_once(examples_dir: Path, templates_dir: Path) -> Path:
    """Copy ``examples_dir`` to ``templates_dir`` unless that folder exists: a person's edits,
    and templates they deleted, stay as they left them."""
    if templates_dir.exists():
        return templates_dir
    # Copied aside and renamed into place: a crash or a second process starting at the same
    # moment never leaves a half-copied folder that would then count as the person's own.
    staging = templates_dir.with_name(f".{templates_dir.name}.{os.getpid()}.tmp")
    try:
        make_private_directory(templates_dir.parent)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(
            examples_dir, staging, ignore=shutil.ignore_patterns("__pycache__", "__init__.py")
        )
        staging.rename(templates_dir)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if templates_dir.is_dir():
            return templates_dir  # another process copied them first
        raise ConfigError(
            f"{templates_dir}: cannot create the templates folder from {examples_dir} "
            f"({error.strerror or error}); set EDM_TEMPLATES_DIR to a folder you can write"
        ) from None
    return templates_dir
