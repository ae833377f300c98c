"""Campaign templates: load the files, compile them once, render one message per recipient.

A template is a folder holding ``subject.txt``, ``body.html`` and optionally ``body.txt``, in
Jinja. Templates are user content, so they run in Jinja's sandbox with ``StrictUndefined``: a
template can neither reach Python internals nor silently print nothing for a field a recipient
lacks. The HTML part is autoescaped; the subject and text parts are not (they are not HTML).
Templates are compiled with ``trim_blocks`` and ``lstrip_blocks``, so a line holding only
``{% if %}`` leaves no blank line behind. Without ``body.txt`` the text part is derived from the
HTML, converted once per campaign when the Jinja code allows (see ``html_to_text_template``).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import GeneratorType, TracebackType
from typing import Any, cast

import html2text
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from campaigns.content.css_inlining import inline_css, inline_css_template, same_document
from campaigns.content.jinja_marks import (
    MARK,
    MARK_CLOSE,
    MARK_OPEN,
    MarkedTemplate,
    marker,
    surviving_marks,
)
from campaigns.content.template_limits import (
    MAX_OUTPUT_CHARS,
    BoundedSandbox,
    RenderCpuTimeExceeded,
    TemplateLimitExceeded,
    start_render_budget,
)
from campaigns.core.errors import InputError, NotFound, TemplateError

log = logging.getLogger(__name__)

BUILTIN_VARIABLES: frozenset[str] = frozenset({"email", "unsubscribe_url", "campaign_name"})
"""Variables the sender supplies for every recipient, whatever the list holds."""

TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A template folder's name: never a path, so a caller cannot read a folder of its choosing."""
SUBJECT_FILE = "subject.txt"
HTML_FILE = "body.html"
TEXT_FILE = "body.txt"

# C0 and C1 controls plus the Unicode line and paragraph separators: anything a mail header or a
# mail client could take for a line break.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with every control character turned into a space and whitespace runs collapsed."""
    return " ".join(_LINE_BREAKING.sub(" ", text).split())


@dataclass(frozen=True)
class TemplateSource:
    name: str
    subject: str
    html: str
    text: str | None


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    html: str
    text: str


def checked_name(name: str) -> str:
    if not TEMPLATE_NAME.match(name) or ".." in name:
        raise InputError(
            f"template name {name[:80]!r}: use letters, digits, '-', '_' and '.' (64 at most)"
        )
    return name


def load_template(name_or_path: str, templates_dir: Path) -> TemplateSource:
    """Read a template folder: the name of one under ``templates_dir``, or a path to one."""
    folder = templates_dir / name_or_path
    if not folder.is_dir():
        folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        raise NotFound(f"template {name_or_path!r}: no folder {templates_dir / name_or_path}")
    text_path = folder / TEXT_FILE
    return TemplateSource(
        name=folder.name,
        subject=_read_part(folder / SUBJECT_FILE).rstrip("\r\n"),
        html=_read_part(folder / HTML_FILE),
        text=_read_part(text_path) if text_path.exists() else None,
    )


def _read_part(path: Path) -> str:
    try:
        # utf-8-sig: editors on Windows like to start files with a byte order mark.
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TemplateError(f"{path}: file missing from the template folder") from None
    except UnicodeDecodeError as error:
        raise TemplateError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise TemplateError(f"{path}: cannot be read ({error.strerror})") from None


def _finalize(value: Any) -> Any:
    # An empty CSV cell may arrive as None; printing "None" to a recipient is never wanted.
    return "" if value is None else value


def _environment(*, autoescape: bool, trim_blocks: bool = True) -> SandboxedEnvironment:
    return BoundedSandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=trim_blocks,
        lstrip_blocks=trim_blocks,
        keep_trailing_newline=True,
        finalize=_finalize,
    )


_HTML_ENVIRONMENT = _environment(autoescape=True)
_TEXT_ENVIRONMENT = _environment(autoescape=False)
# A text part derived from HTML is tidied after rendering; trimming there would eat the blank
# line that separates two paragraphs when a block tag ends the first.
_DERIVED_TEXT_ENVIRONMENT = _environment(autoescape=False, trim_blocks=False)

PRE_INLINED_CHECKS = 20
"""Messages rendered both ways (CSS inlined in the template, and in the message) and compared
before a campaign relies on the template inlined once; one difference and it never does."""


