"""Safe writing: every file cilf writes goes through here.

- ``atomic_write``: a unique temporary file beside the target (created with O_EXCL, so a planted
  file or symlink at a temporary name is never written through), fsynced, then renamed over the
  target; the target itself is never written through a symlink.
- ``atomic_directory``: a folder whose whole content appears at once (checkpoints): built in a fresh
  temporary folder beside it, fsynced, swapped in; a crash between the two renames leaves the
  previous folder as ``.NAME.old-*``, which ``recover_directory`` puts back.
- ``FolderLock``: one writer per output folder (a lock file holding the PID; stale locks of dead
  processes on this host are taken over).
- ``OutputError``: a full disk, a read-only folder or a missing permission becomes one line naming
  the path and what to do, and nothing torn is left behind.
- ``json_text``: JSON without NaN or infinity (they become null).
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

_ADVICE = {
    errno.ENOSPC: "the disk is full: free space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
}


class OutputError(RuntimeError):
    """A write that failed for a reason the user can fix; the message names the path and the fix."""


def output_error(path: str | Path, err: OSError) -> OutputError:
    """The one-line error for an OSError met while writing ``path``."""
    why = _ADVICE.get(err.errno or 0, err.strerror or str(err))
    return OutputError(f"{path}: cannot write ({why})")


def _write_failure(path: Path, exc: BaseException, ours: tuple[Path, ...] = ()) -> OutputError | None:
    """The OutputError behind a failed write, also when a library hides the OSError.

    torch.save reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc...]`` and
    safetensors as its own error type; so a non-OSError counts as a full disk when its text says so or
    when, before the partial file is removed, the file system has (almost) no space left. An OSError
    about a file outside ``ours`` (the target and its temporary) is not this write's failure (e.g. a read).
    """
    if isinstance(exc, OSError):
        f = Path(exc.filename) if isinstance(exc.filename, (str, os.PathLike)) else None
        other = f is not None and not any(f == o or o in f.parents for o in (path, *ours))
        return None if other else output_error(path, exc)
    if not isinstance(exc, RuntimeError) and type(exc).__name__ != "SafetensorError":
        return None  # a bug, KeyboardInterrupt, SystemExit: not a write failure
    text = str(exc)
    if "os error 13" in text or "Permission denied" in text:
        return output_error(path, PermissionError(errno.EACCES, "Permission denied"))
    try:
        st = os.statvfs(path.parent)
        nearly_full = st.f_bavail * st.f_frsize < (1 << 20)
    except OSError:
        nearly_full = False
    if "os error 28" in text or "No space left" in text or nearly_full:
        return output_error(path, OSError(errno.ENOSPC, "No space left on device"))
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the mode a plain create would (0666/0777 less umask)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def refuse_symlink(path: Path) -> None:
    """Raise if ``path`` is a symlink: cilf never writes through one."""
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; cilf does not write through links (remove it or choose "
                          f"another folder)")


def ensure_inside(path: str | Path, root: str | Path) -> Path:
    """``path`` resolved, after checking that it does not leave ``root`` through a symlink or '..'."""
    root_r = Path(root).resolve()
    p = Path(path)
    resolved = (p.parent.resolve() / p.name) if not p.is_symlink() else p.resolve()
    if root_r != resolved and root_r not in resolved.parents:
        raise OutputError(f"{path}: leads outside {root} (through a symbolic link or '..'); cilf writes only inside "
                          f"its output folder")
    return resolved


def atomic_write(path: str | Path, write: Callable[[Path], Any], root: str | Path | None = None) -> Path:
    """Write ``path`` all at once: ``write(tmp)`` fills a fresh temporary file, which replaces ``path``.

    ``root``: the output folder ``path`` must stay inside (symlinks out of it are refused).
    Raises OutputError (path and fix named) on a full disk or missing permission; no temporary is left.
    """
    path = Path(path)
    if root is not None:
        ensure_inside(path, root)
    refuse_symlink(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(path, e) from None
    os.close(fd)
    tmp = Path(name)
    try:
        _usual_mode(tmp)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        failure = _write_failure(path, e, (tmp,))
        tmp.unlink(missing_ok=True)
        if failure is not None:
            raise failure from None
        raise
    _fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str, root: str | Path | None = None) -> Path:
    """``atomic_write`` of a UTF-8 text."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), root)


def write_bytes(path: str | Path, data: bytes, root: str | Path | None = None) -> Path:
    """``atomic_write`` of bytes."""
    return atomic_write(path, lambda p: p.write_bytes(data), root)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (nested dicts, lists, tuples)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return finite(obj.item())
    return obj


