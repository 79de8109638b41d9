"""The run folder: one writer at a time, never another's files, repaired after an interrupted save.

Layout of a run folder: ``run.json`` (marks a cilf run: version, command, start time), ``last/`` (checkpoint +
train_state.pt, written whole every epoch), ``prev/`` (the epoch before: resume falls back to it when ``last/``
is damaged), ``best/`` (lowest validation MAE), ``metrics.json``, ``history.json``, ``test_predictions.csv``.
One process writes a run folder at a time (``.cilf-lock``, see ``cilf.io.FolderLock``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import cilf
from cilf.app.distributed import DistContext
from cilf.io import FolderLock, atomic_directory, recover_directory, write_json
from cilf.persist.checkpoint import CheckpointError, is_checkpoint, load_train_state

RUN_MARKER = "run.json"


def foreign_files(out: Path) -> list[str]:
    """Names in ``out`` when it holds files but nothing says cilf wrote them (no run.json, lock or last/)."""
    if not out.is_dir() or any((out / n).exists() for n in (RUN_MARKER, FolderLock.NAME, "last")):
        return []
    return sorted(p.name for p in out.iterdir())


def _has_run(out: Path) -> bool:
    """A saved epoch (or the remains of one cut between its renames) is in ``out``."""
    return (
        is_checkpoint(out / "last")
        or (out / "prev").is_dir()
        or any(out.glob(".last.old-*"))
        or any(out.glob(".prev.old-*"))
    )


def open_run_folder(out: Path, resume: bool, force: bool, say=print) -> FolderLock:
    """Take ``out`` for this run: refuse others' files (unless ``force``) and a second writer; repair, mark it.

    Returns the held lock. A save cut between its two renames is put back; temporaries of an
    interrupted save are removed; a new run folder gets ``run.json``.
    """
    names = foreign_files(out)
    if names and not force:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise FileExistsError(
            f"{out} holds files cilf did not write ({shown}); choose another --out, or pass "
            f"--force to train there anyway (metrics.json, history.json, test_predictions.csv, "
            f"last/, best/ would be replaced)"
        )
    lock = FolderLock(out, "train").acquire()
    try:
        if _has_run(out) and not resume:
            raise FileExistsError(
                f"{out} already holds a training run; pass --resume to continue it or choose another --out"
            )
        for name in ("last", "prev", "best"):
            if recover_directory(out / name) is not None:
                say(f"{out / name}: put back the checkpoint that an interrupted save had moved aside")
        if resume:
            set_aside_damaged_last(out, say)
        for tmp in out.glob(".*.tmp"):  # cilf.io temporaries of a killed save; the lock says no one else writes
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        if not (out / RUN_MARKER).is_file():
            argv = ["python", "-m", "cilf", *sys.argv[1:]] if Path(sys.argv[0]).name == "__main__.py" else sys.argv
            write_json(
                out / RUN_MARKER,
                {
                    "cilf_version": cilf.__version__,
                    "command": shlex.join(argv),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                root=out,
            )
    except BaseException:
        lock.release()
        raise
    return lock


def is_fresh(out: Path) -> bool:
    """``out`` does not exist yet or is an empty folder (so a run that saves nothing may leave it as it was)."""
    try:
        return not out.exists() or (out.is_dir() and not any(out.iterdir()))
    except OSError:
        return False


def discard_unused_run_folder(out: Path, remove_folder: bool) -> bool:
    """After a run in a fresh folder failed before saving an epoch (its lock released): remove what it wrote
    (run.json, cilf temporaries) and, if ``remove_folder`` (this run created it), the folder once empty. A folder
    with a saved epoch, or with any other file, is left alone. Returns whether the folder is gone."""
    try:
        if not out.is_dir() or _has_run(out) or (out / "best").exists():
            return False
        (out / RUN_MARKER).unlink(missing_ok=True)  # the lock was released by its holder (it may be another's now)
        for tmp in out.glob(".*.tmp"):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        if remove_folder and not any(out.iterdir()):
            out.rmdir()
            return True
    except OSError:
        pass
    return False


def claim_run_folder(out: Path, resume: bool, force: bool, ctx: DistContext, say) -> FolderLock | None:
    """Rank 0 opens the run folder; every rank stops if it could not (so no rank waits forever)."""
    lock, err = None, None
    if ctx.is_main:
        try:
            lock = open_run_folder(out, resume, force, say)
        except Exception as e:  # re-raised below, once every rank knows
            err = e
    if not ctx.all_agree(err is None):
        if err is not None:
            raise err
        raise RuntimeError(f"{out}: rank 0 could not open the run folder (its error says why)")
    return lock


def set_aside_damaged_last(out: Path, say=print) -> None:
    """Rank 0, resuming: if last/ fails verification, move it aside (``last.damaged-*``) so prev/ is resumed.

    Raises CheckpointError (one line) when there is no good prev/ to fall back to.
    """
    last, prev = out / "last", out / "prev"
    if not last.exists():
        return
    try:
        load_train_state(last)
        return
    except CheckpointError as e:
        damaged = str(e)
    try:
        epoch = load_train_state(prev)["epoch"] + 1 if prev.exists() else None
    except CheckpointError:
        epoch = None
    if epoch is None:
        raise CheckpointError(
            f"{damaged} (and {out} has no earlier good checkpoint, prev/, to fall back to: start a "
            f"new run with another --out)"
        )
    aside = out / f"last.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    os.rename(last, aside)
    say(f"{damaged}\n-> {last} moved aside to {aside.name}; resuming from the epoch before, {prev} (epoch {epoch})")


def keep_copy(src: Path, dest: Path) -> Path:
    """Replace folder ``dest`` whole by a copy of ``src`` (hard links: cilf never rewrites a file in place)."""
    with atomic_directory(dest) as tmp:
        for f in src.iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
    return dest