class _Part:
    """One compiled file of a template, named ``<template>/<file>`` in every error."""

    def __init__(self, environment: SandboxedEnvironment, source: str, filename: str) -> None:
        self.filename = filename
        try:
            tree = environment.parse(source, name=filename, filename=filename)
            code = environment.compile(tree, name=filename, filename=filename)
        except TemplateSyntaxError as error:
            raise TemplateError(f"{filename}:{error.lineno}: {error.message}") from None
        self.variables = frozenset(meta.find_undeclared_variables(tree)) - set(environment.globals)
        self._template: Template = environment.template_class.from_code(
            environment, code, environment.make_globals(None)
        )

    def render(self, context: Mapping[str, Any]) -> str:
        end_budget = start_render_budget()
        try:
            return self._bounded_render(context)
        except (Exception, RenderCpuTimeExceeded) as error:
            # Whatever user template code raises is a fault of the template, not of the sender.
            line = error.line if isinstance(error, _OutputTooLarge) else self._line_of(error)
            raise TemplateError(f"{self.filename}:{line}: {_render_failure(error)}") from error
        finally:
            end_budget()

    def _bounded_render(self, context: Mapping[str, Any]) -> str:
        # Template.render, but counting the output as it is made: stopped at the limit, the
        # template's own frame still says which line was writing.
        template = self._template
        chunks: list[str] = []
        written_chars = 0
        try:
            # A generator in fact (Jinja types it as an Iterator): its frame names the line.
            generator = cast(
                "GeneratorType[str, None, None]",
                template.root_render_func(template.new_context(dict(context))),
            )
            for chunk in generator:
                written_chars += len(chunk)
                if written_chars > MAX_OUTPUT_CHARS:
                    # A suspended generator has a frame (gi_frame is None only once it ended).
                    frame_line = generator.gi_frame.f_lineno if generator.gi_frame else 0
                    raise _OutputTooLarge(template.get_corresponding_lineno(frame_line))
                chunks.append(chunk)
        except _OutputTooLarge:
            raise
        except (Exception, RenderCpuTimeExceeded):
            template.environment.handle_exception()
        return "".join(chunks)

    def _line_of(self, error: BaseException) -> str:
        # Jinja rewrites tracebacks so template frames carry the template's file name and line.
        line = "?"
        traceback: TracebackType | None = error.__traceback__
        while traceback is not None:
            if traceback.tb_frame.f_code.co_filename == self.filename:
                line = str(traceback.tb_lineno)
            traceback = traceback.tb_next
        return line


class _OutputTooLarge(TemplateLimitExceeded):
    def __init__(self, line: int) -> None:
        super().__init__(f"output too large (limit {MAX_OUTPUT_CHARS} characters)")
        self.line = line


def _render_failure(error: BaseException) -> str:
    if isinstance(error, UndefinedError):
        return str(error.message)
    if isinstance(error, TemplateLimitExceeded | RenderCpuTimeExceeded):
        return str(error)
    if isinstance(error, SecurityError):
        return f"not allowed in a template: {error}"
    return f"{type(error).__name__}: {error}"


