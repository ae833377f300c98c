"""Previews and scheduling checks render in a child process with a CPU-time limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from campaigns.content.isolated_render import render_isolated
from campaigns.content.templating import CompiledTemplate, TemplateSource, load_template
from campaigns.core.errors import TemplateError
from campaigns.core.settings import PROJECT_ROOT

CONTEXT = {
    "email": "ann@example.com",
    "unsubscribe_url": "https://mail.example.com/u/abc123",
    "campaign_name": "Spring news",
    "first_name": "Ann",
    "city": "Lyon",
    "plan": "Pro",
}
# No hook sees an empty loop: a billion passes over a string only the CPU limit stops.
ENDLESS_LOOPS = (
    "<p>Hello</p>\n{% set s = 'x' * 1000 %}\n"
    "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}\n"
)


@pytest.fixture(params=["one thread", "another thread running"])
def caller_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """A CLI command has one thread and forks itself; a web server has more and forks from the
    fork server: both ways must render alike and stop a costly template alike."""
    if request.param == "one thread":
        yield
        return
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="web server stand-in")
    other.start()
    try:
        yield
    finally:
        stop.set()
        other.join()


@pytest.mark.usefixtures("caller_threads")
@pytest.mark.parametrize("name", ["newsletter", "announcement"])
def test_shipped_templates_render_the_same_in_the_child_process(name: str) -> None:
    source = load_template(name, PROJECT_ROOT / "templates")

    assert render_isolated(CompiledTemplate(source), CONTEXT) == CompiledTemplate(source).render(
        CONTEXT
    )


@pytest.mark.usefixtures("caller_threads")
def test_a_render_over_its_cpu_time_is_stopped_naming_the_limit_and_line() -> None:
    source = TemplateSource(name="t", subject="Hi", html=ENDLESS_LOOPS, text=None)

    with pytest.raises(TemplateError) as raised:
        render_isolated(CompiledTemplate(source), {}, cpu_limit_s=0.5)

    assert str(raised.value) == "t/body.html:3: rendering took too long (limit 0.5 s of CPU)"


@pytest.mark.usefixtures("caller_threads")
def test_a_template_error_in_the_child_is_the_same_one_line_error() -> None:
    source = TemplateSource(name="t", subject="Hi", html="<p>\n{{ 'a' * 10 ** 9 }}</p>", text=None)

    with pytest.raises(TemplateError) as raised:
        render_isolated(CompiledTemplate(source), {})

    assert str(raised.value) == "t/body.html:2: repeated text or list too long (limit 1000000)"


@pytest.mark.usefixtures("caller_threads")
def test_a_render_after_a_stopped_one_renders_normally() -> None:
    """A web server's child is kept warm between renders; one that was stopped is replaced."""
    endless = TemplateSource(name="t", subject="Hi", html=ENDLESS_LOOPS, text=None)
    plain = CompiledTemplate(
        TemplateSource(name="p", subject="Hi", html="<p>{{ city }}</p>", text=None)
    )

    renders = [render_isolated(plain, CONTEXT) for _ in range(3)]
    with pytest.raises(TemplateError):
        render_isolated(CompiledTemplate(endless), {}, cpu_limit_s=0.5)

    assert render_isolated(plain, CONTEXT) == renders[0] == plain.render(CONTEXT)
