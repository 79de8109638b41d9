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

from cilf.bench.claims import (
    CONTROL_RUNS,
    NOT_TESTABLE,
    VERDICTS,
    claims_markdown,
    claims_table,
    control_run,
    null_bound,
    read_controls,
    read_result,
    read_speed,
)
from cilf.bench.recalibration import FORMS_COLUMNS, ci_cell, forms_table_rows
from cilf.bench.speed import format_report
from cilf.io import write_text
from cilf.persist.factory import MODEL_CONFIG_DIR

BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"  # the claims table's markers (markers("claims"))
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


def mixing_line(entries: list[dict]) -> str:
    """One generated line: FourierFormer against attention on the token-grid tasks where mixing must work, from
    one or more ``bench-mixing`` results (their rows in N order; a run that chose each mixer's learning rate on
    validation, ``--lrs``, after the one-rate run at the same N)."""
    cells = [(r, e["result"]["config"]) for e in entries for r in e["result"]["rows"]]
    seeds = [cfg["seeds"] for _, cfg in cells]
    most_seeds = max(seeds, key=seeds.count)
    cells.sort(key=lambda c: (c[0]["tokens"], len(c[1].get("lrs", ())) > 1))
    words = {"supported": "a match", "contradicted": "no match", "not testable here": "not testable here"}
    by_task: dict[str, list[str]] = {}
    ratios: dict[tuple[int, bool], list[float]] = {}
    for r, cfg in cells:
        mae, secs, fused = r["mae"], r["seconds_per_run"], bool(cfg.get("fused_attention"))
        better = {"fourier": ", FourierFormer better", "attention": ", attention better"}.get(r.get("better"), "")
        how = ", each mixer's peak lr chosen on validation" if len(cfg.get("lrs", ())) > 1 else ""
        how += ", attention by fused SDPA" if fused else ""
        how += f", {cfg['seeds']} seeds" if cfg["seeds"] != most_seeds else ""
        by_task.setdefault(r["task"], []).append(
            f"N = {r['tokens']}{how}: {mae['fourier']:.3f} / {mae['attention']:.3f} / {mae['none']:.3f}, "
            f"{words.get(r['verdict'], r['verdict'])}{better} ({r['claim']['text']})"
        )
        ratios.setdefault((r["tokens"], fused), []).append(secs["fourier"] / secs["attention"])
    rows = [r for r, _ in cells]
    matched = sum(r["verdict"] == "supported" for r in rows)
    names = {"context": "Content-based lookup", "offset": "Fixed long-range offset"}
    tasks = " ".join(f"{names.get(t, t)}: " + "; ".join(v) + "." for t, v in by_task.items())
    times = ", ".join(
        (f"{min(v):.2f}" if f"{min(v):.2f}" == f"{max(v):.2f}" else f"{min(v):.2f}-{max(v):.2f}")
        + f"x at N = {n}"
        + (" (fused SDPA's)" if is_fused else "")
        for (n, is_fused), v in sorted(ratios.items())
    )
    # a run's training minutes: what its runs took (reused runs as measured when computed), else its wall time
    minutes = lambda e: e["result"].get("train_seconds", e["seconds"]) / 60  # noqa: E731
    files = ", ".join(f"[{e['name']}](results/{e['name']}.json) ({minutes(e):.0f} min)" for e in entries)
    return (
        "Where token mixing must work (constructed token grids, not faces; `python -m cilf bench-mixing`, "
        f"{most_seeds} seeds unless stated, "
        f"commands and commits in {files}), FourierFormer matches attention in {matched} of {len(rows)} task x N "
        "cells (margin: a tenth of the no-mixing gap, set on validation). Test MAE FourierFormer / attention / no "
        f"mixing, then FourierFormer - attention [95% CI]: {tasks} FourierFormer's training time as a share of "
        f"attention's: {times}."
    )


MICRO = json.loads((MODEL_CONFIG_DIR / "cilf-micro.json").read_text())["vision_cfg"]  # image_size, patch_size


CLIPS = {"bundled-web": "web-caption micro-CLIP", "bundled": "exact-caption micro-CLIP"}


