"""Every relative link in the guide pages (README, ARCHITECTURE, docs/, book/, benchmarks/)
resolves inside the repository: the file exists, and a ``page.md#anchor`` names a heading of
that page (GitHub's anchor for it) or a MyST label ``(anchor)=``."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "ARCHITECTURE.md", "docs/*.md", "book/*.md", "benchmarks/README.md"]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
LABEL = re.compile(r"^\(([\w-]+)\)=\s*$", re.M)


def pages() -> list[Path]:
    return sorted({p for pattern in PAGES for p in ROOT.glob(pattern)})


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to
    hyphens."""
    text = re.sub(r"`|\*\*|__|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {anchor(h) for h in HEADING.findall(text)} | set(LABEL.findall(text))


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link or image of ``page`` that does not resolve, with why."""
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)            # inline code is not a link
    broken = []
    for target in [*LINK.findall(text), *IMAGE.findall(text)]:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or "{{" in target:
            continue                                  # a URL, or filled in when the book builds
        path, _, name = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(root):
            broken.append(f"{target}: outside the repository")
        elif not file.exists():
            broken.append(f"{target}: no such file")
        elif name and file.suffix == ".md" and name not in anchors(file):
            broken.append(f"{target}: no heading or label #{name} in {file.name}")
    return broken


def test_the_pages_are_found():
    found = {p.relative_to(ROOT).as_posix() for p in pages()}
    assert {"README.md", "ARCHITECTURE.md", "benchmarks/README.md", "book/method.md"} <= found


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n(a-label)=\n## Its part\n")
    readme = tmp_path / "README.md"
    readme.write_text("[ok](docs/page.md) [ok](docs/page.md#its-part) [ok](docs/page.md#a-label)"
                      " [ok](#the-guide) [web](https://example.org/x.md) `[code](nowhere.md)`\n"
                      "# The guide\n[gone](docs/gone.md) [wrong](docs/page.md#no-part) "
                      "![figure](img/missing.png) [up](../../etc/passwd)\n")
    assert broken_links(readme, tmp_path) == [
        "docs/gone.md: no such file",
        "docs/page.md#no-part: no heading or label #no-part in page.md",
        "../../etc/passwd: outside the repository",
        "img/missing.png: no such file"]


def test_github_anchors():
    assert anchor("The paper's data") == "the-papers-data"
    assert anchor("Speed and precision") == "speed-and-precision"
    assert anchor("`make bench`: speed ratios") == "make-bench-speed-ratios"
