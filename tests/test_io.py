"""cilf.io: atomic files and folders, symlink refusal, one writer per folder, disk-full errors, strict JSON."""

import errno
import json
import os
import subprocess
import sys

import pytest

from cilf.io import (
    FolderLock,
    OutputError,
    atomic_directory,
    atomic_write,
    ensure_inside,
    json_text,
    recover_directory,
    write_json,
    write_text,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_replaces_whole_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old\n")

    def half_then_fail(p):
        p.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert _leftovers(tmp_path) == []
    write_text(target, "new\n")
    assert target.read_text() == "new\n"


def test_writes_never_follow_symlinks(tmp_path):
    outside = tmp_path / "user_file.txt"
    outside.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").symlink_to(outside)
    with pytest.raises(OutputError, match="symbolic link"):
        write_json(out / "metrics.json", {"a": 1})
    assert outside.read_text() == "precious\n"
    # a symlinked sub-folder leading out of the output folder
    (out / "sub").symlink_to(tmp_path)
    with pytest.raises(OutputError, match="outside"):
        write_text(out / "sub" / "x.txt", "x", root=out)
    assert not (tmp_path / "x.txt").exists()
    with pytest.raises(OutputError, match="outside"):
        ensure_inside(out / ".." / "y.txt", out)


def test_disk_full_is_one_clear_error_and_nothing_torn(tmp_path, monkeypatch):
    target = tmp_path / "big.bin"
    write_text(target, "old\n")

    def no_space(p):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"big\.bin: cannot write \(the disk is full"):
        atomic_write(target, no_space)
    assert target.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_a_real_full_disk(tiny_disk):
    write_text(tiny_disk / "keep.txt", "old\n")
    with pytest.raises(OutputError, match="disk is full"):
        atomic_write(tiny_disk / "keep.txt", lambda p: p.write_bytes(b"x" * 200_000))
    assert (tiny_disk / "keep.txt").read_text() == "old\n" and _leftovers(tiny_disk) == []
    with pytest.raises(OutputError, match="disk is full"):
        with atomic_directory(tiny_disk / "ckpt") as d:
            (d / "w.bin").write_bytes(b"x" * 200_000)
    assert not (tiny_disk / "ckpt").exists() and _leftovers(tiny_disk) == []


def test_atomic_directory_swaps_whole_folders(tmp_path):
    dest = tmp_path / "last"
    with atomic_directory(dest) as d:
        (d / "a").write_text("1")
        (d / "b").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(dest) as d:
            (d / "a").write_text("2")
            raise KeyboardInterrupt
    assert (dest / "a").read_text() == "1" and (dest / "b").read_text() == "1"
    assert _leftovers(tmp_path) == []
    with atomic_directory(dest) as d:
        (d / "a").write_text("3")
    assert sorted(p.name for p in dest.iterdir()) == ["a"] and _leftovers(tmp_path) == []


def test_a_swap_cut_between_its_renames_is_recovered(tmp_path):
    dest = tmp_path / "last"
    with atomic_directory(dest) as d:
        (d / "a").write_text("1")
    os.rename(dest, tmp_path / ".last.old-123-456")  # what a kill after the first rename leaves
    assert recover_directory(dest) == dest
    assert (dest / "a").read_text() == "1"
    assert recover_directory(dest) is None


def test_one_writer_per_folder_and_stale_locks(tmp_path):
    with FolderLock(tmp_path, "train"):
        with pytest.raises(OutputError, match=rf"in use by process {os.getpid()} .*train"):
            FolderLock(tmp_path, "train").acquire()
    assert not (tmp_path / FolderLock.NAME).exists()
    # a lock whose process is gone is stale
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / FolderLock.NAME).write_text(f"{socket.gethostname()} {int(dead.stdout)} train 0")
    with FolderLock(tmp_path, "train"):
        pass


def test_json_output_never_holds_nan():
    text = json_text({"mae": float("nan"), "xs": [1.0, float("inf")], "ok": 2.5})
    assert json.loads(text) == {"mae": None, "xs": [1.0, None], "ok": 2.5}
    assert "NaN" not in text and "Infinity" not in text


def test_files_and_folders_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "ckpt") as d:
            (d / "w").write_text("1")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o755


def test_a_full_disk_hidden_by_torch_or_safetensors_is_still_one_clear_error(tiny_disk, small_cfg):
    """torch.save says '[enforce fail at inline_container.cc...]', safetensors its own error: both become OutputError."""
    import torch

    import cilf
    from cilf.persist.checkpoint import save_checkpoint

    with pytest.raises(OutputError, match=r"x\.pt: cannot write \(the disk is full"):
        atomic_write(tiny_disk / "x.pt", lambda p: torch.save({"w": torch.zeros(100_000)}, p))
    with pytest.raises(OutputError, match=r"ckpt: cannot write \(the disk is full"):
        save_checkpoint(cilf.create_model(small_cfg), tiny_disk / "ckpt", {"w": torch.zeros(100_000)})
    assert sorted(p.name for p in tiny_disk.iterdir()) == []


def test_a_swap_whose_final_rename_fails_puts_the_old_folder_back(tmp_path, monkeypatch):
    dest = tmp_path / "last"
    with atomic_directory(dest) as d:
        (d / "a").write_text("1")
    real = os.rename

    def second_fails(src, dst):
        if str(dst) == str(dest) and str(src).endswith(".tmp"):  # the new folder cannot be moved in
            raise OSError(errno.EIO, "I/O error")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(OutputError):
        with atomic_directory(dest) as d:
            (d / "a").write_text("2")
    monkeypatch.undo()
    assert (dest / "a").read_text() == "1" and _leftovers(tmp_path) == []
