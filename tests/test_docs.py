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


# ---- the README is a five-minute read; the reference text lives in docs/ and every link between them holds

README = ROOT / "README.md"
DOC_PAGES = ("cli", "datasets", "notebooks", "performance", "reliability", "micro-clip", "experiments")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# `[page.md](page.md), "Heading"`: a heading of another page cited by its name
PAGE_CITE = re.compile(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\),?\s+\"([^\"]+)\"")
# `README, "Set-up"`, `README's "Claims and verdicts"`, `README "Datasets"` (a name may wrap across lines)
README_CITE = re.compile(r"\bREADME(?:'s|,)?\s+\"([^\"]+)\"")
REPO_PATH = re.compile(r"(?<![\w/.$~-])((?:figures|notebooks|tests|docs)/[\w/.-]*\w)")


def doc_texts() -> dict[Path, str]:
    return {p: p.read_text() for p in [README, *sorted((ROOT / "docs").glob("*.md"))]}


def headings(text: str) -> list[str]:
    """Every markdown heading's text, outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.+)", line)):
            out.append(m.group(1).strip())
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def cites(heading_list: list[str], name: str) -> bool:
    name = " ".join(name.split())
    return any(h == name or h.startswith(name) for h in heading_list)


def test_readme_is_a_five_minute_read_with_the_findings_first():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move reference text to docs/ (at most 200)"
    first = "\n".join(lines[:80])
    assert "## Findings" in first, "the findings belong in the README's first 80 lines"
    assert "| claim (paper) |" in first and "Notebook 06" in first, "the claims table, with the notebook that shows it"
    assert "results/claims_synthage_5fold.json" in first, "the run behind the table, named beside it"
    assert "SynthAge (synthetic)" in first, "the findings say which data they come from"


def test_readme_gives_the_two_set_up_commands_and_where_their_times_are():
    text = README.read_text()
    setup = text[text.index("## Set-up") :]
    setup = setup[: setup.index("\n## ", 1)]
    block = re.search(r"```bash\n(.*?)```", setup, re.DOTALL).group(1)
    assert [line.split("#")[0].strip() for line in block.splitlines()] == ["./run_all.sh", "./run_all.sh test"]
    assert "<!-- timings:begin -->" in setup and "results/whole_job_cold.json" in setup, "the measured cold times"
    assert "Cold times on the 2-core reference machine" in headings((ROOT / "docs" / "performance.md").read_text())


def test_readme_maps_every_notebook():
    text = README.read_text()
    missing = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9]*.py")) if f"`{p.stem}`" not in text]
    assert not missing, f"notebooks missing from the README's notebook map: {missing}"


def test_every_docs_page_exists_with_one_title_and_is_linked_from_the_readme():
    readme = README.read_text()
    for name in DOC_PAGES:
        page = ROOT / "docs" / f"{name}.md"
        assert page.is_file(), f"docs/{name}.md is missing"
        titles = [line for line in page.read_text().splitlines() if line.startswith("# ")]
        assert len(titles) == 1 and page.read_text().startswith("# "), f"docs/{name}.md: one title, first: {titles}"
        assert f"(docs/{name}.md)" in readme, f"the README does not link docs/{name}.md"


def test_every_sub_command_is_documented_in_the_cli_page():
    import argparse

    from cilf.cli import build_parser

    def names(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    nested = list(names(sub, f"{prefix} {name}"))
                    yield from nested or [f"{prefix} {name}"]

    commands = list(names(build_parser(), "python -m cilf"))
    assert len(commands) >= 12 and "python -m cilf data check" in commands, commands
    cli = (ROOT / "docs" / "cli.md").read_text()
    missing = [c for c in commands if not re.search(re.escape(c) + r"(?![\w-])", cli)]
    assert not missing, f"sub-commands docs/cli.md does not document: {missing}"


def test_every_relative_link_in_the_readme_and_docs_resolves():
    bad = []
    for path, text in doc_texts().items():
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in {slug(h) for h in headings(dest.read_text())}:
                bad.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not bad, "links that lead nowhere:\n" + "\n".join(bad)


def test_every_repository_path_the_readme_and_docs_name_exists():
    """figures/, notebooks/, tests/ and docs/ paths (cilf/ and tools/: tests/test_architecture.py); NN_ is a pattern."""
    missing = {
        f"{path.relative_to(ROOT)}: {m}"
        for path, text in doc_texts().items()
        for m in REPO_PATH.findall(text)
        if "NN_" not in m and not (ROOT / m).exists()
    }
    assert not missing, f"paths that do not exist: {sorted(missing)}"


def test_headings_cited_by_name_exist():
    """`[page.md](page.md), "Heading"` in README/docs names a heading of that page; `README, "Section"` in any
    tracked file names a README heading (a section that moved to docs/ must be cited there instead)."""
    bad = []
    for path, text in doc_texts().items():
        for file, name in PAGE_CITE.findall(text):
            dest = (path.parent / file).resolve()
            if dest.exists() and not cites(headings(dest.read_text()), name):
                bad.append(f"{path.relative_to(ROOT)}: {file}, {name!r}")
    assert not bad, "headings cited that the page does not have:\n" + "\n".join(bad)


def test_readme_sections_cited_in_the_repository_exist():
    readme = headings(README.read_text())
    bad = [
        f"{name}: README {' '.join(m.group(1).split())!r}"
        for name, text in tracked_text_files().items()
        if name not in ("README.md", "tests/test_docs.py")
        for m in README_CITE.finditer(text)
        if not cites(readme, m.group(1))
    ]
    assert not bad, "README sections cited that the README does not have:\n" + "\n".join(bad)


def test_the_doc_checks_catch_what_they_are_for():
    assert slug("Real data, real CLIP weights, GPUs") == "real-data-real-clip-weights-gpus"
    assert (
        slug("13. Deviations") == "13-deviations"
        and slug("Every claim to within ±0.1 y") == "every-claim-to-within-01-y"
    )
    assert headings("# T\n```\n# not a heading\n```\n## Set-up: two commands\n") == ["T", "Set-up: two commands"]
    assert cites(["Set-up: two commands"], "Set-up") and not cites(["Layout"], "Deviations and choices of ours")
    assert cites(["Claims and verdicts"], "Claims and\n  verdicts")
    assert [
        m.group(1) for m in README_CITE.finditer('(see README, "Deviations and\n  choices") README\'s "Layout"')
    ] == [
        "Deviations and\n  choices",
        "Layout",
    ]
    assert PAGE_CITE.findall('[experiments.md](experiments.md), "Mechanisms broken"') == [
        ("experiments.md", "Mechanisms broken")
    ]
    assert LINK.findall("![fig](figures/a.png) and [x](docs/b.md#c)") == ["figures/a.png", "docs/b.md#c"]
    assert REPO_PATH.findall("`figures/06_claims.md` and ../figures/x.png") == ["figures/06_claims.md"]