def faces_line(entries: list[dict], speed: dict | None = None) -> str:
    """One generated line: the claim's own comparison on SynthAge faces at each token grid. ``entries``: per grid
    (in N order) a pair of ``bench`` results of the same runs, one with FourierFormer as the reference (variants
    full, mixer=attention, mixer=none) and one with no mixing as the reference (``--set mixer=none``, variants
    full, mixer=attention; ``image_size`` in the model overrides gives the grid): each mixer's MAE, attention -
    no mixing (does mixing do work here?), FourierFormer - no mixing, FourierFormer - attention, each with its
    paired 95% CI and whether it excludes 0, the FourierFormer claim's verdict by the claims table's rule
    (cilf.bench.claims, cost ratios from ``speed``), and FourierFormer's training time as a share of attention's."""

    def diff(m: dict, sign: int = 1) -> str:  # m: a method's row, its delta = method - reference
        est, (lo, hi) = sign * m["delta_mae"], sorted(sign * x for x in m["delta_ci"])
        return f"{est:+.2f} [{lo:.2f}, {hi:.2f}] " + ("resolved" if lo > 0 or hi < 0 else "not resolved")

    cells, files, settings = [], [], set()
    for e, e_none in zip(entries[::2], entries[1::2]):
        res, m, m_none = e["result"], e["result"]["methods"], e_none["result"]["methods"]
        model = res["bench_config"]["model"]
        if model.get("clip_model", "cilf-micro") != "cilf-micro":
            raise ValueError(f"{e['name']}: the faces line reads micro-CLIP grids, not {model['clip_model']}")
        settings.add((CLIPS.get(model.get("pretrained", "bundled"), model.get("pretrained")), model.get("correction")))
        side = model.get("image_size") or MICRO["image_size"]
        g = side // MICRO["patch_size"]
        how = f"{side}-px input" + (
            f", position embeddings interpolated to {g} x {g}" if side != MICRO["image_size"] else ", its own grid"
        )
        (row,) = [r for r in claims_table(res, speed) if r["id"] == "fourierformer"]
        cells.append(
            f"N = {g * g} ({how}): {m['full']['mae']:.2f} / {m['mixer=attention']['mae']:.2f} / "
            f"{m['mixer=none']['mae']:.2f} y; {diff(m_none['mixer=attention'])}; {diff(m['mixer=none'], -1)}; "
            f"{diff(m['mixer=attention'], -1)}; by the claims table's rule: {row['verdict']}; FourierFormer's "
            f"training time {m['full']['seconds'] / m['mixer=attention']['seconds']:.2f}x attention's"
        )
        files += [f"[{x['name']}](results/{x['name']}.json) ({x['seconds'] / 60:.0f} min)" for x in (e, e_none)]
    ((clip, correction),) = settings  # one backbone and one estimate for every grid, or the line would mislead
    estimate = "the first estimate y0 with the correction off" if correction is False else "the corrected estimate"
    design = {(e["result"]["seeds"], e["result"]["folds"]) for e in entries}
    return (
        f"On SynthAge faces, the claim's own comparison at ViT-B/16's N = 196 (`python -m cilf bench`, {clip}, "
        f"{estimate}, "
        + "; ".join(f"{s} seeds x {f} splits" for s, f in sorted(design))
        + f"; commands and commits in {', '.join(files)}). MAE FourierFormer / attention / no mixing, then attention "
        "- no mixing (the room mixing has: a reading added after the first run), FourierFormer - no mixing (the "
        "claims table's control) and FourierFormer - attention, y [95% CI over subjects x seeds]: "
        + ". ".join(cells)
        + "."
    )


