"""Safe writing: every file cilf writes goes through here.

- ``atomic_write``: a unique temporary file beside the target (created with O_EXCL, so a planted
  file or symlink at a temporary name is never written through), fsynced, then renamed over the
  target; the target itself is never written through a symlink.
- ``atomic_directory``: a folder whose whole content appears at once (checkpoints): built in a fresh
  temporary folder beside it, fsynced, swapped in; a crash between the two renames leaves the
  previous folder as ``.NAME.old-*``, which ``recover_directory`` puts back.
- ``FolderLock``: one writer per output folder (a lock file holding the PID; stale locks of dead
  processes on this host are taken over).
- ``OutputError``: a full disk, a read-only folder, a missing permission, a name too long, a file where
  a folder should be (any OSError met while writing) becomes one line naming the path and what to do,
  and nothing torn is left behind. ``make_dirs`` creates folders the same way.
- File modes: a file written here gets the mode a plain ``open(path, "w")`` would give (0666 less the
  umask), also where the writer (mkstemp, safetensors) created it 0600.
- ``refuse_overlap``: before a command reads or writes anything, refuse outputs that are, or would
  replace, or would be read back as, its inputs (symbolic links resolved).
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
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]
NAME_MAX = 255  # bytes in one file or folder name on the usual file systems (ext4, xfs, btrfs, tmpfs, APFS)


def overlong_part(path: str | Path) -> tuple[str, int] | None:
    """The first part of ``path`` longer than NAME_MAX bytes (shortened for a message) and its length, or None."""
    for part in Path(path).parts:
        n = len(os.fsencode(part))
        if n > NAME_MAX:
            return (part if len(part) <= 40 else part[:30] + "..." + part[-6:]), n
    return None


_ADVICE = {
    errno.ENOSPC: "the disk is full: free space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
    errno.ENAMETOOLONG: "a name in this path is too long for the file system: choose a shorter name",
    errno.ENOTDIR: "a part of this path is a file, not a folder: choose another path",
    errno.EISDIR: "this is a folder, not a file: give a file name",
    errno.EEXIST: "a file is in the way where a folder should be created: remove it or choose another path",
    errno.ENOENT: "a folder on this path does not exist (or was removed meanwhile): create it or choose another path",
    errno.ELOOP: "too many levels of symbolic links on this path: choose another path",
    errno.EINVAL: "the file system does not accept this name (a character it refuses?): choose another name",
    errno.EFBIG: "the file is larger than this file system allows: choose another folder",
    errno.EIO: "input/output error (a failing disk or a lost network share): check the disk or choose another folder",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or close other programs",
    errno.ENFILE: "too many open files on this system: close other programs and retry",
    errno.EBUSY: "the file or folder is in use by another program: retry when it is done or choose another path",
    errno.ETXTBSY: "the file is in use by another program: retry when it is done or choose another path",
    errno.EXDEV: "the temporary file and the target are on different file systems: choose another folder",
}


class OutputError(RuntimeError):
    """A write that failed for a reason the user can fix; the message names the path and the fix."""


class OverlapError(OutputError):
    """An output that is, would replace, or would be read back as one of the command's inputs."""


def _long_name(path: Path) -> str | None:
    """Why ``path`` is too long (a name over NAME_MAX bytes, or the whole path over 4096), else None."""
    for part in path.parts:
        n = len(os.fsencode(part))
        if n > NAME_MAX:
            shown = part if len(part) <= 40 else part[:30] + "..." + part[-6:]
            return (
                f"the name {shown!r} is {n} bytes, more than the {NAME_MAX} a file system allows for one file or "
                f"folder name: choose a shorter name"
            )
    n = len(os.fsencode(str(path)))
    if n >= 4096:
        return f"the path is {n} bytes, more than the 4095 the system allows: choose a shorter path"
    return None


def output_error(path: str | Path, err: OSError) -> OutputError:
    """The one-line error for an OSError met while writing ``path``: the path, the cause and the fix."""
    why = None
    if err.errno == errno.ENAMETOOLONG:
        why = _long_name(Path(path))
    why = why or _ADVICE.get(err.errno or 0) or f"{err.strerror or err}: check the path and its permissions"
    return OutputError(f"{path}: cannot write ({why})")


