"""CSS moved into ``style`` attributes, as mail clients that drop ``<style>`` need: per message,
or once into the template itself when its Jinja code cannot change what the rules select.

Inlining parses and re-serialises the whole document, the largest part of rendering a message.
Done once per campaign it is done for every recipient, provided each recipient's document
differs only where the template's constructs are: text and attribute values that no style rule
looks at. ``inline_css_template`` refuses every template where that is not plain to see, and
``CompiledTemplate`` still compares the first messages both ways before relying on it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import css_inline

from campaigns.content.jinja_marks import MARK_OPEN, MarkedTemplate, surviving_marks
from campaigns.core.errors import TemplateError

# Remote stylesheets are never fetched: per recipient it would be slow, and a template must not
# make the sender issue requests to arbitrary hosts. At-rules (media queries) cannot be inlined,
# so they stay behind in a <style> block for the clients that honour them.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.IGNORECASE | re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_AT_RULE = re.compile(r"@[^{;]*(?:;|\{(?:[^{}]*\{[^{}]*\})*[^{}]*\})")
_DECLARATIONS = re.compile(r"\{[^{}]*\}")
# Pseudo-classes about the state of an element, not its place among siblings.
_STATE_PSEUDO_CLASSES = re.compile(r":(?:hover|active|focus|visited|link)\b", re.IGNORECASE)
# Siblings, attribute values and structure: what an {% if %}, a loop or a value can change.
_CHANGEABLE_SELECTORS = re.compile(r"[\[+~:]")
_TAG = re.compile(r"<[^<>]*>")
_ATTRIBUTE = re.compile(r"""([^\s"'=<>/]+)\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+)""")
_SELECTED_ATTRIBUTES = frozenset({"class", "id", "style"})
# Constructs that can write markup or pull in other templates, which the check cannot see into.
_OPAQUE_CONSTRUCT = re.compile(
    r"\|\s*safe\b|\b(?:autoescape|include|import|from|extends|block|macro|call|filter|raw)\b"
)


def inline_css(html: str, where: str) -> str:
    """``html`` with its style rules inlined; TemplateError naming ``where`` if it cannot be."""
    try:
        return _INLINER.inline(html)
    except css_inline.InlineError as error:
        raise TemplateError(f"{where}: CSS cannot be inlined: {error}") from None


def inline_css_template(html_template: str) -> str | None:
    """The Jinja source with its CSS inlined, or None when inlining each rendered message could
    give a different result: Jinja inside a ``<style>`` block or a tag other than in an attribute
    value (class, id and style excepted), rules that select by siblings, position or attribute,
    constructs that write unescaped markup or include other templates, or constructs the
    inliner moved or dropped.
    """
    marked = MarkedTemplate.of(html_template)
    if marked is None or any(_OPAQUE_CONSTRUCT.search(c) for c in marked.constructs):
        return None
    styles = _STYLE_BLOCK.findall(marked.text)
    if any(MARK_OPEN in css or not _selectors_are_static(css) for css in styles):
        return None
    if not all(_marks_only_in_free_values(tag) for tag in _TAG.findall(marked.text)):
        return None
    try:
        inlined = _INLINER.inline(marked.text)
    except css_inline.InlineError:
        return None
    if surviving_marks(inlined) != list(range(len(marked.constructs))):
        return None
    return marked.restore(inlined)


def same_document(first: str, second: str) -> bool:
    """Whether two HTML documents hold the same elements, attributes and text, whatever the
    order of attributes and the spelling of character references."""
    return _document_events(first) == _document_events(second)


class _EventRecorder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", (tag, sorted(attrs, key=lambda pair: pair[0]))))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        self.events.append(("text", data))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", data))


def _document_events(html: str) -> list[tuple[str, object]]:
    recorder = _EventRecorder()
    recorder.feed(html)
    recorder.close()
    return recorder.events


def _selectors_are_static(css: str) -> bool:
    selectors = _AT_RULE.sub(" ", _CSS_COMMENT.sub(" ", css))
    while True:
        stripped = _DECLARATIONS.sub(",", selectors)
        if stripped == selectors:
            break
        selectors = stripped
    return not _CHANGEABLE_SELECTORS.search(_STATE_PSEUDO_CLASSES.sub("", selectors))


def _marks_only_in_free_values(tag: str) -> bool:
    if MARK_OPEN not in tag:
        return True
    for name, value in _ATTRIBUTE.findall(tag):
        if MARK_OPEN in value and name.lower() in _SELECTED_ATTRIBUTES:
            return False
    return MARK_OPEN not in _ATTRIBUTE.sub("", tag)
