"""The repository stands alone: its design is inside it, and nothing points outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "node_modules", "build", "dist", "data", "__pycache__"}
TEXT = {".md", ".py", ".toml", ".txt", ".cfg", ".ini", ".html", ".js", ".css", ".csv", ""}


def _repository_files() -> list[Path]:
    """Return the repository's text files, without virtualenvs, caches and build output."""
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file()
        and path.suffix in TEXT
        and not any(part in SKIP or part.endswith((".egg-info", "_cache")) for part in path.parts)
    ]


def test_the_readme_points_to_the_design_inside_the_repository():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)", readme)
    assert "docs/design.md" in links
    for link in links:
        if not link.startswith(("http://", "https://", "mailto:")):
            assert (ROOT / link).exists(), link
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert "## Layers" in design
    assert "## Testing, in three rings" in design


def test_nothing_points_outside_the_repository():
    outside = [
        str(path.relative_to(ROOT))
        for path in _repository_files()
        if "../shared" in path.read_text(encoding="utf-8", errors="replace")
        and path != Path(__file__).resolve()
    ]
    assert outside == []