def check_output_path(path: str | Path) -> Path:
    """``path`` as a Path, or OutputError at once when one of its names is too long to be created."""
    path = Path(path)
    why = _long_name(path)
    if why is not None:
        raise OutputError(f"{path}: cannot write ({why})")
    return path


def make_dirs(path: str | Path) -> Path:
    """Create folder ``path`` and its parents (existing ones are fine); any OSError becomes OutputError."""
    path = check_output_path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path, e) from None
    return path


def _side_name(name: str, extra: int) -> str:
    """``name`` shortened (whole UTF-8 characters) so that ``.NAME.`` plus ``extra`` bytes fit in NAME_MAX:
    the temporary and previous-version names beside a target with a long (but valid) name."""
    room = NAME_MAX - 2 - extra
    raw = os.fsencode(name)
    if len(raw) <= room:
        return name
    return os.fsdecode(raw[:room]).encode("utf-8", "ignore").decode("utf-8", "ignore") if room > 0 else ""


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
    """The process umask, read without changing it where /proc allows (os.umask(0) would, for a moment, let
    another thread create world-writable files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp create 0600/0700 and some writers (safetensors) 0600; give ``path`` the mode a plain
    create would (0666 for a file, 0777 for a folder, less the umask)."""
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
    """Raise OutputError if ``path`` is a symlink (cilf never writes through one) or cannot be looked at
    (a name too long, a file where a folder should be, no permission)."""
    path = check_output_path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise output_error(path, e) from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(
            f"{path}: is a symbolic link; cilf does not write through links (remove it or choose another folder)"
        )


def ensure_inside(path: str | Path, root: str | Path) -> Path:
    """``path`` resolved, after checking that it does not leave ``root`` through a symlink or '..'."""
    p = check_output_path(path)
    try:
        root_r = Path(root).resolve()
        resolved = (p.parent.resolve() / p.name) if not p.is_symlink() else p.resolve()
    except OSError as e:
        raise output_error(p, e) from None
    if root_r != resolved and root_r not in resolved.parents:
        raise OutputError(
            f"{path}: leads outside {root} (through a symbolic link or '..'); cilf writes only inside its output folder"
        )
    return resolved


def atomic_write(path: str | Path, write: Callable[[Path], Any], root: str | Path | None = None) -> Path:
    """Write ``path`` all at once: ``write(tmp)`` fills a fresh temporary file, which replaces ``path``.

    ``root``: the output folder ``path`` must stay inside (symlinks out of it are refused).
    Raises OutputError (path and fix named) on a full disk or missing permission; no temporary is left.
    """
    path = check_output_path(path)
    if root is not None:
        ensure_inside(path, root)
    refuse_symlink(path)
    make_dirs(path.parent)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{_side_name(path.name, 12)}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(path, e) from None
    os.close(fd)
    tmp = Path(name)
    try:
        _usual_mode(tmp)
        write(tmp)
        _usual_mode(tmp)  # again: a writer may have replaced the file with a 0600 one of its own
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


def _settle(folder: Path) -> None:
    """Give every file and sub-folder below ``folder`` the usual mode, fsync the files, then the folders."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            if not (Path(dirpath) / d).is_symlink():
                _usual_mode(Path(dirpath) / d, directory=True)
        for name in filenames:
            f = Path(dirpath) / name
            if f.is_symlink():
                continue
            _usual_mode(f)
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


def _old_prefix(dest: Path) -> str:
    """The name prefix of ``dest``'s previous version during a swap (``.NAME.old-``, NAME shortened to fit)."""
    return f".{_side_name(dest.name, 40)}.old-"


