from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.content.templating import (
    CompiledTemplate,
    TemplateSource,
    html_to_text,
    load_template,
    missing_fields,
)
from campaigns.core.errors import NotFound, TemplateError
from campaigns.core.settings import PROJECT_ROOT

TEMPLATES_DIR = PROJECT_ROOT / "templates"
BUILTINS = {
    "email": "ann@example.com",
    "unsubscribe_url": "https://mail.example.com/u/abc123",
    "campaign_name": "Spring news",
}


def compile_template(
    html: str, subject: str = "Hello", text: str | None = None
) -> CompiledTemplate:
    return CompiledTemplate(TemplateSource(name="t", subject=subject, html=html, text=text))


def template_error(html: str, subject: str = "Hello", context: dict | None = None) -> str:
    with pytest.raises(TemplateError) as raised:
        compile_template(html, subject).render(context or {})
    return str(raised.value)


# --- loading -----------------------------------------------------------------------------------


def test_shipped_templates_load_by_name_with_their_variables() -> None:
    newsletter = CompiledTemplate(load_template("newsletter", TEMPLATES_DIR))
    announcement = CompiledTemplate(load_template("announcement", TEMPLATES_DIR))

    assert newsletter.variables == {
        "first_name",
        "city",
        "plan",
        "campaign_name",
        "unsubscribe_url",
    }
    assert announcement.variables == {"first_name", "unsubscribe_url"}
    assert newsletter.text_is_derived is False
    assert announcement.text_is_derived is True


def test_a_template_loads_from_a_folder_path_the_same_as_by_name(tmp_path: Path) -> None:
    by_name = load_template("newsletter", TEMPLATES_DIR)
    by_path = load_template(str(TEMPLATES_DIR / "newsletter"), tmp_path)

    assert by_path == by_name
    assert by_name.name == "newsletter"
    assert not by_name.subject.endswith("\n")


def test_a_missing_template_folder_is_not_found_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as raised:
        load_template("nope", tmp_path)

    assert str(raised.value) == f"template 'nope': no folder {tmp_path / 'nope'}"


def test_a_missing_part_file_is_a_template_error_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "subject.txt").write_text("Hi")

    with pytest.raises(TemplateError) as raised:
        load_template("half", tmp_path)

    assert str(raised.value) == f"{folder / 'body.html'}: file missing from the template folder"


def test_a_part_that_is_not_utf8_is_a_template_error(tmp_path: Path) -> None:
    folder = tmp_path / "latin"
    folder.mkdir()
    (folder / "subject.txt").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (folder / "body.html").write_text("<p>x</p>")

    with pytest.raises(TemplateError) as raised:
        load_template("latin", tmp_path)

    assert (
        str(raised.value)
        == f"{folder / 'subject.txt'}: not UTF-8 (invalid continuation byte at byte 3)"
    )


def test_a_byte_order_mark_is_not_part_of_the_template(tmp_path: Path) -> None:
    folder = tmp_path / "bom"
    folder.mkdir()
    (folder / "subject.txt").write_bytes(b"\xef\xbb\xbfHi {{ first_name }}\n")
    (folder / "body.html").write_text("<p>x</p>")

    source = load_template("bom", tmp_path)

    assert source.subject == "Hi {{ first_name }}"
    assert source.text is None


# --- compiling and rendering errors -------------------------------------------------------------


def test_a_syntax_error_names_the_file_and_line() -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template("<p>ok</p>\n<p>{{ first_name | }}</p>\n")

    assert str(raised.value) == (
        "t/body.html:2: expected token 'name', got 'end of print statement'"
    )


def test_a_syntax_error_in_the_subject_names_the_subject() -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template("<p>ok</p>", subject="Hi {% if x %}")

    assert str(raised.value).startswith("t/subject.txt:1: Unexpected end of template.")


def test_an_undefined_variable_names_the_part_line_and_variable() -> None:
    message = template_error(
        "<p>{{ first_name }}</p>\n<p>{{ nickname }}</p>", context={"first_name": "Ann"}
    )

    assert message == "t/body.html:2: 'nickname' is undefined"


def test_an_undefined_variable_in_the_subject_names_the_subject() -> None:
    message = template_error("<p>x</p>", subject="Hi {{ first_name }}")

    assert message == "t/subject.txt:1: 'first_name' is undefined"


