"""Write a generated table into the README between its markers (repository tooling, not installed):

python -m tools.readme_tables findings NAME [--speed SPEED]   # from results/NAME.json (and results/SPEED.json)
python -m tools.readme_tables claims runs/bench/<dataset>-<protocol>/results.json [--speed figures/bench_speed.json]

``findings`` is how the README's table is made: from the results registry, so the file and the command behind
every number are named beside it (tests/test_results_registry.py checks that the README holds what it generates).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cilf.bench.claims import VERDICTS, claims_markdown, claims_table, read_result, read_speed
from cilf.io import write_text

BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "results"


def registry_entry(name: str) -> dict:
    """``results/NAME.json`` (tools/results.py): {name, command, commit, machine, seconds, recorded, result}."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; record it with `python -m tools.results run {name} ...`")
    return json.loads(path.read_text(encoding="utf-8"))


def _made_by(entry: dict) -> str:
    m = entry["machine"]
    return (
        f"[results/{entry['name']}.json](results/{entry['name']}.json): `{entry['command']}` at commit "
        f"{entry['commit'][:10]}, {entry['recorded']}, {m['cpu']} ({m['cores']} cores), {entry['seconds'] / 60:.0f} min"
    )


def findings_markdown(name: str, speed: str | None = None) -> str:
    """The README's findings block: the claims table of the registry result ``name`` (a saved benchmark), the cost
    ratios from the registry's bench-speed result ``speed``, the files and commands behind both, and one
    generated line per verdict."""
    entry = registry_entry(name)
    speed_entry = registry_entry(speed) if speed else None
    rows = claims_table(entry["result"], speed_entry["result"] if speed_entry else None)
    lines = [claims_markdown(rows).rstrip(), "", f"*Made by {_made_by(entry)}.*"]
    if speed_entry:
        lines += ["", f"*Cost ratios from {_made_by(speed_entry)}.*"]
    by = {v: [r for r in rows if r["verdict"] == v] for v in VERDICTS}
    said = []
    for v in VERDICTS:
        if by[v]:
            said.append(f"{v}: {len(by[v])} ({', '.join(r['id'] for r in by[v])})")
    lines += ["", "In this table: " + "; ".join(said) + "."]
    nulls = [r for r in by["not resolved"] if r.get("ci_low") is not None]
    if nulls:
        bounds = ", ".join(
            f"{r['id']} {max(abs(r['ci_low']), abs(r['ci_high'])):.2f} y (detectable {r['detectable']:.2f} y)"
            for r in nulls
        )
        lines.append(f"Not resolved means no effect larger than the interval allows either way: {bounds}.")
    return "\n".join(lines) + "\n"


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
    f = sub.add_parser("findings", help="the claims table of a results/ entry, between the README's claims markers")
    f.add_argument("name", help="results/NAME.json: a saved benchmark recorded by tools.results")
    f.add_argument("--speed", default=None, help="results/SPEED.json: a bench-speed result recorded by tools.results")
    c = sub.add_parser("claims", help="the claims table of a benchmark result, between the README's claims markers")
    c.add_argument("results")
    c.add_argument("--speed", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "findings":
        changed = update_readme(README, findings_markdown(args.name, args.speed))
        print(f"{README}: {'findings written' if changed else 'unchanged'}")
        return 0
    rows = claims_table(read_result(args.results), read_speed(args.speed) if args.speed else None)
    changed = update_readme(README, claims_markdown(rows))
    print(f"{README}: {'claims table written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
