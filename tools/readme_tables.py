"""Write a generated table into the README between its markers (repository tooling, not installed):

python -m tools.readme_tables claims runs/bench/<dataset>-<protocol>/results.json [--speed figures/bench_speed.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cilf.bench.claims import claims_markdown, claims_table, read_result, read_speed
from cilf.io import write_text

BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def update_readme(readme_path: str | Path, markdown: str) -> bool:
    """Replace what lies between ``<!-- claims:begin -->`` and ``<!-- claims:end -->`` in ``readme_path`` by
    ``markdown``; returns whether the file changed. Both markers must be there once, in that order."""
    path = Path(readme_path)
    text = path.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(
            f"{path} needs the lines {BEGIN} and {END}, once each and in that order, around the "
            "claims table; add them where the table belongs"
        )
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    new = f"{head}{BEGIN}\n{markdown.strip()}\n{END}{tail}"
    if new == text:
        return False
    write_text(path, new)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.readme_tables")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("claims", help="the claims table of a benchmark result, between the README's claims markers")
    c.add_argument("results")
    c.add_argument("--speed", default=None)
    args = ap.parse_args(argv)
    rows = claims_table(read_result(args.results), read_speed(args.speed) if args.speed else None)
    changed = update_readme(README, claims_markdown(rows))
    print(f"{README}: {'claims table written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