def test_a_missing_attribute_is_an_error_not_an_empty_string() -> None:
    message = template_error("<p>{{ user.name }}</p>", context={"user": {}})

    assert message == "t/body.html:1: 'dict object' has no attribute 'name'"


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__",
        "''.__class__.__mro__[1].__subclasses__()",
        "first_name.__init__.__globals__",
    ],
)
def test_the_sandbox_refuses_python_internals(expression: str) -> None:
    message = template_error(f"<p>\n{{{{ {expression} }}}}</p>", context={"first_name": "Ann"})

    assert message.startswith("t/body.html:2: not allowed in a template: access to attribute")
    assert message.endswith("is unsafe.")


def test_any_other_failure_of_template_code_is_a_template_error() -> None:
    assert template_error("<p>\n{{ 1 / 0 }}</p>") == (
        "t/body.html:2: ZeroDivisionError: division by zero"
    )


# --- rendering ------------------------------------------------------------------------------------


def test_html_is_autoescaped_and_subject_and_text_are_not() -> None:
    compiled = compile_template(
        "<p>Hi {{ first_name }}</p>",
        subject="Hi {{ first_name }}",
        text="Hi {{ first_name }}\n",
    )

    rendered = compiled.render({"first_name": "<script>alert(1)</script> & co"})

    assert "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>" in rendered.html
    assert "<script>" not in rendered.html
    assert rendered.text == "Hi <script>alert(1)</script> & co\n"
    assert rendered.subject == "Hi <script>alert(1)</script> & co"


def test_a_field_with_html_is_escaped_in_html_and_raw_in_the_derived_text() -> None:
    compiled = compile_template("<p>Hi {{ first_name }}</p>")

    rendered = compiled.render({"first_name": "<script>x</script>"})

    assert "<p>Hi &lt;script&gt;x&lt;/script&gt;</p>" in rendered.html
    assert rendered.text == "Hi <script>x</script>\n"


def test_the_subject_is_one_line_whatever_the_fields_hold() -> None:
    compiled = compile_template("<p>x</p>", subject="{{ first_name }},\n  your   news")

    rendered = compiled.render(
        {"first_name": "Ann\r\nBcc: evil@example.com\x00\x0b\u2028\u0085Lee\t"}
    )

    assert rendered.subject == "Ann Bcc: evil@example.com Lee , your news"


def test_none_prints_as_empty_rather_than_none() -> None:
    rendered = compile_template("<p>[{{ city }}]</p>").render({"city": None})

    assert "<p>[]</p>" in rendered.html


def test_variables_leave_out_loop_locals_assignments_and_jinja_globals() -> None:
    compiled = compile_template(
        "{% set greeting = 'Hi' %}{% for i in range(2) %}{{ greeting }} {{ i }}{% endfor %}"
        "{{ first_name }}",
        subject="{{ plan }}",
    )

    assert compiled.variables == {"first_name", "plan"}


def test_missing_fields_counts_recipients_lacking_each_variable() -> None:
    compiled = compile_template(
        '<p>{{ first_name }} {{ city }} <a href="{{ unsubscribe_url }}">x</a></p>',
        subject="{{ plan }} for {{ email }} in {{ campaign_name }}",
    )
    recipients = [
        {"first_name": "Ann", "city": "Lyon", "plan": "Pro"},
        {"first_name": "Bob", "city": ""},
        {"first_name": "Cy", "plan": None},
        {},
    ]

    assert missing_fields(compiled, recipients) == {"first_name": 1, "city": 2, "plan": 2}
    assert missing_fields(compiled, recipients[:1]) == {}
    assert missing_fields(compiled, iter([])) == {}


def test_css_from_a_style_block_is_inlined_and_media_queries_are_kept() -> None:
    compiled = compile_template(
        "<html><head><style>p.lead { color: #123456; font-size: 18px }"
        " @media (max-width: 600px) { p.lead { font-size: 15px !important } }</style></head>"
        '<body><p class="lead">Hi</p><p>Plain</p></body></html>'
    )

    html = compiled.render({}).html

    assert '<p class="lead" style="color: #123456;font-size: 18px;">Hi</p>' in html
    assert "<p>Plain</p>" in html
    assert "<style>@media (max-width: 600px) { p.lead { font-size: 15px !important } }" in html
    assert "p.lead { color" not in html


def test_remote_stylesheets_are_never_fetched() -> None:
    compiled = compile_template(
        '<html><head><link rel="stylesheet" href="http://192.0.2.1/x.css"></head>'
        "<body><p>Hi</p></body></html>"
    )

    html = compiled.render({}).html

    assert "<p>Hi</p>" in html
    assert "192.0.2.1" not in html


