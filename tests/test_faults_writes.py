"""Writes a user's paths can break: a name over 255 bytes, a file where a folder should be, a folder where a
file should be, a read-only or full disk; the mode of what is written; an output that is an input. Each
ends in one OutputError naming the path and the fix, nothing torn, and files get the usual mode."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest

from cilf.io import (
    FolderLock,
    OutputError,
    OverlapError,
    atomic_directory,
    atomic_write,
    make_dirs,
    recover_directory,
    refuse_overlap,
    waiting_lock,
    write_bytes,
    write_json,
    write_text,
)

LONG = "x" * 300  # one name of 300 bytes: over the 255 every usual file system allows


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    "write",
    [
        lambda d: write_text(d / LONG / "a.txt", "x"),
        lambda d: write_json(d / f"{LONG}.json", {"a": 1}),
        lambda d: write_bytes(d / "sub" / f"{LONG}.bin", b"x"),
        lambda d: make_dirs(d / LONG / "inner"),
        lambda d: FolderLock(d / LONG).acquire(),
        lambda d: atomic_directory(d / LONG).__enter__(),
        lambda d: recover_directory(d / LONG),
        lambda d: waiting_lock(d / LONG, wait_s=0).__enter__(),
    ],
)
def test_a_name_too_long_is_one_clear_error(tmp_path, write):
    with pytest.raises(
        OutputError,
        match=r"cannot write \(the name 'x+\.\.\.x+.*' is 30\d bytes, more than the 255 "
        r".*choose a shorter name\)",
    ):
        write(tmp_path)
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "sub"])


def test_a_long_but_valid_name_is_written_atomically(tmp_path):
    name = "é" * 120 + ".json"  # 245 bytes: valid, though ".NAME.XXXXXXXX.tmp" beside it would not be
    write_json(tmp_path / name, {"a": 1})
    assert (tmp_path / name).read_text() == '{\n  "a": 1\n}\n' and _leftovers(tmp_path) == []
    folder = tmp_path / ("d" * 250)
    for v in ("1", "2"):
        with atomic_directory(folder) as d:
            (d / "w").write_text(v)
    assert (folder / "w").read_text() == "2" and _leftovers(tmp_path) == []


def test_a_file_in_the_way_and_a_folder_in_the_way(tmp_path):
    (tmp_path / "f").write_text("user's file\n")
    with pytest.raises(OutputError, match=r"f/a\.txt: cannot write \(a part of this path is a file, not a folder"):
        write_text(tmp_path / "f" / "a.txt", "x")
    with pytest.raises(OutputError, match=r"f/sub: cannot write \(a part of this path is a file, not a folder"):
        FolderLock(tmp_path / "f" / "sub").acquire()
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match=r"d: cannot write \(this is a folder, not a file: give a file name\)"):
        write_text(tmp_path / "d", "x")
    assert (tmp_path / "f").read_text() == "user's file\n" and _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "code, advice",
    [
        (errno.EACCES, "permission denied: choose a folder you can write to"),
        (errno.EROFS, "the file system is read-only"),
        (errno.ENOSPC, "the disk is full"),
        (errno.EIO, "input/output error"),
    ],
)
def test_os_errors_of_any_step_become_one_line(tmp_path, monkeypatch, code, advice):
    real = tempfile.mkstemp

    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=rf"a\.txt: cannot write \({advice}"):
        write_text(tmp_path / "a.txt", "x")
    monkeypatch.setattr(tempfile, "mkstemp", real)
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match=rf"b\.txt: cannot write \({advice}"):
        write_text(tmp_path / "b.txt", "x")
    assert _leftovers(tmp_path) == []


def test_the_cli_says_a_long_output_name_in_one_line(tmp_path, capsys):
    import layouts

    from cilf.cli import main

    root = layouts.agedb(tmp_path / "agedb", people=3, per_person=2)
    assert (
        main(["data", "check", str(root), "--dataset", "agedb", "--quiet", "--json", str(tmp_path / f"{LONG}.json")])
        == 2
    )
    err = capsys.readouterr().err
    assert "is 305 bytes, more than the 255" in err and "Traceback" not in err and err.count("\n") == 1


# -- modes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_every_written_file_gets_the_mode_of_a_plain_open(tmp_path, umask, file_mode, dir_mode):
    import torch
    from safetensors.torch import save_file

    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        write_text(tmp_path / "a.txt", "x")
        atomic_write(tmp_path / "w.safetensors", lambda p: save_file({"w": torch.zeros(2)}, str(p)))
        with atomic_directory(tmp_path / "ckpt") as d:
            save_file({"w": torch.zeros(2)}, str(d / "model.safetensors"))  # safetensors itself creates 0600
            torch.save({"w": 1}, d / "train_state.pt")
            (d / "config.json").write_text("{}")
            (d / "sub").mkdir()
            (d / "sub" / "x.txt").write_text("x")
        with FolderLock(tmp_path / "locked"):
            lock_mode = (tmp_path / "locked" / FolderLock.NAME).stat().st_mode & 0o777
    finally:
        os.umask(old)

    def mode(p):
        return p.stat().st_mode & 0o777

    assert mode(tmp_path / "plain.txt") == file_mode
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "w.safetensors") == file_mode
    ckpt = tmp_path / "ckpt"
    assert {p.name: mode(p) for p in ckpt.rglob("*") if p.is_file()} == dict.fromkeys(
        ["model.safetensors", "train_state.pt", "config.json", "x.txt"], file_mode
    )
    assert mode(ckpt) == mode(ckpt / "sub") == dir_mode and lock_mode == file_mode


# -- outputs that are inputs ------------------------------------------------------------------------------------


def test_refuse_overlap_sees_through_symbolic_links(tmp_path):
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    manifest = data / "manifest.csv"
    manifest.write_text("path,age\n")
    (tmp_path / "link.csv").symlink_to(manifest)
    (tmp_path / "data-link").symlink_to(data)
    runs = tmp_path / "runs"
    runs.mkdir()

    refuse_overlap([runs / "run1", tmp_path / "preds.csv"], [manifest, data / "img"])  # apart: fine
    with pytest.raises(
        OverlapError,
        match=r"link\.csv \(through a symbolic link, it is .*manifest\.csv\): this output "
        r"is also an input",
    ):
        refuse_overlap([tmp_path / "link.csv"], [manifest])
    with pytest.raises(OverlapError, match=r"this output lies inside the input folder .*data"):
        refuse_overlap([tmp_path / "data-link" / "img" / "out"], [data])
    refuse_overlap([data / "check.json"], [data], inside_inputs_ok=True)  # a report beside the data, if allowed
    with pytest.raises(
        OverlapError,
        match=r"data-link \(through a symbolic link, it is .*data\): this output folder "
        r"is replaced whole, but the input .*link\.csv \(through a symbolic link, "
        r"it is .*manifest\.csv\) lies inside it",
    ):
        refuse_overlap([], [tmp_path / "link.csv"], replaced=[tmp_path / "data-link"])
    with pytest.raises(OverlapError, match=r"replaced whole, but the input .*img lies inside it"):
        refuse_overlap([], [data / "img"], replaced=[tmp_path / "data-link"])
    with pytest.raises(OverlapError, match="also an input"):
        refuse_overlap([tmp_path / "data-link" / "manifest.csv"], [manifest])
    refuse_overlap([None], [None, manifest], replaced=[None])
    assert issubclass(OverlapError, OutputError) and manifest.read_text() == "path,age\n"