class CompiledTemplate:
    """A template compiled once per campaign and rendered once per recipient."""

    def __init__(self, source: TemplateSource, *, inline_css_once: bool = True) -> None:
        """``inline_css_once=False`` inlines CSS into every message, as the reference."""
        self.source = source
        name = source.name
        self._subject = _Part(_TEXT_ENVIRONMENT, source.subject, f"{name}/{SUBJECT_FILE}")
        self._html = _Part(_HTML_ENVIRONMENT, source.html, f"{name}/{HTML_FILE}")
        self._text: _Part | None = None
        if source.text is not None:
            self._text = _Part(_TEXT_ENVIRONMENT, source.text, f"{name}/{TEXT_FILE}")
        else:
            # Converting the template once saves converting every rendered message (about 1 ms
            # each); when its Jinja code cannot be carried through, each message is converted.
            derived = html_to_text_template(source.html)
            if derived is not None:
                try:
                    self._text = _Part(
                        _DERIVED_TEXT_ENVIRONMENT, derived, f"{name}/{HTML_FILE} as text"
                    )
                except TemplateError:
                    self._text = None
        self._pre_inlined: _Part | None = None
        pre_inlined = inline_css_template(source.html) if inline_css_once else None
        if pre_inlined is not None:
            try:
                self._pre_inlined = _Part(
                    _HTML_ENVIRONMENT, pre_inlined, f"{name}/{HTML_FILE} with CSS inlined"
                )
            except TemplateError:
                self._pre_inlined = None
        self._checks_left = PRE_INLINED_CHECKS
        self.text_is_derived = source.text is None
        self.variables: frozenset[str] = (
            self._subject.variables
            | self._html.variables
            | (self._text.variables if self._text is not None else frozenset())
        )

    def render(self, context: Mapping[str, Any]) -> RenderedMessage:
        subject = one_line(self._subject.render(context))
        inlined_html = self._inlined_html(context)
        if self._text is None:
            text = html_to_text(self._html.render(context))
        elif self.text_is_derived:
            text = _tidy_text(self._text.render(context))
        else:
            text = self._text.render(context)
        return RenderedMessage(subject=subject, html=inlined_html, text=text)

    @property
    def css_inlined_once(self) -> bool:
        """Whether messages get the template's CSS inlined once (see css_inlining.py)."""
        return self._pre_inlined is not None

    def _inlined_html(self, context: Mapping[str, Any]) -> str:
        if self._pre_inlined is None:
            return inline_css(self._html.render(context), self._html.filename)
        try:
            candidate = self._pre_inlined.render(context)
        except TemplateError:
            # Rendered from the source, the error names the line of body.html people can see.
            return inline_css(self._html.render(context), self._html.filename)
        if self._checks_left > 0:
            self._checks_left -= 1
            expected = inline_css(self._html.render(context), self._html.filename)
            if not same_document(candidate, expected):
                log.warning(
                    "%s: CSS inlined once differs from inlining each message; "
                    "inlining each message",
                    self._html.filename,
                )
                self._pre_inlined = None
                return expected
        return candidate


def missing_fields(
    compiled: CompiledTemplate, recipient_fields: Iterable[Mapping[str, Any]]
) -> dict[str, int]:
    """How many recipients lack each variable the template uses; ``{}`` when none lack any."""
    needed = compiled.variables - BUILTIN_VARIABLES
    counts: Counter[str] = Counter()
    for fields in recipient_fields:
        for variable in needed:
            if variable not in fields:
                counts[variable] += 1
    return dict(counts)


# --- Text part from HTML ------------------------------------------------------------------------

TEXT_WIDTH = 78
_VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_BLANK_LINE_RUNS = re.compile(r"\n{3,}")


class _PlainTextConverter(html2text.HTML2Text):
    """html2text without the Markdown: links as ``text (url)``, headings as paragraphs,
    no emphasis marks, no escapes, tables read row by row, hidden elements (preheaders) left out.
    """

    def __init__(self) -> None:
        super().__init__(bodywidth=0)
        self.ignore_links = True  # written here instead, as "text (url)"
        self.ignore_images = True
        self.ignore_emphasis = True
        self.ignore_tables = True
        self.unicode_snob = True
        self.ul_item_mark = "-"
        self._open_links: list[tuple[str, list[str]]] = []
        self._hidden_tag: str | None = None
        self._hidden_depth = 0

    def handle_tag(self, tag: str, attrs: dict[str, str | None], start: bool) -> None:
        if self._hidden_tag is not None:
            if tag == self._hidden_tag:
                self._hidden_depth += 1 if start else -1
                if self._hidden_depth == 0:
                    self._hidden_tag = None
                    self.quiet -= 1
            return
        if start and tag not in _VOID_ELEMENTS and _is_hidden(attrs):
            self._hidden_tag, self._hidden_depth = tag, 1
            self.quiet += 1
            return
        if tag == "a":
            self._handle_link(attrs, start)
            return
        if html2text.utils.hn(tag):
            tag = "p"
        super().handle_tag(tag, attrs, start)
        if tag in ("td", "th") and not start:
            # Without this, cells written without whitespace between them run together.
            self.handle_data(" ")

    def handle_data(self, data: str, entity_char: bool = False) -> None:
        if self._open_links and not self.quiet:
            self._open_links[-1][1].append(data)
        # Claiming every piece is an entity keeps html2text from adding Markdown escapes.
        super().handle_data(data, entity_char=True)

    def _handle_link(self, attrs: dict[str, str | None], start: bool) -> None:
        if start:
            self._open_links.append((attrs.get("href") or "", []))
            return
        if not self._open_links:
            return
        href, text_parts = self._open_links.pop()
        shown = href.removeprefix("mailto:")
        text = " ".join("".join(text_parts).split())
        # An image-only link (a logo) would print a bare URL that nobody asked to read.
        if href and not href.startswith("#") and text and shown not in text:
            self.handle_data(f" ({shown})")