# --- the text part --------------------------------------------------------------------------------


def test_derived_text_is_plain_readable_text() -> None:
    compiled = compile_template(
        '<div style="display: none">Preheader</div>'
        "<h1>Hello {{ first_name }}</h1>"
        "<p>Some <strong>bold</strong>, <em>italic</em> &amp; <b>plain</b> text.</p>"
        '<p><a href="https://example.com/a-b">Read more</a> or mail'
        ' <a href="mailto:help@example.com">help@example.com</a>.</p>'
        '<p><a href="https://example.com/"><img src="https://example.com/l.png" alt="L"></a></p>'
        "<ul><li>One</li><li>Two</li></ul>"
        "<table><tr><td>Cell A</td><td>Cell B</td></tr></table>"
        "<table><tr><td>&nbsp;</td></tr></table>"
        "<p>1. Not a list * or ** markup # here</p>"
    )

    rendered = compiled.render({"first_name": "Ann"})

    assert rendered.text == (
        "Hello Ann\n"
        "\n"
        "Some bold, italic & plain text.\n"
        "\n"
        "Read more (https://example.com/a-b) or mail help@example.com.\n"
        "\n"
        "  - One\n"
        "  - Two\n"
        "\n"
        "Cell A Cell B\n"
        "\n"
        "1. Not a list * or ** markup # here\n"
    )


def test_derived_text_wraps_between_words_and_never_inside_a_url() -> None:
    url = "https://example.com/" + "-".join(["segment"] * 12)
    compiled = compile_template(
        f'<p>{{{{ words }}}}</p><p><a href="{url}">A link with a long address</a></p>'
    )

    text = compiled.render({"words": " ".join(["word"] * 40)}).text

    lines = text.splitlines()
    assert lines[:3] == [
        " ".join(["word"] * 15),
        " ".join(["word"] * 15),
        " ".join(["word"] * 10),
    ]
    assert lines[4:] == ["A link with a long address", f"({url})"]


def test_a_template_without_body_txt_gets_the_same_text_as_converting_each_message() -> None:
    shipped = load_template("newsletter", TEMPLATES_DIR)
    compiled = CompiledTemplate(
        TemplateSource(name="newsletter", subject=shipped.subject, html=shipped.html, text=None)
    )
    for plan in ("Pro", "Free"):
        context = {**BUILTINS, "first_name": "Zoë", "city": "Kraków", "plan": plan}

        rendered = compiled.render(context)

        expected = html_to_text(compile_template(shipped.html).render(context).html)
        assert rendered.text == expected


def test_derived_text_follows_the_template_logic() -> None:
    compiled = compile_template(
        "<p>Hi {{ first_name }}.</p>\n"
        '{%- if plan == "pro" -%}\n<p>Thanks for Pro.</p>\n{%- else -%}\n<p>Try Pro.</p>\n'
        "{%- endif -%}\n"
        "<ul>{% for item in ['a', 'b'] %}<li>{{ item }}</li>{% endfor %}</ul>"
    )

    pro = compiled.render({"first_name": "Ann", "plan": "pro"}).text
    free = compiled.render({"first_name": "Bob", "plan": "free"}).text

    assert pro == "Hi Ann.\n\nThanks for Pro.\n\n  - a\n  - b\n"
    assert free == "Hi Bob.\n\nTry Pro.\n\n  - a\n  - b\n"


def test_a_loop_inside_an_ordered_list_numbers_every_item() -> None:
    compiled = compile_template("<ol>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ol>")

    assert compiled.render({"items": ["a", "b", "c"]}).text == "  1. a\n  2. b\n  3. c\n"


def test_jinja_inside_a_tag_still_gives_the_right_text() -> None:
    compiled = compile_template('<p {% if vip %}class="vip"{% endif %}>Hi {{ first_name }}</p>')

    assert compiled.render({"first_name": "Ann", "vip": True}).text == "Hi Ann\n"
    assert compiled.render({"first_name": "Bob", "vip": False}).text == "Hi Bob\n"


# --- the shipped templates ----------------------------------------------------------------------