def findings_markdown(
    name: str,
    speed: str | None = None,
    controls: tuple[str, ...] | str = (),
    mixing: tuple[str, ...] = (),
    faces: tuple[str, ...] = (),
) -> str:
    """The README's findings block: the claims table of the registry result ``name`` (a saved benchmark), the cost
    ratios from the registry's bench-speed result ``speed``, the positive controls from the registry's control
    runs ``controls`` (cilf.bench.claims.CONTROL_RUNS), the files and commands behind each, one generated line
    per verdict, and the lines of the mixing runs ``mixing`` (:func:`mixing_line`) and of the face runs at each
    grid ``faces`` (:func:`faces_line`)."""
    entry = registry_entry(name)
    speed_entry = registry_entry(speed) if speed else None
    control_entries = [registry_entry(c) for c in ((controls,) if isinstance(controls, str) else controls)]
    rows = claims_table(
        entry["result"],
        speed_entry["result"] if speed_entry else None,
        controls=[c["result"] for c in control_entries],
    )
    if mixing:  # the FourierFormer row is read on SynthAge's 8 x 8 grid: say where its larger N are
        for r in rows:
            if r["id"] == "fourierformer":
                r["note"] = (r["note"] + "; " if r["note"] else "") + (
                    ("the same comparison on faces at N = 196, " if faces else "")
                    + "accuracy and training time at N = 64 to 784 where mixing must work, and the crossover N: "
                    "the lines under this table"
                )
    lines = [claims_markdown(rows).rstrip(), "", f"*Made by {_made_by(entry)}.*"]
    if speed_entry:
        lines += ["", f"*Cost ratios from {_made_by(speed_entry)}.*"]
    if control_entries:
        made = "; ".join(f"with {CONTROL_RUNS[control_run(c['result'])][1]}, {_made_by(c)}" for c in control_entries)
        lines += ["", f"*Controls {made}.*"]
    by = {v: [r for r in rows if r["verdict"] == v] for v in VERDICTS}
    said = []
    for v in VERDICTS:
        if by[v]:
            said.append(f"{v}: {len(by[v])} ({', '.join(r['id'] for r in by[v])})")
    lines += ["", "In this table: " + "; ".join(said) + "."]
    nulls = [r for r in by["not resolved"] if r.get("ci_low") is not None]
    if nulls:
        bounds = ", ".join(f"{r['id']} {null_bound(r):.2f} y (detectable {r['detectable']:.2f} y)" for r in nulls)
        lines.append(f"Not resolved means no effect larger than the interval allows either way: {bounds}.")
    untestable = [r for r in by[NOT_TESTABLE] if r["control"].get("estimate") is not None]
    if untestable:
        lines.append(
            "Not testable here means the positive control, the same comparison where the mechanism was expected to matter, is "
            "not resolved either: "
            + "; ".join(f"{r['id']} ({r['control']['setting']}: {r['control']['effect']})" for r in untestable)
            + "."
        )
    if mixing:
        lines.append(mixing_line([registry_entry(m) for m in mixing]))
    if faces:
        entries = [registry_entry(x) for f in faces for x in (f, f"{f}_none")]
        lines.append(faces_line(entries, speed_entry["result"] if speed_entry else None))
    cross = speed_entry["result"].get("crossover", {}) if speed_entry else {}
    if cross.get("attention", {}).get("tokens"):
        st = speed_entry["result"].get("settings", {})
        lines.append(
            f"One mixing block alone (forward and backward, width {st.get('dim', '?')}, batch {st.get('batch', '?')}; "
            "the training times above are whole width-32 stacks in batches, MLPs and data included) gets cheaper with "
            f"FourierFormer from N ~ {cross['attention']['tokens']} against attention"
            + (f" and N ~ {cross['sdpa']['tokens']} against fused SDPA" if cross.get("sdpa", {}).get("tokens") else "")
            + " on this machine (ViT-B/16: N = 196)."
        )
    return "\n".join(lines) + "\n"


def markers(block: str) -> tuple[str, str]:
    """The README's markers around a generated block: ``<!-- NAME:begin -->``, ``<!-- NAME:end -->``."""
    return f"<!-- {block}:begin -->", f"<!-- {block}:end -->"


def update_readme(readme_path: str | Path, markdown: str, block: str = "claims") -> bool:
    """Replace what lies between ``<!-- BLOCK:begin -->`` and ``<!-- BLOCK:end -->`` in ``readme_path`` by
    ``markdown``; returns whether the file changed. Both markers must be there once, in that order."""
    path = Path(readme_path)
    begin, end = markers(block)
    text = path.read_text(encoding="utf-8")
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(
            f"{path} needs the lines {begin} and {end}, once each and in that order, around the "
            f"{block} block; add them where it belongs"
        )
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    new = f"{head}{begin}\n{markdown.strip()}\n{end}{tail}"
    if new == text:
        return False
    write_text(path, new)
    return True