def json_text(obj: Any) -> str:
    """Strict JSON (NaN and infinity written as null), indented, newline-terminated."""
    return json.dumps(finite(obj), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any, root: str | Path | None = None) -> Path:
    """``atomic_write`` of ``json_text(obj)``."""
    return write_text(path, json_text(obj), root)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_directory(dest: str | Path) -> Iterator[Path]:
    """Build ``dest``'s whole content in the yielded fresh folder; on success it replaces ``dest``.

    On an exception nothing changes (the temporary folder is removed). A crash between the two
    renames of the swap leaves ``.NAME.old-*`` beside ``dest``: see ``recover_directory``.
    """
    dest = Path(dest)
    refuse_symlink(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as e:
        raise output_error(dest, e) from None
    old = None
    try:
        _usual_mode(tmp, directory=True)
        yield tmp
        for f in tmp.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.rename(dest, old)
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as e:
        failure = _write_failure(dest, e, (tmp,) + ((old,) if old is not None else ()))
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dest.exists() and old.exists():
            os.rename(old, dest)  # the swap failed half-way: the previous folder goes back
        if failure is not None:
            raise failure from None
        raise


def recover_directory(dest: str | Path) -> Path | None:
    """If a swap into ``dest`` was cut between its renames, move the previous folder back; return it."""
    dest = Path(dest)
    if dest.exists() or not dest.parent.is_dir():
        return None
    olds = sorted(dest.parent.glob(f".{dest.name}.old-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    if not olds:
        return None
    os.rename(olds[-1], dest)
    return dest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class FolderLock:
    """One writer per folder: ``with FolderLock(out, "train"):`` refuses a second holder.

    The lock file ``.cilf-lock`` holds host, PID and command; a lock left by a dead process on this
    host is stale and taken over. The lock is removed on exit only if it is still ours.
    """

    NAME = ".cilf-lock"

    def __init__(self, folder: str | Path, command: str = "cilf"):
        self.folder, self.command = Path(folder), command
        self.path = self.folder / self.NAME
        self.token = f"{socket.gethostname()} {os.getpid()} {command} {time.time_ns()}"

    def _holder(self) -> tuple[str, int, str] | None:
        try:
            host, pid, command, _ = self.path.read_text().split(" ", 3)
            return host, int(pid), command
        except (OSError, ValueError):
            return None

    def _create(self) -> None:
        """The lock file, appearing whole with its token (a temporary hard-linked into place; FileExistsError if held)."""
        fd, name = tempfile.mkstemp(prefix=f"{self.NAME}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.token)
            os.link(name, self.path)
        finally:
            os.unlink(name)

    def acquire(self) -> "FolderLock":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise output_error(self.folder, e) from None
        refuse_symlink(self.path)
        for _ in range(2):
            try:
                self._create()
            except FileExistsError:
                holder = self._holder()
                if holder is not None and holder[0] == socket.gethostname() and not _alive(holder[1]):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                who = f"process {holder[1]} on {holder[0]} ({holder[2]})" if holder else "another process"
                raise OutputError(f"{self.folder} is in use by {who}; wait for it to finish or choose another "
                                  f"folder (if no such process runs, delete {self.path})") from None
            except OSError as e:
                raise output_error(self.path, e) from None
            return self
        raise OutputError(f"{self.path}: could not take the lock; delete it if no cilf process uses {self.folder}")

    def release(self) -> None:
        try:
            if self.path.read_text() == self.token:
                self.path.unlink()
        except OSError:
            pass

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def waiting_lock(folder: str | Path, command: str = "cilf", wait_s: float = 600.0,
                 say: Callable[[str], Any] | None = None) -> Iterator[FolderLock]:
    """``FolderLock(folder, command)``, waiting up to ``wait_s`` seconds (saying so once) while another holds it."""
    lock = FolderLock(folder, command)
    t0, told = time.monotonic(), False
    while True:
        try:
            lock.acquire()
            break
        except OutputError:
            if time.monotonic() - t0 > wait_s:
                raise
            if not lock.path.exists():  # released meanwhile (or a write error, which the next try raises again)
                try:
                    lock.acquire()
                    break
                except OutputError:
                    if not lock.path.exists():
                        raise
                    continue
            if not told and say is not None:
                say(f"{folder}: another cilf process is writing there; waiting for it")
                told = True
            time.sleep(0.2)
    try:
        yield lock
    finally:
        lock.release()
