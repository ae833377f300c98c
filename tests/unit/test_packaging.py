"""Where the example templates are found: the checkout's folder people edit, else the copy an
installed wheel carries (``.ci/bare_install_demo`` runs the demo from such an install)."""

from __future__ import annotations

from pathlib import Path

from campaigns.core.settings import PROJECT_ROOT, Settings, example_templates_dir


def test_a_checkout_uses_its_top_level_templates_folder() -> None:
    assert Settings().templates_dir == PROJECT_ROOT / "templates"
    assert (Settings().templates_dir / "newsletter" / "subject.txt").is_file()


def test_an_installed_copy_uses_the_templates_inside_the_package(tmp_path: Path) -> None:
    site_packages = tmp_path / "site-packages"
    installed = site_packages / "campaigns" / "content" / "example_templates"
    installed.mkdir(parents=True)
    # Another distribution's stray top-level folder of the same name is not a checkout.
    (site_packages / "templates").mkdir()

    assert example_templates_dir(site_packages) == installed