def timings_markdown(name: str = "whole_job_cold") -> str:
    """The README's cold-time lines from the registry's whole-job result ``name`` (tools/whole_job.py): each
    command's wall time and largest process, and each notebook's seconds."""
    entry = registry_entry(name)
    job = entry["result"]["whole_job"]
    by = {r["command"]: r for r in job["rows"]}
    main, test = by["./run_all.sh"], by["./run_all.sh test"]

    def took(r: dict) -> str:
        secs = round(r["wall_s"])  # rounded once, so 719.97 s reads "12 min 0 s", not "11 min 60 s"
        return f"{secs // 60} min {secs % 60} s (largest process {r['peak_mb']:,.0f} MB)"

    notebooks = ", ".join(f"{n['name'][:2]} {n['seconds']:.0f} s" for n in main["notebooks"])
    return (
        f"Cold, on a fresh clone with empty caches and the environment installed: `./run_all.sh` {took(main)}, "
        f"`./run_all.sh test` {took(test)}; each notebook: {notebooks}. Measured by `{entry['command']}` at commit "
        f"{entry['commit'][:10]} on {entry['machine']['cpu']} ({entry['machine']['cores']} cores), "
        f"[results/{name}.json](results/{name}.json).\n"
    )


STATISTICS = ROOT / "docs" / "statistics.md"


def choices_markdown(name: str = "validation_choices") -> str:
    """docs/statistics.md's table of the settings chosen on validation data (tools/validation_choices.py): per
    setting and micro-CLIP, each candidate's validation MAE and its paired difference from the default."""
    entry = registry_entry(name)
    r = entry["result"]
    lines = [
        "| setting | micro-CLIP | candidate | validation MAE | minus the default [95% CI] | chosen |",
        "|---|---|---|---|---|---|",
    ]
    for setting, s in r["settings"].items():
        for clip, b in s["backbones"].items():
            for value, row in b["candidates"].items():
                diff = (
                    f"{row['minus_default']:+.2f} [{row['ci'][0]:.2f}, {row['ci'][1]:.2f}]"
                    if "ci" in row
                    else "(the default)"
                )
                mark = "**chosen**" if str(b["chosen"]) == value else ""
                lines.append(f"| `{setting}` | {clip} | {value} | {row['mae']:.2f} | {diff} | {mark} |")
    lines.append("")
    lines.append(
        f"*{r['validation_world']}; {r['budget']}; 3 seeds, 95% CIs over subjects x seeds; rule: {r['rule']}. "
        f"Made by [results/{name}.json](../results/{name}.json): `{entry['command']}` at commit "
        f"{entry['commit'][:10]}, {entry['recorded']}, {entry['machine']['cpu']} ({entry['machine']['cores']} "
        f"cores), {entry['seconds'] / 60:.0f} min.*"
    )
    return "\n".join(lines) + "\n"


MICRO_CLIP = ROOT / "docs" / "micro-clip.md"
BACKBONE_ROWS = (
    ("zero_shot", "zero-shot prompts (nothing trained)"),
    ("linear_probe", "ridge probe on the frozen features"),
    ("correction=off", "CILF-CIAE without the correction (its y0)"),
    ("full", "CILF-CIAE (full)"),
    ("dex", "DEX on the same features"),
    ("train_mean", "train-mean baseline"),
    ("oracle", "oracle (drawn cues; floor)"),
)