def _is_hidden(attrs: dict[str, str | None]) -> bool:
    # Only inline styles count: the text part is made from the HTML before CSS is inlined, so a
    # preheader must be hidden with style="display: none" (as email clients need anyway).
    style = (attrs.get("style") or "").replace(" ", "").lower()
    return "hidden" in attrs or "display:none" in style


def _tidy_text(text: str) -> str:
    """Spaces collapsed (HTML collapses them too), lines wrapped at ``TEXT_WIDTH`` between words,
    at most one blank line in a row, one line break at the end."""
    lines: list[str] = []
    for line in text.splitlines():
        # Split on spaces only: a no-break space from &nbsp; must keep its words together. A word
        # of only no-break spaces is a spacer cell, which should leave nothing behind.
        words = [word for word in line.split(" ") if word.strip()]
        if not words:
            lines.append("")
            continue
        indent = line[: len(line) - len(line.lstrip(" "))]
        current = indent + words[0]
        for word in words[1:]:
            # Never inside a word: URLs have hyphens, and a broken URL is a broken link.
            if len(current) + 1 + len(word) > TEXT_WIDTH:
                lines.append(current)
                current = indent + word
            else:
                current += " " + word
        lines.append(current)
    return _BLANK_LINE_RUNS.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML message."""
    return _tidy_text(_PlainTextConverter().handle(html))


_WHITESPACE_CONTROL = re.compile(r"^(\{[{%#])[-+]|[-+]([}%#]\})$")
_MARK_RUN = f"((?:{MARK_OPEN}\\d+{MARK_CLOSE}[ \\t]*)+)"
_STATEMENTS_BEFORE_TEXT = re.compile(f"^[ \\t]*{_MARK_RUN}(?=[^\\s{MARK_OPEN}])", re.MULTILINE)
_STATEMENTS_ALONE = re.compile(f"^[ \\t]*{_MARK_RUN}\\n", re.MULTILINE)
_ORDERED_LIST = re.compile(r"<ol\b.*?</ol\s*>", re.IGNORECASE | re.DOTALL)


def html_to_text_template(html_template: str) -> str | None:
    """Jinja source for the text part of an HTML template, or None when it cannot be derived.

    Every Jinja construct is swapped for a marker, the HTML is converted, and the constructs are
    put back; rendering it and tidying with ``_tidy_text`` gives what converting each rendered
    message would. It is only trusted when every ``{% ... %}`` survived, in its original order,
    so the text has exactly the control flow of the HTML; a ``{{ ... }}`` may be dropped (one in
    ``<title>``, say) since the text never showed it. Whitespace control (``{%-``) is removed:
    it trims HTML, but in text it would glue paragraphs together.
    """
    marked_template = MarkedTemplate.of(
        html_template, lambda construct: _WHITESPACE_CONTROL.sub(r"\1\2", construct)
    )
    if marked_template is None:
        return None
    marked, constructs = marked_template.text, marked_template.constructs
    if any(MARK_OPEN in ordered_list for ordered_list in _ORDERED_LIST.findall(marked)):
        return None  # item numbers are counted in the conversion, not at rendering
    converted = _PlainTextConverter().handle(marked)

    def without_statement_whitespace(match: re.Match[str]) -> str:
        run, line_end = match.group(1), match.group()[match.end(1) - match.start() :]
        marks = MARK.findall(run)
        leading = list(
            itertools.takewhile(lambda i: not constructs[int(i)].startswith("{{"), marks)
        )
        if not leading:
            return match.group()
        if len(leading) == len(marks):
            return "".join(marker(int(index)) for index in marks)
        first_variable = run.index(marker(int(marks[len(leading)])))
        return "".join(marker(int(index)) for index in leading) + run[first_variable:] + line_end

    # Statements starting a line stand for no text: the spaces after them would indent the line,
    # and when alone on the line its line break would add a line to every loop pass (hand-written
    # text templates get the same from trim_blocks).
    converted = _STATEMENTS_BEFORE_TEXT.sub(without_statement_whitespace, converted)
    converted = _STATEMENTS_ALONE.sub(without_statement_whitespace, converted)
    survivors = surviving_marks(converted)
    statements = [i for i, construct in enumerate(constructs) if construct.startswith("{%")]
    in_order = all(a < b for a, b in itertools.pairwise(survivors))
    if not in_order or not set(statements) <= set(survivors):
        return None
    return marked_template.restore(converted)
