"""Packaging beyond what pyproject.toml can say: the top-level ``templates/`` folder, which people
edit in a checkout, goes into the wheel as ``campaigns/content/example_templates`` so an installed
copy has the example templates without a second copy of them in git (MANIFEST.in takes their files
into the sdist, and from there into the wheel as package data)."""

from setuptools import find_namespace_packages, setup

EXAMPLE_TEMPLATES_PACKAGE = "campaigns.content.example_templates"

setup(
    packages=[
        *find_namespace_packages(
            include=["campaigns*", "workers*", "dashboard*", "public_endpoints*", "edm*"]
        ),
        EXAMPLE_TEMPLATES_PACKAGE,
        *(f"{EXAMPLE_TEMPLATES_PACKAGE}.{name}" for name in find_namespace_packages("templates")),
    ],
    package_dir={EXAMPLE_TEMPLATES_PACKAGE: "templates"},
)