def backbones_markdown(exact: str = "claims_synthage_5fold_exact", web: str = "claims_synthage_5fold") -> str:
    """docs/micro-clip.md's table: the same claims run on the two bundled micro-CLIPs, MAE [95% CI] per method,
    and how far the prompts alone are from a linear read-out of the same features."""
    runs = {"exact-caption (`bundled`)": registry_entry(exact), "web-caption (`bundled-web`)": registry_entry(web)}
    lines = ["| test MAE, years [95% CI] | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for key, title in BACKBONE_ROWS:
        cells = []
        for e in runs.values():
            m = e["result"]["methods"].get(key, {})
            cells.append(
                f"{m['mae_pooled']:.2f} [{m['mae_ci'][0]:.2f}, {m['mae_ci'][1]:.2f}]" if "mae_ci" in m else "-"
            )
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    ratio = [
        e["result"]["methods"]["zero_shot"]["mae_pooled"] / e["result"]["methods"]["linear_probe"]["mae_pooled"]
        for e in runs.values()
    ]
    lines.append("| zero-shot / ridge probe | " + " | ".join(f"{r:.2f}x" for r in ratio) + " |")
    lines.append("")
    for label, name in zip(runs, (exact, web)):
        e = runs[label]
        lines.append(
            f"*{label}: [results/{name}.json](../results/{name}.json), {e['result']['source']}, "
            f"{e['result']['images']} images, {e['result']['seeds']} seeds x {e['result']['folds']} splits; "
            f"commit {e['commit'][:10]}.*"
        )
    return "\n".join(lines) + "\n"


METHOD = ROOT / "docs" / "method.md"


def recalibration_markdown(name: str = "correction_recalibration_synthage") -> str:
    """docs/method.md's table of the correction's forms against recalibration, on the real first estimates and in
    the shrunk-y0 positive control, and the comparisons read from it (a ``bench-correction`` result ``name``)."""
    entry = registry_entry(name)
    res = entry["result"]
    lines = ["| " + " | ".join(FORMS_COLUMNS) + " |", "|---" * len(FORMS_COLUMNS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in forms_table_rows(res["real"], res["control"])]
    lines.append("")
    for blk, label in (("real", "Real first estimates"), ("control", "Control")):
        c, d = res[blk]["crossfit"], res[blk]["correction"]
        lines.append(
            f"- {label}: the default correction minus the better recalibration ({d['recal']}) "
            f"{ci_cell(d, 'minus_recal', True)}; the cross-fitted form minus its own first estimate "
            f"{ci_cell(c, 'minus_own_y0', True)} and minus the default form {ci_cell(c, 'minus_default', True)}."
        )
    if "joint" in res["real"]:
        j = res["real"]["joint"]
        lines.append(
            f"- The paper's joint form (E trained with the age model, another model on the same images) minus the "
            f"default form {ci_cell(j, 'minus_default', True)}, minus the better recalibration "
            f"{ci_cell(j, 'minus_recal', True)}."
        )
    sp = res.get("spearman_with_abs_y0_error", {})
    if sp.get("abs_error0", {}).get("runs") and sp.get("spread0", {}).get("runs"):
        a, b = sp["abs_error0"], sp["spread0"]
        lines.append(
            f"- How well E ranks the test images by |y0 - y| (Spearman, per run): its predicted |e(y0)|, which E_P "
            f"reads, {a['mean']:.2f} on average ({a['min']:.2f} to {a['max']:.2f}); its ensemble spread at y0, which "
            f"E_P does not read, {b['mean']:.2f} ({b['min']:.2f} to {b['max']:.2f}), over {b['runs']} runs."
        )
    gate = res["gate"]
    lines += [
        f"- The held-out gate left the correction on in {gate['default_applied']} of {gate['runs']} runs (default "
        f"form) and {gate['crossfit_applied']} of {gate['runs']} (cross-fitted); the control's error models have no "
        f"gate. Out-of-fold y0 erred {res['mae_y0_out_of_fold']:.2f} y on the training splits.",
        "",
        f"*{res['source']}, {res['folds']} splits x {res['seeds']} seeds, {res['test_images']} test images, web-caption "
        f"micro-CLIP, control y0 shrunk x{res['shrink']:g} towards the training mean; CIs over {res['ci']}; "
        f"{_made_by(entry).replace('](results/', '](../results/')}.*",
    ]
    return "\n".join(lines) + "\n"


PERFORMANCE = ROOT / "docs" / "performance.md"


def speed_markdown(name: str = "bench_speed") -> str:
    """docs/performance.md's report of the one ``bench-speed`` run ``name``: every section as the command printed
    it (``cilf.bench.speed.format_report``), with the command and commit that made it."""
    entry = registry_entry(name)
    made = _made_by(entry).replace("](results/", "](../results/")
    return f"```\n{format_report(entry['result'])}\n```\n\n*Made by {made}.*\n"


def finetune_markdown(names: tuple[str, ...] = ("finetune_micro", "finetune_vit")) -> str:
    """docs/performance.md's fine-tuning tables (``bench-speed --finetune`` results): per mode the trainable
    parameters, one-time encoding and epoch CPU seconds, test MAE; the boundary cache's speed-up against its target."""
    out = []
    for name in names:
        entry = registry_entry(name)
        res = entry["result"]
        out += [
            f"**{res['backbone']}, {res['weights']}**: {res['train_images']} training images, batch {res['batch_size']}, "
            f"{res['epochs']} epoch(s), lr {res['lr']:g} (fine-tuned CLIP blocks x {res['backbone_lr_scale']:g}); "
            f"{res['source']}.",
            "",
            "| mode | trainable | one-time encode CPU s | epoch CPU s | test MAE |",
            "|---|---|---|---|---|",
        ]
        for r in res["rows"]:
            mae = f"{r['test_mae']:.2f}" if r["test_mae"] is not None else "(timing only)"
            out.append(
                f"| {r['mode']} | {r['trainable_params']:,} | {r['one_time_encoding_cpu_s']:.1f} | "
                f"{r['epoch_cpu_s']:.2f} | {mae} |"
            )
        out.append("")
        for k, x in res["cache_over_pixels_speedup"].items():
            verdict = "met" if x >= res["speedup_target"] else "missed"
            out.append(
                f"- {k} from the boundary cache: **{x:.1f}x** less CPU time per epoch than from pixels "
                f"(target {res['speedup_target']:g}x: {verdict})"
            )
        out += ["", f"*Made by {_made_by(entry).replace('](results/', '](../results/')}.*", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.readme_tables")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("findings", help="the claims table of a results/ entry, between the README's claims markers")
    f.add_argument("name", help="results/NAME.json: a saved benchmark recorded by tools.results")
    f.add_argument("--speed", default=None, help="results/SPEED.json: a bench-speed result recorded by tools.results")
    f.add_argument(
        "--controls",
        nargs="*",
        default=(),
        help="results/CONTROLS.json: the control runs (cilf.bench.claims.CONTROL_RUNS), tools.results, any number",
    )
    f.add_argument(
        "--mixing", nargs="*", default=(), help="results/MIXING.json: bench-mixing results (tools.results), any number"
    )
    f.add_argument(
        "--faces",
        nargs="*",
        default=(),
        help="results/FACES.json: bench results of full, mixer=attention and mixer=none, one per token grid",
    )
    t = sub.add_parser("timings", help="the cold times of the two commands, between the README's timings markers")
    t.add_argument("name", nargs="?", default="whole_job_cold", help="results/NAME.json from tools.whole_job")
    v = sub.add_parser("choices", help="the settings chosen on validation data, between docs/statistics.md's markers")
    v.add_argument(
        "name", nargs="?", default="validation_choices", help="results/NAME.json from tools.validation_choices"
    )
    b = sub.add_parser("backbones", help="the claims run on both micro-CLIPs, between docs/micro-clip.md's markers")
    b.add_argument("--exact", default="claims_synthage_5fold_exact")
    b.add_argument("--web", default="claims_synthage_5fold")
    sp = sub.add_parser("speed", help="the one bench-speed run's report, between docs/performance.md's markers")
    sp.add_argument("name", nargs="?", default="bench_speed", help="results/NAME.json, a bench-speed run")
    ft = sub.add_parser("finetune", help="the fine-tuning tables, between docs/performance.md's markers")
    ft.add_argument("names", nargs="*", default=["finetune_micro", "finetune_vit"])
    r = sub.add_parser(
        "recalibration", help="the correction's forms against recalibration, between docs/method.md's markers"
    )
    r.add_argument("name", nargs="?", default="correction_recalibration_synthage", help="results/NAME.json")
    c = sub.add_parser("claims", help="the claims table of a benchmark result, between the README's claims markers")
    c.add_argument("results")
    c.add_argument("--speed", default=None)
    c.add_argument("--controls", nargs="*", default=())
    args = ap.parse_args(argv)
    generated = {  # command -> (block, file, what is written)
        "timings": ("timings", README, lambda: timings_markdown(args.name)),
        "finetune": ("finetune", PERFORMANCE, lambda: finetune_markdown(tuple(args.names))),
        "speed": ("speed", PERFORMANCE, lambda: speed_markdown(args.name)),
        "backbones": ("backbones", MICRO_CLIP, lambda: backbones_markdown(args.exact, args.web)),
        "choices": ("choices", STATISTICS, lambda: choices_markdown(args.name)),
        "recalibration": ("recalibration", METHOD, lambda: recalibration_markdown(args.name)),
        "findings": (
            "claims",
            README,
            lambda: findings_markdown(args.name, args.speed, args.controls, args.mixing, args.faces),
        ),
    }
    if args.cmd in generated:
        block, path, markdown = generated[args.cmd]
        changed = update_readme(path, markdown(), block=block)
        print(f"{path}: {f'{block} written' if changed else 'unchanged'}")
        return 0
    rows = claims_table(
        read_result(args.results),
        read_speed(args.speed) if args.speed else None,
        controls=[read_controls(c) for c in args.controls],
    )
    changed = update_readme(README, claims_markdown(rows))
    print(f"{README}: {'claims table written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
