"""Faults a careful user meets with checkpoints and run folders, injected for real.

A subprocess runner (``RUNNER``) patches one thing in an otherwise normal ``python -m cilf train``:
SIGKILL inside the checkpoint swap, a pause, or a loss made NaN. Tiny settings (200 SynthAge
images, 3 epochs, width 32); data and features are cached once for the module.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cilf.model.config import CILFConfig
from cilf.persist.checkpoint import CheckpointError, load_model, load_torch_state, load_train_state, write_manifest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--n-images", "200", "--epochs", "3", "--batch-size", "32", "--quiet", "--set", "width=32", "depth=1"]

RUNNER = r"""
import os, signal, sys, time
from pathlib import Path
import cilf.io, cilf.app.train as T
from cilf.cli import main

fault, arg = (os.environ.get("FAULT", "") + ":").split(":")[:2]
state = {"saves": 0, "armed": False, "epoch": 0, "calls": 0}

save = T.save_checkpoint
def counting_save(model, directory, train_state=None):
    if Path(directory).name == "last":
        state["saves"] += 1
        state["armed"] = fault.startswith("kill") and state["saves"] == int(arg)
    try:
        return save(model, directory, train_state)
    finally:
        state["armed"] = False
T.save_checkpoint = counting_save

rename = os.rename
def faulty_rename(src, dst):
    touches_last = Path(src).name == "last" or Path(dst).name == "last"
    if state["armed"] and touches_last and fault == "kill-before-swap":
        os.kill(os.getpid(), signal.SIGKILL)  # the new checkpoint is complete in its temporary folder
    rename(src, dst)
    if state["armed"] and Path(src).name == "last" and fault == "kill-between-renames":
        os.kill(os.getpid(), signal.SIGKILL)  # last/ moved aside, the new one not yet in place
cilf.io.os.rename = faulty_rename

one_epoch = T.train_one_epoch
def tracked_epoch(*a, **k):
    state["epoch"], state["calls"] = a[6] + 1, 0
    if fault == "wait":
        while not Path(arg).exists():
            time.sleep(0.1)
    return one_epoch(*a, **k)
T.train_one_epoch = tracked_epoch

forward = T.TrainStep.forward
def nan_forward(self, *a):
    losses = forward(self, *a)
    state["calls"] += 1
    if fault == "nan" and state["epoch"] >= int(arg) and state["calls"] >= 2:
        losses["total"] = losses["total"] * float("nan")
    return losses
T.TrainStep.forward = nan_forward

sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    (root / "runner.py").write_text(RUNNER)
    return {
        "root": root,
        "vars": {
            **os.environ,
            "CILF_DATA": str(root / "data"),
            "CILF_CACHE": str(root / "cache"),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO),
        },
    }


def cilf(env, out, *extra, fault="", wait=True):
    """``python -m cilf train`` through the runner (``fault``: what it patches); a Popen when not ``wait``."""
    cmd = [sys.executable, str(env["root"] / "runner.py"), "train", "--out", str(out), *ARGS, *extra]
    e = {**env["vars"], "FAULT": fault}
    if not wait:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)


def numbers(out: Path) -> dict:
    """metrics.json and history.json without timings and paths."""
    m = json.loads((out / "metrics.json").read_text())
    for k in ("train_seconds", "checkpoint", "train_config"):
        m.pop(k)
    hist = [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((out / "history.json").read_text())]
    return {"metrics": m, "history": hist}


def flip(path: Path, n: int = 200) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(b ^ 0xFF for b in data[mid : mid + n])
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def reference(env):
    """An uninterrupted run, held at its first epoch while a second train into the same --out is tried."""
    out, go = env["root"] / "ref", env["root"] / "go"
    first = cilf(env, out, fault=f"wait:{go}", wait=False)
    t0 = time.time()
    while not (out / "run.json").exists() and first.poll() is None and time.time() - t0 < 300:
        time.sleep(0.1)
    second = cilf(env, out)
    go.touch()
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    return {"out": out, "second": second, "numbers": numbers(out)}


def test_second_writer_is_refused_while_the_first_finishes(reference):
    second = reference["second"]
    assert second.returncode != 0
    assert "is in use by process" in second.stderr and "(train)" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert reference["numbers"]["history"][-1]["epoch"] == 3  # the first run was not disturbed
    assert not (reference["out"] / ".cilf-lock").exists()  # released at the end


