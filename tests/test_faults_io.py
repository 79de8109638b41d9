"""Faults a careful user meets: planted links, name clashes, foreign folders, full disks, NaN options,
odd manifests and a damaged SynthAge folder. Each must end in a clear one-line error or a repair,
never a traceback, a torn file or a write outside the output folder."""

import errno
import json
import shutil
import sys

import numpy as np
import pytest

from cilf.cli import main
from cilf.data.synthage import SynthAgeSpec, generate
from cilf.persist.factory import create_model

SMALL = ["--set", "width=32", "depth=1", "ensemble_size=3", "error_hidden=32"]


def _files(root):
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _no_torn_files(root):
    """No empty file and no temporary left anywhere below ``root``."""
    files = _files(root)
    assert not [k for k, p in files.items() if p.stat().st_size == 0], files
    assert not [k for k in files if k.endswith(".tmp") or ".tmp" in k.rsplit("/", 1)[-1]], files


def _fill(disk):
    """Use up every byte of a tmpfs."""
    with open(disk / "ballast", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 1024)
        except OSError:
            pass


@pytest.fixture
def full(request, tmp_path, monkeypatch):
    """(folder, fill): a real 64 KiB tmpfs when mounting works; else a folder where every cilf.io
    commit fails with ENOSPC (fill is then a no-op)."""
    try:
        disk = request.getfixturevalue("tiny_disk")
        return disk, lambda: _fill(disk)
    except pytest.skip.Exception:
        pass
    disk = tmp_path / "patched"
    disk.mkdir()
    import cilf.io as cio

    real = cio.os.replace

    def no_space(src, dst, *a, **k):
        if str(disk) in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(cio.os, "replace", no_space)
    return disk, lambda: None


