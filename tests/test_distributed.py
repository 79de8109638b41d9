"""torchrun / DistributedDataParallel on CPU (Gloo), rank sharding, bf16 autocast with float32 FFTs."""

import json
import os
import subprocess
import sys

import pytest
import torch

import cilf
from cilf.app.batches import FeatureBatches
from cilf.app.distributed import DistContext
from cilf.app.engine import amp_dtype_for, train_one_epoch
from cilf.model.clip import ImageFeatures
from cilf.model.fourier import GlobalFilter


def test_ranks_get_equal_disjoint_shards_of_the_same_shuffle():
    ages = torch.arange(11.0)
    feats = ImageFeatures(torch.randn(11, 4), torch.randn(11, 4, 4), (2, 2))
    seen = []
    for rank in (0, 1):
        b = FeatureBatches(feats, ages, batch_size=2, device="cpu", ctx=DistContext(rank, 2))
        got = torch.cat([y for _, _, y in b.epoch(torch.Generator().manual_seed(3))])
        assert len(got) == 4 and len(b) == 3  # 5 each (11 // 2); the last batch of one is left out on both
        seen.append(set(got.tolist()))
    assert not seen[0] & seen[1]
    single = FeatureBatches(feats, ages, batch_size=4, device="cpu")
    got = torch.cat([y for _, _, y in single.epoch(torch.Generator().manual_seed(3))])
    assert sorted(got.tolist()) == ages.tolist()  # one process: every item (the last batch of 3 is kept)


def test_bf16_autocast_trains_and_keeps_the_fft_in_float32(small_cfg, monkeypatch):
    seen = []
    rfft2 = torch.fft.rfft2
    monkeypatch.setattr(torch.fft, "rfft2", lambda x, *a, **k: (seen.append(x.dtype), rfft2(x, *a, **k))[1])
    f, x = GlobalFilter(8, (4, 4)), torch.randn(2, 4, 4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = f(x)
    assert seen == [torch.float32] and out.shape == (2, 4, 4, 8)
    torch.testing.assert_close(out.float(), f(x), atol=2e-2, rtol=2e-2)  # the float32 result, to bf16 precision

    torch.manual_seed(0)
    model = cilf.create_model(small_cfg)
    with torch.no_grad():
        feats = model.encode_image(torch.randn(8, 3, 112, 112))
    batches = FeatureBatches(feats, torch.linspace(5, 80, 8), batch_size=4, device="cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    assert amp_dtype_for("bf16", torch.device("cpu")) is torch.bfloat16
    assert amp_dtype_for("auto", torch.device("cpu")) is None  # auto: bf16 only on CUDA
    sums, steps = train_one_epoch(model, batches, opt, None, params, seed=0, epoch=0, amp_dtype=torch.bfloat16)
    assert steps == 2 and torch.isfinite(torch.tensor(sums["total"]))
    assert all(p.dtype == torch.float32 for p in params)  # autocast computes in bf16, weights stay float32
    assert model.clip.class_text_features().dtype == torch.float32  # the text cache is not bf16


@pytest.mark.slow
def test_torchrun_trains_on_two_cpu_processes_resumes_and_rank0_alone_writes(tmp_path):
    env = {
        **os.environ,
        "CILF_DATA": str(tmp_path / "data"),
        "CILF_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "run"

    def torchrun(*extra):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "cilf",
            "train",
            "--n-images",
            "300",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "width=32",
            "depth=1",
            *extra,
        ]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "Traceback" not in res.stderr and "Grad strides" not in res.stderr
        return res.stdout

    assert torchrun("--stop-after", "1").count("stopped after epoch 1") == 1  # said once, by rank 0
    assert torchrun("--resume").count("this run, SynthAge (synthetic)") == 1
    report = json.loads((out / "metrics.json").read_text())
    assert report["processes"] == 2 and report["precision"] == "fp32"
    assert report["model"]["mae"] < report["baseline_train_mean"]["mae"]
    assert [r["epoch"] for r in json.loads((out / "history.json").read_text())] == [1, 2]
    entries = list((tmp_path / "cache" / "features").rglob("*.safetensors"))
    assert len(entries) == 1  # the train split's features: written by rank 0, read by rank 1
    assert not list(tmp_path.rglob("*.tmp*"))