def test_kill_inside_the_checkpoint_swap_then_resume_gives_the_same_numbers(env, reference):
    out = env["root"] / "killed"
    r = cilf(env, out, fault="kill-before-swap:2")  # epoch 2 written to a temporary folder, never swapped in
    assert r.returncode == -9
    assert load_train_state(out / "last")["epoch"] == 0 and list(out.glob(".last.*.tmp"))
    r = cilf(env, out, "--resume", fault="kill-between-renames:1")  # epoch 2 again: last/ moved aside, then killed
    assert r.returncode == -9
    assert not (out / "last").exists() and list(out.glob(".last.old-*"))
    r = cilf(env, out, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "last: put back the checkpoint" in r.stderr
    assert numbers(out) == reference["numbers"]
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*.old-*"))


def test_flipped_bytes_are_refused_naming_the_file(reference, tmp_path):
    ck = shutil.copytree(reference["out"] / "last", tmp_path / "last")
    load_model(ck)
    load_train_state(ck)
    for name, load in (("model.safetensors", load_model), ("train_state.pt", load_train_state)):
        bad = shutil.copytree(ck, tmp_path / f"bad-{name}")
        flip(bad / name)
        with pytest.raises(CheckpointError, match=f"bad-{name}/{name}: checksum mismatch, the file is damaged"):
            load(bad)
    legacy = tmp_path / "bad-train_state.pt"
    write_manifest(legacy)  # a manifest made to match the damaged file: the zip CRC still catches it
    with pytest.raises(CheckpointError, match="train_state.pt: checksum mismatch in its part"):
        load_train_state(legacy)


def test_damaged_last_falls_back_to_prev_and_gives_the_same_numbers(env, reference, tmp_path):
    out = shutil.copytree(reference["out"], tmp_path / "run")
    flip(out / "last" / "model.safetensors")
    r = cilf(env, out, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "checksum mismatch" in r.stderr and "resuming from the epoch before" in r.stderr
    assert numbers(out) == reference["numbers"]  # epoch 3 trained again from prev/ (epoch 2)
    assert load_train_state(out / "prev")["epoch"] == 1  # prev/ is still the good epoch 2, not the damaged copy
    lone = tmp_path / "lone"
    shutil.copytree(out / "last", lone / "last")
    (lone / "run.json").write_text("{}")
    flip(lone / "last" / "train_state.pt")
    from cilf.app.params import TrainConfig
    from cilf.app.train import train

    cfg = CILFConfig.load(lone / "last" / "config.json")
    with pytest.raises(CheckpointError, match="checksum mismatch.*no earlier good checkpoint"):
        train(cfg, TrainConfig(out=str(lone), n_images=200, epochs=3, batch_size=32, progress=False), resume=True)


def test_resume_with_other_settings_is_refused_naming_the_field(env, reference, tmp_path):
    from cilf.app.params import TrainConfig
    from cilf.app.train import train

    out = shutil.copytree(reference["out"], tmp_path / "run")
    before = (out / "last" / "manifest.json").read_text()
    cfg = CILFConfig.load(out / "last" / "config.json")
    base = dict(out=str(out), n_images=200, epochs=3, batch_size=32, progress=False)
    for field, value in (("lr", 0.01), ("batch_size", 16), ("n_images", 300), ("weight_decay", 0.0)):
        with pytest.raises(ValueError, match=f"started with {field}="):
            train(cfg, TrainConfig(**{**base, field: value}), resume=True)
    r = cilf(env, out, "--resume", "--lr", "0.01")
    assert r.returncode != 0 and "started with lr=0.002, not lr=0.01" in r.stderr and "Traceback" not in r.stderr
    assert (out / "last" / "manifest.json").read_text() == before and not (out / ".cilf-lock").exists()


class _Planted:
    """Unpickling this writes ``marker``: what a planted state file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_pickles_are_refused_without_running(env, reference, tmp_path):
    marker = tmp_path / "pwned"
    ck = shutil.copytree(reference["out"] / "last", tmp_path / "last")
    torch.save({"epoch": 0, "history": _Planted(marker)}, ck / "train_state.pt")
    write_manifest(ck)  # the manifest rewritten to match: the load itself must refuse
    with pytest.raises(CheckpointError, match="train_state.pt: refused, it holds Python objects"):
        load_train_state(ck)
    from cilf.app.pretrain import PretrainConfig, pretrain_clip

    pre = tmp_path / "pretrain"
    pre.mkdir()
    torch.save({"model": _Planted(marker), "pcfg": {}}, pre / "state.pt")
    with pytest.raises(CheckpointError, match="state.pt: refused"):
        pretrain_clip(PretrainConfig(out=str(pre), n_images=64, epochs=1, batch_size=16, progress=False), resume=True)
    with pytest.raises(CheckpointError, match="refused"):
        load_torch_state(pre / "state.pt", "fix")
    assert not marker.exists()


def test_non_finite_loss_stops_naming_the_epoch_and_keeps_finite_weights(env, tmp_path):
    out = tmp_path / "nan"
    r = cilf(env, out, fault="nan:2")
    assert r.returncode != 0
    line = r.stderr.strip().splitlines()[-1]
    assert "epoch 2, step 2" in line and "keeps epoch 1" in line and "Traceback" not in r.stderr
    assert load_train_state(out / "last")["epoch"] == 0
    model = load_model(out / "last")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (out / "metrics.json").exists()


def test_the_users_files_are_not_overwritten_without_force(env, tmp_path):
    from cilf.app.runfolder import open_run_folder
    from cilf.cli import build_parser

    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.json").write_text("my own numbers\n")
    r = cilf(env, out)
    assert r.returncode != 0 and "metrics.json" in r.stderr and "--force" in r.stderr
    assert (out / "metrics.json").read_text() == "my own numbers\n"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]  # no lock, no marker left behind
    assert build_parser().parse_args(["train", "--force"]).force
    lock = open_run_folder(out, resume=False, force=True, say=lambda m: None)
    lock.release()
    marker = json.loads((out / "run.json").read_text())
    assert set(marker) == {"cilf_version", "command", "started"}
