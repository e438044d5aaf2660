"""The manual's screenshots: every image a doc links exists, and every file in docs/images is
linked from some doc (so a renamed screen does not leave a broken picture in the teachers'
manual, nor an orphan PNG in the repository). The images are committed on purpose (issue 22);
they stay small so the repository does not grow with every new screenshot."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
IMAGES = "images"
# ![alt](target) and ![alt](target "title"); the target up to the first space or ")".
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MAX_IMAGE = 150 * 1024
MAX_TOTAL = 1536 * 1024


def image_links(docs: Path) -> dict[Path, list[Path]]:
    """For each markdown file under ``docs``, the local images it links (resolved paths)."""
    out: dict[Path, list[Path]] = {}
    for doc in sorted(docs.rglob("*.md")):
        targets = [t for t in IMAGE_LINK.findall(doc.read_text("utf-8"))
                   if "://" not in t and not t.startswith("data:")]
        out[doc] = [(doc.parent / t.split("#")[0]).resolve() for t in targets]
    return out


def broken_links(docs: Path) -> list[str]:
    return [f"{doc.relative_to(docs)} -> {target}"
            for doc, targets in image_links(docs).items()
            for target in targets if not target.is_file()]


def unlinked_images(docs: Path) -> list[str]:
    linked = {t for targets in image_links(docs).values() for t in targets}
    folder = docs / IMAGES
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return [str(p.relative_to(docs)) for p in files if p.resolve() not in linked]


def test_every_linked_image_exists() -> None:
    assert broken_links(DOCS) == []


def test_every_image_in_docs_images_is_linked() -> None:
    assert unlinked_images(DOCS) == []


def test_the_teachers_manual_shows_its_screens() -> None:
    """The manual in docs/staff.md links its screenshots (so the two checks above are not
    vacuously true), and the images stay small PNGs."""
    staff = image_links(DOCS)[DOCS / "staff.md"]
    names = {p.name for p in staff}
    for screen in ("login.png", "dashboard.png", "compose.png", "confirm-preview.png",
                   "broadcast-failed-filter.png", "resend-confirm.png", "survey.png",
                   "reports.png", "registration-rate.png", "roster-import-preview.png"):
        assert screen in names, f"docs/staff.md does not show {screen}"
    files = [p for p in (DOCS / IMAGES).iterdir() if p.is_file()]
    for p in files:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{p.name} is not a PNG"
        assert p.stat().st_size <= MAX_IMAGE, f"{p.name} is over {MAX_IMAGE // 1024} KB"
    assert sum(p.stat().st_size for p in files) <= MAX_TOTAL


def test_the_checks_notice_a_missing_and_an_orphan_image(tmp_path: Path) -> None:
    (tmp_path / IMAGES).mkdir()
    (tmp_path / IMAGES / "shown.png").write_bytes(b"png")
    (tmp_path / IMAGES / "orphan.png").write_bytes(b"png")
    (tmp_path / "manual.md").write_text(
        "![ok](images/shown.png)\n![gone](images/renamed.png \"title\")\n"
        "![remote](https://example.jp/x.png)\n", "utf-8")
    missing = (tmp_path / IMAGES / "renamed.png").resolve()
    assert broken_links(tmp_path) == [f"manual.md -> {missing}"]
    assert unlinked_images(tmp_path) == ["images/orphan.png"]