def test_the_newsletter_renders_per_plan_with_inlined_styles() -> None:
    compiled = CompiledTemplate(load_template("newsletter", TEMPLATES_DIR))
    context = {**BUILTINS, "first_name": "Ann", "city": "Lyon"}

    pro = compiled.render({**context, "plan": "Pro"})
    free = compiled.render({**context, "plan": "Free"})

    assert pro.subject == "Ann, your Pro update from Northwind"
    assert free.subject == "Ann, your monthly update from Northwind"
    assert 8_000 <= len(pro.html.encode()) <= 10_500
    assert "Thanks for being on Pro." in pro.html
    assert "Thanks for being on Pro." not in free.html
    assert "You are on the Free plan." in free.html
    assert '<a href="https://mail.example.com/u/abc123"' in pro.html
    assert "221 Harbour Street" in pro.html
    assert 'class="button" href="https://northwind.example/whats-new" style="' in pro.html
    assert "@media only screen and (max-width: 620px)" in pro.html
    assert "Thanks for being on Pro." in pro.text
    assert "Unsubscribe: https://mail.example.com/u/abc123" in pro.text
    assert "community meetup in lyon" in pro.text.lower()


def test_the_announcement_text_part_is_derived_and_readable() -> None:
    compiled = CompiledTemplate(load_template("announcement", TEMPLATES_DIR))

    rendered = compiled.render({**BUILTINS, "first_name": "Ann"})

    assert rendered.subject == "Ann, meet Northwind Flows: automation without the busywork"
    lines = rendered.text.splitlines()
    assert "Hi Ann," in lines
    assert "Build your first flow (https://northwind.example/flows)" in lines
    assert "Unsubscribe (https://mail.example.com/u/abc123) · Email preferences" in lines
    assert "Describe a routine once" not in rendered.text  # the hidden preheader
    assert all(len(line) <= 78 for line in lines)
    for noise in ("**", "](", "[", "#", "\\", "  \n"):
        assert noise not in rendered.text


# --- bounded cost -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("costly", "limit"),
    [
        ("{{ 10 ** (10 ** 10) }}", "exponent too large (limit 10000)"),
        ("{{ (10 ** 5000) ** 30 }}", "number too large (limit 100000 bits)"),
        ("{{ 'a' * 10 ** 9 }}", "repeated text or list too long (limit 1000000)"),
        ("{{ [1] * 10 ** 9 }}", "repeated text or list too long (limit 1000000)"),
        ("{{ ('a' * 999999) ~ ('b' * 999999) + 'c' }}", "joined text or list too long"),
        ("{{ '%999999999d' % 1 }}", "format width too large (limit 10000)"),
        ("{{ '%999999999d' | format(1) }}", "format width too large (limit 10000)"),
        ("{{ 'a' | center(999999999) }}", "centered text too long (limit 1000000)"),
        ("{{ [1] | batch(999999999, 0) | list }}", "batch too long (limit 1000000)"),
        ("{{ 'a'.ljust(10 ** 7) }}", "result of a call too long (limit 1000000)"),
        ("{{ lipsum(10 ** 6) }}", "lipsum: too long"),
        ("{% for i in range(10 ** 6) %}{% endfor %}", "range too long (limit 10000 items)"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "loops over range() ran too many times (limit 100000 items per message)",
        ),
        (
            "{% for i in range(5000) %}{{ 'x' * 1000 }}{% endfor %}",
            "output too large (limit 2000000 characters)",
        ),
    ],
)
def test_a_costly_construct_is_refused_naming_the_limit_and_line(costly: str, limit: str) -> None:
    message = template_error(f"<p>Hello</p>\n<p>\n{costly}</p>")

    assert message.startswith("t/body.html:3: ")
    assert limit in message


def test_constant_expressions_are_not_computed_while_compiling() -> None:
    # Jinja folds constant expressions at compile time; an intercepted operator never is, so
    # compiling must not try 10 ** 10 ** 10 (or this test would not finish).
    compiled = compile_template(
        "<p>{{ 10 ** (10 ** 10) }}</p>\n<p>{{ 'a' | center(9999999999) }}</p>"
    )

    with pytest.raises(TemplateError, match=r"^t/body.html:1: exponent too large"):
        compiled.render({})


def test_limits_leave_ordinary_arithmetic_and_loops_alone() -> None:
    compiled = compile_template(
        "<p>x</p>",
        text="{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [0] * 2 }} {{ 'a' + 'b' }} {{ '%05d' % 42 }} "
        "{{ 7 % 3 }}{% for i in range(3) %} {{ i }}{% endfor %}",
    )

    assert compiled.render({}).text == "1024 ababab [0, 0] ab 00042 1 0 1 2"
