"""Installing the project (`make setup`, `make demo`) prints no packaging warning."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression_for_a_setuptools_that_reads_it():
    # A TOML table here makes setuptools print "project.license as a TOML table is deprecated".
    data = pyproject()
    assert data["project"]["license"] == "MIT"
    assert not any("License ::" in c for c in data["project"].get("classifiers", []))
    (setuptools,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert minimum is not None
    assert int(minimum.group(1)) >= 77  # the first to accept SPDX license expressions


def test_editable_install_is_a_plain_path_entry():
    # Without package-dir {"" = "."}, setuptools installs a meta path finder and pip shows its
    # "Please be careful with folders ... same name as your package" warning.
    assert pyproject()["tool"]["setuptools"]["package-dir"] == {"": "."}


def test_the_dashboard_s_templates_and_stylesheet_are_package_data():
    # A wheel built without them would serve every page as a 500 (checked by building one once).
    from fnmatch import fnmatch

    patterns = pyproject()["tool"]["setuptools"]["package-data"]["bot.web"]
    web = ROOT / "bot" / "web"
    shipped = [p for p in web.rglob("*") if p.is_file() and p.suffix in (".html", ".css")]
    assert len(shipped) > 10
    for path in shipped:
        relative = path.relative_to(web).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative
