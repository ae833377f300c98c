"""CSS inlined once into the template, only where that gives every recipient what inlining their
own message would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaigns.content.css_inlining import inline_css_template, same_document
from campaigns.content.templating import (
    PRE_INLINED_CHECKS,
    CompiledTemplate,
    TemplateSource,
    load_template,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STYLE = "<style>p { color: red; } .note { font-weight: bold; }</style>"


def page(body: str, style: str = STYLE) -> str:
    return f"<!DOCTYPE html><html><head>{style}</head><body>{body}</body></html>"


def context(**fields: Any) -> dict[str, Any]:
    base = {
        "email": "ann@example.org",
        "unsubscribe_url": "https://mail.example/u/abc?x=1&y=2",
        "campaign_name": "Spring",
        "first_name": "Ann O'Brien & <Co>",
        "city": "Zürich",
        "plan": "pro",
    }
    return base | fields


@pytest.mark.parametrize("name", ["newsletter", "announcement"])
def test_shipped_templates_are_inlined_once_and_match_inlining_each_message(name: str) -> None:
    source = load_template(name, TEMPLATES)
    compiled = CompiledTemplate(source)
    reference = CompiledTemplate(source, inline_css_once=False)
    assert compiled.css_inlined_once and not reference.css_inlined_once

    for number in range(PRE_INLINED_CHECKS + 5):
        fields = context(plan="pro" if number % 2 else "free", first_name=f"N{number} d'Arc")
        assert same_document(compiled.render(fields).html, reference.render(fields).html)
    assert compiled.css_inlined_once


@pytest.mark.parametrize(
    ("body", "style"),
    [
        ('<p class="{{ plan }}">Hi</p>', STYLE),
        ('<p id="{{ plan }}">Hi</p>', STYLE),
        ('<p style="color: {{ plan }}">Hi</p>', STYLE),
        ('<p {% if plan %}class="note"{% endif %}>Hi</p>', STYLE),
        ("<p>Hi</p><p>{{ first_name }}</p>", "<style>p + p { color: red; }</style>"),
        ("<p>Hi</p><p>{{ first_name }}</p>", "<style>p ~ p { color: red; }</style>"),
        ("<p>{{ first_name }}</p>", "<style>p:first-child { color: red; }</style>"),
        ("<p>{{ first_name }}</p>", "<style>p:empty { display: none; }</style>"),
        (
            '<a href="{{ unsubscribe_url }}">x</a>',
            '<style>a[href^="https"] { color: red; }</style>',
        ),
        ("<p>{{ first_name }}</p>", "<style>p { color: {{ plan }}; }</style>"),
        ("<p>{{ first_name|safe }}</p>", STYLE),
        ('<p>{% include "other.html" %}</p>', STYLE),
    ],
)
def test_templates_whose_jinja_could_change_what_rules_select_are_not_inlined_once(
    body: str, style: str
) -> None:
    assert inline_css_template(page(body, style)) is None


def test_values_in_text_and_free_attributes_and_whole_elements_in_ifs_are_inlined_once() -> None:
    template = page(
        '<p class="note">Hi {{ first_name }}, <a href="{{ unsubscribe_url }}">leave</a></p>'
        '{% if plan == "pro" %}<p>Pro</p>{% else %}<p>Free</p>{% endif %}',
        "<style>p { color: red; } a:hover { color: blue; } "
        "@media (max-width: 600px) { p { color: green; } }</style>",
    )

    inlined = inline_css_template(template)

    assert inlined is not None
    assert '<p class="note" style="color: red;">Hi {{ first_name }}, <a' in inlined
    assert '<a href="{{ unsubscribe_url }}">' in inlined
    assert '{% if plan == "pro" %}<p style="color: red;">Pro</p>{% else %}' in inlined
    assert "@media (max-width: 600px)" in inlined


def test_a_template_that_inlines_differently_once_is_caught_and_inlined_per_message() -> None:
    # The two opening tags in the if/else are both in the source, so inlined once the paragraph
    # sits inside the "a" div in every branch; rendered first, it does only when ``wide``.
    html = page(
        '{% if wide %}<div class="a">{% else %}<div class="b">{% endif %}<p>{{ email }}</p></div>',
        "<style>.a p { color: red; }</style>",
    )
    compiled = CompiledTemplate(TemplateSource("odd", "Hi", html, "Hi"))
    assert compiled.css_inlined_once

    narrow = compiled.render(context(wide=False)).html

    assert "color: red" not in narrow
    assert not compiled.css_inlined_once
    assert "color: red" in compiled.render(context(wide=True)).html


def test_same_document_ignores_attribute_order_and_entity_spelling_only() -> None:
    assert same_document('<p a="1" b="2">O&#39;B</p>', "<p b=\"2\" a='1'>O'B</p>")
    assert not same_document("<p>one</p>", "<p>two</p>")
    assert not same_document('<p a="1">x</p>', '<p a="2">x</p>')
