"""Every citation in the repository can be followed by its reader: no references to documents outside
the repository or to issue numbers, and every "docs/method.md, section N" names a section that exists."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"
UNFOLLOWABLE = re.compile(r"DESIGN\.md|\b[Ii]ssue [0-9]+\b")
# "docs/method.md, section 7", "docs/method.md, sections 5, 6 and 8", "docs/method.md, sections 1-8"
SECTION_REF = re.compile(r"docs/method\.md,?\s+sections?\s+(\d+(?:\s*(?:,|-|–|and|,\s*and)\s*\d+)*)")
HEADING = re.compile(r"^## (\d+)\. \S", re.MULTILINE)


def tracked_text_files() -> dict[str, str]:
    """{path: text} of every tracked file that is text (binaries: a NUL byte or not UTF-8)."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"not a git checkout ({e})")
    out = {}
    for name in filter(None, names.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            out[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out


def method_sections() -> set[int]:
    return {int(n) for n in HEADING.findall(METHOD.read_text())}


def cited_sections(text: str) -> list[int]:
    """Section numbers of every docs/method.md reference in ``text`` (ranges give both ends)."""
    return [int(n) for m in SECTION_REF.finditer(text) for n in re.findall(r"\d+", m.group(1))]


def test_method_doc_has_every_section_in_order():
    numbers = [int(n) for n in HEADING.findall(METHOD.read_text())]
    assert numbers == list(range(14)), f"docs/method.md sections are {numbers}, expected 0..13 in order"


def test_no_tracked_file_cites_what_a_reader_cannot_open():
    hits = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in tracked_text_files().items()
        for m in UNFOLLOWABLE.finditer(text)
    ]
    assert not hits, "citations a reader cannot follow (point to a docs/method.md section instead):\n" + "\n".join(hits)


def test_every_method_section_reference_exists():
    sections = method_sections()
    refs = {name: cited_sections(text) for name, text in tracked_text_files().items()}
    assert sum(len(v) for v in refs.values()) >= 10, "the code is expected to point into docs/method.md"
    bad = [f"{name}: section {n}" for name, ns in refs.items() for n in ns if n not in sections]
    assert not bad, f"references to sections docs/method.md does not have ({sorted(sections)}):\n" + "\n".join(bad)


def test_the_checks_catch_what_they_are_for():
    design, issue = "DESIGN" + ".md", "is" + "sue"  # split, so that this file passes its own check
    assert UNFOLLOWABLE.search(f"see {design} section 3") and UNFOLLOWABLE.search(f"({issue} 6, item 1)")
    assert UNFOLLOWABLE.search(f"{issue.capitalize()} 12 says")
    assert not UNFOLLOWABLE.search(f"t{issue} 3") and not UNFOLLOWABLE.search("an issue with this")
    assert cited_sections("(docs/method.md, section 7)") == [7]
    assert cited_sections("(docs/method.md, sections 5, 6 and 8)") == [5, 6, 8]
    assert cited_sections("(docs/method.md, sections 1-8)") == [1, 8]
    assert 99 not in method_sections()


def test_every_cilf_name_the_readme_and_docs_mention_resolves():
    """`cilf.a.b.name` and `from cilf.a import x, y` in README.md and docs/*.md name real modules and attributes."""
    import importlib
    import re

    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    names, missing = set(), []
    for path in texts:
        text = path.read_text()
        names |= {m for m in re.findall(r"\bcilf(?:\.[A-Za-z_]\w*)+", text) if not m.endswith((".py", ".json"))}
        for mod, items in re.findall(r"from (cilf(?:\.\w+)*) import ([\w, ]+)", text):
            names |= {f"{mod}.{i.strip()}" for i in items.split(",") if i.strip()}
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ImportError:
                continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            missing.append(name)
    assert len(names) >= 10, sorted(names)
    assert not missing, f"README.md/docs name things that do not exist: {missing}"
