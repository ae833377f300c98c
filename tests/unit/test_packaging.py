"""Where the templates folder is: the checkout's folder people edit, else (an installed copy,
which ``.ci/bare_install_demo`` runs the demo from) a folder in the data folder filled once with
the examples the wheel carries, so nothing is ever written into site-packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.content.templating import TemplateSource
from campaigns.core.errors import ConfigError
from campaigns.core.settings import PROJECT_ROOT, Settings
from campaigns.core.templates_location import default_templates_dir, example_templates_dir
from dashboard.template_files import save_template

SHIPPED_SUBJECT = "News for {{ first_name }}\n"


def installed_layout(tmp_path: Path) -> Path:
    """A site-packages folder as the wheel installs it, the examples under the package."""
    site_packages = tmp_path / "site-packages"
    newsletter = site_packages / "campaigns" / "content" / "example_templates" / "newsletter"
    newsletter.mkdir(parents=True)
    (newsletter / "subject.txt").write_text(SHIPPED_SUBJECT)
    (newsletter / "body.html").write_text("<p>Hello {{ first_name }}</p>\n")
    (newsletter.parent / "__init__.py").write_text("")
    # Another distribution's stray top-level folder of the same name is not a checkout.
    (site_packages / "templates").mkdir()
    return site_packages


def files_under(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_checkout_edits_its_top_level_templates_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    assert settings.resolved_templates_dir == PROJECT_ROOT / "templates"
    assert (settings.resolved_templates_dir / "newsletter" / "subject.txt").is_file()
    assert not (tmp_path / "data").exists()


def test_an_installed_copy_carries_its_examples_inside_the_package(tmp_path: Path) -> None:
    site_packages = installed_layout(tmp_path)

    assert example_templates_dir(site_packages) == (
        site_packages / "campaigns" / "content" / "example_templates"
    )


def test_an_installed_copy_edits_templates_in_the_data_folder_not_the_package(
    tmp_path: Path,
) -> None:
    site_packages = installed_layout(tmp_path)
    package_before = files_under(site_packages)
    data_dir = tmp_path / "edm-data"

    templates_dir = default_templates_dir(data_dir, site_packages)
    save_template(
        templates_dir, TemplateSource(name="spring", subject="Spring", html="<p>Hi</p>", text=None)
    )
    save_template(
        templates_dir,
        TemplateSource(name="newsletter", subject="Mine", html="<p>Mine</p>", text=None),
    )

    assert templates_dir == data_dir / "templates"
    assert (templates_dir / "spring" / "body.html").read_text() == "<p>Hi</p>"
    assert (templates_dir / "newsletter" / "subject.txt").read_text() == "Mine\n"
    assert files_under(site_packages) == package_before
    assert not (templates_dir / "__init__.py").exists()


def test_the_examples_are_copied_once_and_never_over_a_persons_edits(tmp_path: Path) -> None:
    site_packages = installed_layout(tmp_path)
    data_dir = tmp_path / "edm-data"
    templates_dir = default_templates_dir(data_dir, site_packages)
    assert (templates_dir / "newsletter" / "subject.txt").read_text() == SHIPPED_SUBJECT
    (templates_dir / "newsletter" / "subject.txt").write_text("Edited\n")
    (templates_dir / "newsletter" / "body.html").unlink()
    # An upgrade brings new examples; the person's folder is theirs now.
    (site_packages / "campaigns" / "content" / "example_templates" / "launch").mkdir()

    assert default_templates_dir(data_dir, site_packages) == templates_dir
    assert (templates_dir / "newsletter" / "subject.txt").read_text() == "Edited\n"
    assert not (templates_dir / "newsletter" / "body.html").exists()
    assert not (templates_dir / "launch").exists()
    assert [path.name for path in data_dir.iterdir()] == ["templates"]


def test_a_data_folder_that_cannot_be_created_is_named_in_the_error(tmp_path: Path) -> None:
    site_packages = installed_layout(tmp_path)
    (tmp_path / "a-file").write_text("")

    with pytest.raises(ConfigError, match=r"a-file/edm-data/templates: cannot create"):
        default_templates_dir(tmp_path / "a-file" / "edm-data", site_packages)


def test_edm_templates_dir_wins_over_both_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"EDM_TEMPLATES_DIR": str(tmp_path / "mine")})

    assert settings.resolved_templates_dir == tmp_path / "mine"
    assert not (tmp_path / "mine").exists()