@contextmanager
def atomic_directory(dest: str | Path) -> Iterator[Path]:
    """Build ``dest``'s whole content in the yielded fresh folder; on success it replaces ``dest``.

    On an exception nothing changes (the temporary folder is removed). A crash between the two
    renames of the swap leaves ``.NAME.old-*`` beside ``dest``: see ``recover_directory``.
    """
    dest = check_output_path(dest)
    refuse_symlink(dest)
    make_dirs(dest.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{_side_name(dest.name, 12)}.", suffix=".tmp", dir=dest.parent))
    except OSError as e:
        raise output_error(dest, e) from None
    old = None
    try:
        _usual_mode(tmp, directory=True)
        yield tmp
        _settle(tmp)
        if dest.exists():
            old = dest.parent / f"{_old_prefix(dest)}{os.getpid()}-{time.monotonic_ns()}"
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
    dest = check_output_path(dest)
    try:
        if dest.exists() or not dest.parent.is_dir():
            return None
        prefix = _old_prefix(dest)
        olds = sorted(
            (p for p in dest.parent.iterdir() if p.name.startswith(prefix) and p.name.rsplit("-", 1)[-1].isdigit()),
            key=lambda p: int(p.name.rsplit("-", 1)[-1]),
        )
        if not olds:
            return None
        os.rename(olds[-1], dest)
    except OSError as e:
        raise output_error(dest, e) from None
    return dest


def _exists(path: Path) -> bool:
    """``path.exists()``, False where it cannot even be looked at (a name too long, no permission)."""
    try:
        return path.exists()
    except OSError:
        return False


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
            _usual_mode(Path(name))
            with os.fdopen(fd, "w") as f:
                f.write(self.token)
            os.link(name, self.path)
        finally:
            os.unlink(name)

    def acquire(self) -> FolderLock:
        make_dirs(self.folder)
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
                raise OutputError(
                    f"{self.folder} is in use by {who}; wait for it to finish or choose another "
                    f"folder (if no such process runs, delete {self.path})"
                ) from None
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

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def waiting_lock(
    folder: str | Path, command: str = "cilf", wait_s: float = 600.0, say: Callable[[str], Any] | None = None
) -> Iterator[FolderLock]:
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
            if not _exists(lock.path):  # released meanwhile (or a write error, which the next try raises again)
                try:
                    lock.acquire()
                    break
                except OutputError:
                    if not _exists(lock.path):
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


# ---- outputs that would change or mix with the inputs ------------------------------------------------------


def _real(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute with every symbolic link of its existing part resolved (it need not exist)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _via(given: str | os.PathLike[str], real: Path) -> str:
    return f" (through a symbolic link, it is {real})" if Path(os.path.abspath(os.fspath(given))) != real else ""


def refuse_overlap(
    outputs: Iterable[PathLike | None],
    inputs: Iterable[PathLike | None],
    replaced: Iterable[PathLike | None] = (),
    inside_inputs_ok: bool = False,
) -> None:
    """Refuse, before anything is read or written, outputs that would change or mix with the inputs.

    ``outputs``: files or folders the command writes (folders: written into); ``inputs``: files or folders it
    reads (a folder: everything below it); ``replaced``: output folders it replaces whole (their content is
    deleted). None entries are ignored. Paths are compared after resolving symbolic links. Raises
    OverlapError (an OutputError: one line naming both paths and the fix) when an output is an input, an
    output lies inside an input folder (unless ``inside_inputs_ok``: e.g. a report beside the data that no
    later read picks up), or an input lies inside (or is) a folder in ``replaced``. Returns None.
    """
    replaced = [p for p in replaced if p is not None]
    ins = [(p, _real(p)) for p in inputs if p is not None]
    for out in [p for p in outputs if p is not None] + replaced:
        o = _real(out)
        for given, i in ins:
            if o == i:
                raise OverlapError(
                    f"{out}{_via(out, o)}: this output is also an input ({given}{_via(given, i)}); "
                    f"cilf never writes over what it reads: choose another output path"
                )
            if not inside_inputs_ok and i in o.parents and os.path.isdir(i):
                raise OverlapError(
                    f"{out}{_via(out, o)}: this output lies inside the input folder {given}"
                    f"{_via(given, i)}; what is written there would mix with (and be read back as) "
                    f"the input: choose an output outside {given}"
                )
    for folder in replaced:
        f = _real(folder)
        for given, i in ins:
            if f in i.parents:
                raise OverlapError(
                    f"{folder}{_via(folder, f)}: this output folder is replaced whole, but the input "
                    f"{given}{_via(given, i)} lies inside it; choose another output folder or move "
                    f"the input out of it"
                )