def _raw_photo(sid, face_size=160, canvas=(320, 240)):
    """A SynthAge face pasted on a plain canvas (subjects 0, 3, 4: the HOG detector finds them)."""
    from PIL import Image

    from cilf.data.synthage import render_face, sample_subject

    rng = np.random.default_rng(sid)
    face, _ = render_face(sample_subject(rng, sid), 40, rng, size=face_size)
    img = Image.new("RGB", canvas, (90, 120, 90))
    img.paste(face, ((canvas[0] - face_size) // 2 - 20, (canvas[1] - face_size) // 2))
    return img


# -- links and clashes ------------------------------------------------------------------------------


def test_align_never_writes_through_links_or_outside_dst(tmp_path, capsys):
    src, dst, outside = tmp_path / "raw", tmp_path / "aligned", tmp_path / "outside"
    (src / "sub").mkdir(parents=True)
    outside.mkdir()
    _raw_photo(0).save(src / "sub" / "p.png")
    dst.mkdir()
    (dst / "sub").symlink_to(outside)  # a sub-folder of DST leading out of it
    assert main(["align", str(src), str(dst), "--size", "64", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "outside" in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(outside.iterdir()) == []
    (dst / "sub").unlink()
    (dst / "sub").mkdir()
    user = tmp_path / "user.txt"
    user.write_text("precious\n")
    (dst / "sub" / "p.jpg").symlink_to(user)  # a link planted at the output name
    assert main(["align", str(src), str(dst), "--size", "64", "--quiet"]) == 1
    assert "symbolic link" in capsys.readouterr().err and user.read_text() == "precious\n"
    (dst / "sub" / "p.jpg").unlink()
    (dst / "align_report.csv").symlink_to(user)  # the report is never appended through a link
    assert main(["align", str(src), str(dst), "--size", "64", "--quiet"]) == 1
    assert "symbolic link" in capsys.readouterr().err and user.read_text() == "precious\n"
    assert not (dst / "sub" / "p.jpg").exists()  # refused before anything was written


def test_align_keeps_a_jpg_and_a_png_apart(tmp_path, capsys):
    src, dst = tmp_path / "raw", tmp_path / "aligned"
    src.mkdir()
    _raw_photo(0).save(src / "a.jpg", quality=95)
    _raw_photo(3).save(src / "a.png")
    _raw_photo(4).save(src / "b.png")
    assert main(["align", str(src), str(dst), "--size", "64", "--detector", "dlib", "--quiet"]) == 0
    assert "aligned 3" in capsys.readouterr().out
    assert sorted(p.name for p in dst.glob("*.jpg")) == ["a.jpg.jpg", "a.png.jpg", "b.jpg"]
    assert main(["align", str(src), str(dst), "--size", "64", "--detector", "dlib", "--quiet"]) == 0
    assert "already done 3" in capsys.readouterr().out
    report = (dst / "align_report.csv").read_text()
    assert report.startswith("file,problem") and report.count("file,problem") == 1


def test_synthage_never_writes_through_a_planted_temporary_link(tmp_path):
    from cilf.data.synthage import plan

    root = tmp_path / "s"
    (root / "images").mkdir(parents=True)
    user = tmp_path / "user.txt"
    user.write_text("precious\n")
    spec = SynthAgeSpec(n_images=20, seed=0)
    first = plan(spec)[0]["path"]
    (root / first).with_suffix(".tmp").symlink_to(user)  # the fixed temporary name older versions used
    (root / "manifest.tmp").symlink_to(user)
    generate(spec, root, workers=1, progress=False, force=True)
    assert user.read_text() == "precious\n" and (root / first).is_file() and not (root / first).is_symlink()


def test_synthage_refuses_a_folder_holding_a_users_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "manifest.csv").write_text("path,age\nme.jpg,40\n")
    args = ["synthage", "--out", str(out), "--n-images", "20", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "manifest.csv" in err and "--force" in err and err.count("\n") == 1
    assert (out / "manifest.csv").read_text() == "path,age\nme.jpg,40\n" and sorted(_files(out)) == ["manifest.csv"]
    assert main(args + ["--force"]) == 0
    assert (out / "manifest.csv").read_text().count("\n") == 21 and (out / "synthage.json").is_file()
    assert main(args) == 0  # its own folder now: reused


# -- full disks ------------------------------------------------------------------------------------------


def test_full_disk_during_synthage(full, capsys):
    disk, _ = full
    out = disk / "s"
    assert main(["synthage", "--out", str(out), "--n-images", "80", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "disk is full" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (out / "manifest.csv").exists()
    _no_torn_files(disk)
    assert not (out / ".cilf-lock").exists()


def test_full_disk_in_the_feature_cache(full, synth_root):
    from cilf.app.feature_cache import cached_features
    from cilf.data.datasets import ManifestDataset
    from cilf.io import OutputError
    from cilf.model.config import CILFConfig

    disk, _ = full
    model = create_model(CILFConfig(pretrained=None, width=32, depth=1, ensemble_size=3, error_hidden=32)).eval()
    ds = ManifestDataset(synth_root / "manifest.csv", split="val", transform=model.preprocess)
    with pytest.raises(OutputError, match="disk is full"):
        cached_features(model, ds, cache_dir=disk / "cache", progress=False)
    _no_torn_files(disk)
    assert not list((disk / "cache").rglob("*.json")) and not list((disk / "cache").rglob("*.safetensors"))


@pytest.fixture
def checkpoint(tmp_path, synth_root, small_cfg, monkeypatch):
    """An untrained small model saved as a checkpoint, with CILF_DATA pointing at the shared SynthAge set."""
    from cilf.persist.checkpoint import save_checkpoint

    base = tmp_path / "data"
    base.mkdir()
    (base / f"synthage-{SynthAgeSpec(n_images=1200, seed=0).key()}").symlink_to(synth_root)
    monkeypatch.setenv("CILF_DATA", str(base))
    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    return save_checkpoint(create_model(small_cfg).eval(), tmp_path / "ckpt")


def test_full_disk_on_eval_json(full, checkpoint, capsys):
    disk, fill = full
    fill()
    target = disk / "eval.json"
    assert main(["eval", "--checkpoint", str(checkpoint), "--n-images", "1200", "--json", str(target), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "eval.json: cannot write (the disk is full" in err and err.strip().count("\n") == 0
    assert not target.exists()
    _no_torn_files(disk)


class _FullStdout:
    def write(self, s):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass

    def fileno(self):
        raise ValueError("no descriptor")


def test_full_disk_on_predict_stdout(checkpoint, synth_root, monkeypatch, capsys):
    img = sorted((synth_root / "images").glob("*.jpg"))[0]
    monkeypatch.setattr(sys, "stdout", _FullStdout())
    code = main(["predict", str(img), "--checkpoint", str(checkpoint), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "standard output: cannot write (the disk is full" in err and "Traceback" not in err


def test_predict_never_prints_nan_and_json_is_strict(checkpoint, synth_root, monkeypatch, capsys, tmp_path):
    import cilf.app.predict as pred

    real = pred._estimate

    def half_nan(*a, **k):
        results = real(*a, **k)
        results[0]["age"] = float("nan")
        return results

    monkeypatch.setattr(pred, "_estimate", half_nan)
    imgs = [str(p) for p in sorted((synth_root / "images").glob("*.jpg"))[:2]]
    out = tmp_path / "rows.json"
    assert main(["predict", *imgs, "--checkpoint", str(checkpoint), "--json", str(out), "--quiet"]) == 0
    cap = capsys.readouterr()
    rows = json.loads(out.read_text())
    assert [r["status"] for r in rows] == ["not_finite", "ok"] and rows[0]["age"] is None
    printed = (cap.out + out.read_text()).replace(str(tmp_path), "").replace("(NaN or infinite)", "")
    assert "nan" not in printed.lower() and "inf" not in printed.lower()
    assert f"not a finite number (NaN or infinite) for: {imgs[0]}" in cap.err


def test_saved_bench_run_that_is_not_a_record_is_recomputed(tmp_path, capsys):
    from cilf.bench.runner import _RunStore

    store = _RunStore(tmp_path, fresh=False)
    assert store.get({"a": 1}, lambda: {"mae": 1.0}) == {"mae": 1.0}
    (path,) = (tmp_path / "runs").glob("*.json")
    path.write_text("[1]")
    assert store.get({"a": 1}, lambda: {"mae": 2.0}) == {"mae": 2.0}
    assert "damaged" in capsys.readouterr().err
    assert json.loads(path.read_text())["result"] == {"mae": 2.0}
    assert store.get({"b": 1}, lambda: {"mae": float("nan")})["mae"] != 0  # NaN: returned, not saved
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1


def test_ctrl_c_names_the_command(monkeypatch, capsys):
    import cilf.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_predict", interrupted)
    assert main(["predict", "x.jpg"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("predict interrupted; nothing was written") and "training" not in err


# -- NaN options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, name",
    [
        (["train", "--lr", "inf"], "--lr"),
        (["train", "--lr", "nan"], "--lr"),
        (["pretrain-clip", "--lr", "-inf"], "--lr"),
        (["bench-speed", "--max-attention-gb", "nan"], "--max-attention-gb"),
    ],
)
def test_non_finite_float_options_are_refused_at_parse_time(argv, name, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and f"argument {name}" in capsys.readouterr().err


@pytest.mark.parametrize("field, value", [("gamma_init", "nan"), ("w_con", "inf"), ("tau", "inf"), ("eps", "nan")])
def test_non_finite_config_values_are_refused_naming_the_field(field, value, capsys, tmp_path):
    from cilf import CILFConfig

    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        CILFConfig(pretrained=None, **{field: float(value)})
    assert main(["train", "--out", str(tmp_path), "--quiet", "--set", f"{field}={value}"]) == 2
    assert f"{field} must be a finite number" in capsys.readouterr().err


# -- manifests ----------------------------------------------------------------------------------------------


def _manifest(tmp_path, text: bytes):
    p = tmp_path / "m.csv"
    p.write_bytes(text)
    return p


def test_a_manifest_with_a_byte_order_mark_is_read(tmp_path):
    from cilf.data.datasets import read_manifest

    rows = read_manifest(_manifest(tmp_path, "\ufeffpath,age,split\na.jpg,30,Train\nb.jpg,40,VAL\n".encode()))
    assert [r["split"] for r in rows] == ["train", "val"] and rows[0]["age"] == 30.0


def test_a_non_utf8_manifest_names_file_and_line(tmp_path):
    from cilf.data.datasets import ManifestError, read_manifest

    p = _manifest(tmp_path, b"path,age\na.jpg,30\nb\xe9.jpg,40\n")
    with pytest.raises(ManifestError, match=r"m\.csv, line 3: byte 0xe9 is not UTF-8"):
        read_manifest(p)


def test_split_values_are_case_insensitive_and_unknown_ones_refused(tmp_path):
    from cilf.data.datasets import ManifestDataset, ManifestError

    p = _manifest(tmp_path, b"path,age,split\na.jpg,30,Train\nb.jpg,40,test\n")
    assert len(ManifestDataset(p, split="train")) == 1
    p = _manifest(tmp_path, b"path,age,split\na.jpg,30,train\nb.jpg,40,Tset\n")
    with pytest.raises(ManifestError, match=r"m\.csv, line 3: split 'Tset' is not one of train, val, test"):
        ManifestDataset(p, split="train")


# -- a damaged SynthAge folder ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_synthage_folder_is_repaired_and_gives_the_same_metrics(
    checkpoint, synth_root, tmp_path, monkeypatch, capsys
):
    copy = tmp_path / "copy"
    shutil.copytree(synth_root, copy)
    base = tmp_path / "data2"
    base.mkdir()
    (base / f"synthage-{SynthAgeSpec(n_images=1200, seed=0).key()}").symlink_to(copy)
    monkeypatch.setenv("CILF_DATA", str(base))
    argv = ["eval", "--checkpoint", str(checkpoint), "--n-images", "1200", "--quiet"]
    assert main(argv + ["--json", str(tmp_path / "intact.json")]) == 0
    capsys.readouterr()
    import csv

    test_rows = [r["path"] for r in csv.DictReader((copy / "manifest.csv").open()) if r["split"] == "test"]
    (copy / test_rows[0]).unlink()
    data = (copy / test_rows[1]).read_bytes()
    (copy / test_rows[1]).write_bytes(data[: len(data) // 2])
    lines = (copy / "manifest.csv").read_text().splitlines(keepends=True)
    (copy / "manifest.csv").write_text("".join(lines[:-3]))  # cut at a line boundary
    assert main(argv + ["--json", str(tmp_path / "repaired.json")]) == 0
    err = capsys.readouterr().err
    assert "manifest is damaged or incomplete (2 image(s) missing or damaged)" in err
    assert "1 damaged image(s) rendered again" in err  # the truncated one; the deleted one is new
    intact, repaired = (json.loads((tmp_path / n).read_text()) for n in ("intact.json", "repaired.json"))
    assert repaired["model"] == intact["model"] and repaired["n"] == intact["n"]
    assert repaired["skipped_files"] == {"test": []}
    assert (copy / test_rows[1]).read_bytes() == (synth_root / test_rows[1]).read_bytes()
    assert (copy / "manifest.csv").read_bytes() == (synth_root / "manifest.csv").read_bytes()
    # images only (manifest intact): only those are rendered again, with a count
    (copy / test_rows[2]).unlink()
    generate(SynthAgeSpec(n_images=1200, seed=0), copy, progress=False)
    assert "1 of 1200 image(s) missing or damaged" in capsys.readouterr().err
    assert (copy / test_rows[2]).read_bytes() == (synth_root / test_rows[2]).read_bytes()


def test_a_manifest_path_with_an_overlong_name_is_refused_naming_the_line(tmp_path):
    from cilf.app.splits import check_manifest_paths
    from cilf.io import overlong_part

    csv = tmp_path / "m.csv"
    csv.write_text(f"path,age,subject,split\nok.jpg,30,1,train\nfaces/{'a' * 300}.jpg,31,2,train\n")
    with pytest.raises(Exception, match=r"m.csv, line 3: the path names 'a{30}\.\.\.aa\.jpg', 304 bytes"):
        check_manifest_paths(csv)
    assert overlong_part("faces/ok.jpg") is None
