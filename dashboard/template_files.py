"""The email templates folder as the dashboard edits it: list, read, save.

A template is a folder under ``EDM_TEMPLATES_DIR`` holding ``subject.txt``, ``body.html`` and
optionally ``body.txt`` (see ``campaigns.content.templating``). Saving compiles the parts
first, so a template with a syntax error is never written, and each file is replaced atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from campaigns.content.templating import (
    HTML_FILE,
    SUBJECT_FILE,
    TEMPLATE_NAME,
    TEXT_FILE,
    CompiledTemplate,
    TemplateSource,
    checked_name,
    load_template,
)
from campaigns.core.errors import InputError, NotFound

MAX_PART_CHARS = 1_000_000


@dataclass(frozen=True)
class TemplateSummary:
    name: str
    subject: str
    has_text_part: bool
    variables: list[str]
    """Merge fields the template uses (built-in ones included)."""


def template_names(templates_dir: Path) -> list[str]:
    try:
        entries = sorted(templates_dir.iterdir())
    except OSError:
        return []
    return [
        entry.name
        for entry in entries
        if entry.is_dir() and TEMPLATE_NAME.match(entry.name) and (entry / HTML_FILE).is_file()
    ]


def read_template(templates_dir: Path, name: str) -> TemplateSource:
    """A template of the folder by name (never a path elsewhere on the server)."""
    folder = templates_dir / checked_name(name)
    if not folder.is_dir():
        raise NotFound(f"template {name!r} not found in {templates_dir}")
    return load_template(name, templates_dir)


def summaries(templates_dir: Path) -> list[TemplateSummary]:
    found = []
    for name in template_names(templates_dir):
        try:
            source = read_template(templates_dir, name)
            variables = sorted(CompiledTemplate(source).variables)
        except InputError:
            # A broken template is still listed, so it can be opened and fixed.
            source = TemplateSource(name=name, subject="", html="", text=None)
            variables = []
        found.append(TemplateSummary(name, source.subject, source.text is not None, variables))
    return found


def save_template(templates_dir: Path, source: TemplateSource) -> TemplateSource:
    """Write ``source`` as the folder ``source.name``, creating it when new."""
    name = checked_name(source.name)
    for part, text in (("subject", source.subject), ("html", source.html), ("text", source.text)):
        if text is not None and len(text) > MAX_PART_CHARS:
            raise InputError(f"{part}: at most {MAX_PART_CHARS} characters")
    if "\n" in source.subject.strip("\r\n"):
        raise InputError("subject: one line only")
    CompiledTemplate(source)  # a template that does not compile is never written
    folder = templates_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / SUBJECT_FILE, source.subject.strip("\r\n") + "\n")
    _write_atomically(folder / HTML_FILE, source.html)
    text_path = folder / TEXT_FILE
    if source.text is None or not source.text.strip():
        # No text part: one is derived from the HTML, as for a folder without body.txt.
        text_path.unlink(missing_ok=True)
    else:
        _write_atomically(text_path, source.text)
    return load_template(name, templates_dir)


def _write_atomically(path: Path, text: str) -> None:
    candidate = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    candidate.write_text(text, encoding="utf-8")
    os.replace(candidate, path)
