"""Email templates: every journey's email renders for a lead with nothing
known about it, and every marketing email carries the footer."""

from pathlib import Path

import pytest

from activities.email import TemplateRenderer
from core.catalog import SCORING_FILE, load_journey
from models.journey import EmailStep
from tests.email_fixtures import POSTAL_ADDRESS, TEMPLATES

JOURNEYS_DIR = TEMPLATES.parent
LINK = "http://127.0.0.1:9/unsubscribe/7?token=abc"


def footer_context(**fields: object) -> dict[str, object]:
    context: dict[str, object] = {
        "first_name": None,
        "last_name": None,
        "attributes": {},
        "unsubscribe_url": LINK,
        "postal_address": POSTAL_ADDRESS,
    }
    context.update(fields)
    return context


def journey_email_steps() -> list[tuple[str, EmailStep]]:
    steps: list[tuple[str, EmailStep]] = []
    for path in sorted(JOURNEYS_DIR.glob("*.yaml")):
        if path.name == SCORING_FILE:
            continue
        journey = load_journey(JOURNEYS_DIR, path.stem)
        steps += [
            (journey.name, step)
            for step in journey.steps
            if isinstance(step, EmailStep)
        ]
    return steps


@pytest.mark.parametrize(
    ("journey", "step"),
    journey_email_steps(),
    ids=lambda value: value if isinstance(value, str) else value.id,
)
def test_every_journey_email_renders_for_an_unknown_lead_with_its_footer(
    journey: str, step: EmailStep
) -> None:
    renderer = TemplateRenderer(TEMPLATES)

    rendered = renderer.render(step.template, step.subject, footer_context())

    assert rendered.subject
    assert "None" not in rendered.subject
    assert "None" not in rendered.text
    assert rendered.text.count(LINK) == 1
    assert POSTAL_ADDRESS in rendered.text
    if rendered.html is not None:
        assert LINK in rendered.html


def test_template_without_a_footer_gets_one_appended(tmp_path: Path) -> None:
    for name in ("_footer.txt.j2", "_footer.html.j2"):
        (tmp_path / name).write_text((TEMPLATES / name).read_text())
    (tmp_path / "bare.txt.j2").write_text("Hello {{ first_name or 'you' }}.\n")
    (tmp_path / "bare.html.j2").write_text("<p>Hello</p>\n")
    renderer = TemplateRenderer(tmp_path)

    rendered = renderer.render("bare", "Hi", footer_context())

    assert rendered.text.startswith("Hello you.\n--\n")
    assert rendered.text.rstrip().endswith(f"Unsubscribe with one click: {LINK}")
    assert rendered.html is not None
    assert f'<a href="{LINK}">' in rendered.html


def test_missing_attributes_render_empty_even_through_chains(tmp_path: Path) -> None:
    (tmp_path / "chain.txt.j2").write_text(
        "[{{ attributes.company.name }}][{{ attributes.plan or 'free' }}] "
        "{{ unsubscribe_url }}"
    )
    renderer = TemplateRenderer(tmp_path)

    rendered = renderer.render("chain", "Hi {{ nobody }}", footer_context())

    assert rendered.text == f"[][free] {LINK}"
    assert rendered.subject == "Hi"


def test_subject_comes_from_the_subject_file_when_the_step_has_none(
    tmp_path: Path,
) -> None:
    (tmp_path / "news.txt.j2").write_text("News. {{ unsubscribe_url }}")
    (tmp_path / "news.subject.j2").write_text("News for {{ first_name or 'you' }}\n")
    renderer = TemplateRenderer(tmp_path)

    rendered = renderer.render("news", "", footer_context(first_name="Åsa"))

    assert rendered.subject == "News for Åsa"


def test_line_breaks_in_a_subject_cannot_add_headers(tmp_path: Path) -> None:
    (tmp_path / "x.txt.j2").write_text("x {{ unsubscribe_url }}")
    renderer = TemplateRenderer(tmp_path)

    rendered = renderer.render(
        "x", "Hi {{ first_name }}", footer_context(first_name="A\r\nBcc: b@example.com")
    )

    assert rendered.subject == "Hi A Bcc: b@example.com"
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject


def test_html_part_escapes_lead_fields(tmp_path: Path) -> None:
    (tmp_path / "h.txt.j2").write_text("{{ unsubscribe_url }}")
    (tmp_path / "h.html.j2").write_text("<p>{{ first_name }}</p>{{ unsubscribe_url }}")
    renderer = TemplateRenderer(tmp_path)

    rendered = renderer.render("h", "Hi", footer_context(first_name="<b>x</b>"))

    assert rendered.html is not None
    assert rendered.html.startswith("<p>&lt;b&gt;x&lt;/b&gt;</p>")
