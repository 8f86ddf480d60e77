"""Atomic outputs that never replace anything mechscope did not write.

Every file and folder is assembled under a temporary sibling name and renamed into place,
so nobody ever sees half an output. An existing output is replaced only when an `Owner`
check (its marker file) says mechscope wrote it; anything else at the path raises
`OutputError` before any work starts. Replacing a folder moves the old one aside until
the new one is in place. Leftovers carry the writing process's id in their names:

    .NAME.mechscope-tmp-PID-XXXXXXXX   an output being assembled, or being removed
    .NAME.mechscope-old-PID            the output being replaced

The next write at the path, and `recover` (which readers call), put back an old folder
whose swap was interrupted and remove temporaries whose writing process is gone.
Leftovers of a live process are never touched.

Example:
    >>> with writing_folder("runs/mod2", owned=is_checkpoint, what="a checkpoint") as tmp:
    ...     (tmp / "checkpoint.json").write_text("{}")
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mechscope.errors import OutputError

__all__ = [
    "Owner",
    "check_output",
    "writing_folder",
    "write_file",
    "recover",
    "owned_png",
    "os_error",
    "PNG_SOFTWARE",
]

Owner = Callable[[Path], bool]
"""True when an existing path holds an output of the kind being written (by its marker)."""

PNG_SOFTWARE = "mechscope"
"""The PNG `Software` text chunk of every figure mechscope writes; `owned_png` checks it."""

_NAME_MAX = 255  # bytes per path component on common file systems
_STEM_MAX = 64  # longer names are shortened (with a hash) inside temporary names
_LEFTOVER = re.compile(r"\.mechscope-(tmp|old)-(\d+)(?:-|$)")
_ACTIVE: set[Path] = set()  # outputs this process is writing now: their leftovers are not stale


def check_output(target: str | os.PathLike[str], *, owned: Owner, what: str, folder: bool = True) -> Path:
    """Check that `target` may be written and return it resolved; nothing is changed on disk.

    A path may be written when nothing is there, it is an empty folder (for a folder
    output), or it holds an earlier output that `owned` recognises.

    Raises:
        OutputError: the path holds something else, is a link, has a name too long for the
            file system, or lies under a file.
    """
    path = _resolve(target)
    _check_names(path)
    if path.is_symlink():
        raise OutputError(f"{str(path)!r} is a symbolic link; write {what} to a real path instead.")
    if path.exists():
        if folder and path.is_dir() and (_is_empty(path) or owned(path)):
            return path
        if not folder and path.is_file() and owned(path):
            return path
        kind = "folder" if path.is_dir() else "file"
        raise OutputError(
            f"{str(path)!r} is an existing {kind} that does not hold {what}, and mechscope never replaces what it "
            "did not write; choose a new path (or an empty folder)."
        )
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {what} at {str(path)!r}: {str(ancestor)!r} is a file, not a folder.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} at {str(path)!r}: no permission to write in {str(ancestor)!r}.")
    return path


@contextmanager
def writing_folder(target: str | os.PathLike[str], *, owned: Owner, what: str) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `target` whole.

    An earlier output at `target` stays in place until the new one is complete; on any
    error (or interrupt) the temporary folder is removed and `target` is untouched.

    Raises:
        OutputError: `target` may not be written (see `check_output`), or an OS error.
    """
    path = _resolve(target)
    recover(path, owned=owned)
    check_output(path, owned=owned, what=what)
    _ACTIVE.add(path)
    try:
        with os_error(path.parent, f"write {what}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=path.parent))
        try:
            yield tmp
            with os_error(path, f"write {what}"):
                _swap(tmp, path, owned=owned, what=what)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        _ACTIVE.discard(path)


def write_file(
    target: str | os.PathLike[str],
    write: Callable[[Path], object],
    *,
    owned: Owner,
    what: str,
    mode: int = 0o644,
    tidy: bool = True,
) -> Path:
    """Write a file atomically: `write(tmp)` fills a temporary sibling that is renamed over `target`.

    An existing file at `target` is replaced only when `owned` recognises it. `tidy=False`
    skips looking for leftovers of interrupted writes (for files inside a fresh folder).

    Raises:
        OutputError: `target` may not be written, or an OS error (the message names the path).
    """
    path = _resolve(target)
    if tidy:
        recover(path, owned=owned)
    check_output(path, owned=owned, what=what, folder=False)
    with os_error(path, f"write {what}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=path.suffix, dir=path.parent)
        os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        with os_error(path, f"write {what}"):
            os.chmod(tmp, mode)  # mkstemp makes owner-only files; outputs are for anyone who reads the folder
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def recover(target: str | os.PathLike[str], *, owned: Owner) -> None:
    """Tidy what an interrupted write at `target` left, without touching anything else.

    An old output moved aside by a swap that never finished is put back when `target` is
    missing (and removed when `target` holds the new one); temporaries whose writing
    process is gone are removed. Leftovers of live processes, and anything `owned` does
    not recognise, are left alone.
    """
    path = _resolve(target)
    if path in _ACTIVE or not path.parent.is_dir():
        return
    prefix = f".{_stem(path.name)}.mechscope-"
    try:
        entries = [entry for entry in path.parent.iterdir() if entry.name.startswith(prefix)]
    except OSError:
        return
    for entry in sorted(entries):
        found = _LEFTOVER.match(entry.name[len(prefix) - len(".mechscope-"):])
        if found is None or _alive(int(found.group(2))):
            continue
        if found.group(1) == "tmp":
            _remove(entry)
        elif entry.is_dir() and not entry.is_symlink() and owned(entry):
            if not os.path.lexists(path):
                os.replace(entry, path)  # the swap stopped between its renames: the old output comes back
            else:
                _discard(entry, path)


def owned_png(path: Path) -> bool:
    """True for a PNG file that mechscope wrote (its `Software` text chunk says so)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"tEXtSoftware\x00" + PNG_SOFTWARE.encode() in head


@contextmanager
def os_error(path: str | os.PathLike[str], doing: str) -> Iterator[None]:
    """Turn an OSError into an OutputError that names the path and says what failed."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno == errno.ENAMETOOLONG:
            reason += f" (each name in a path may have at most {_NAME_MAX} bytes)"
        where = err.filename if err.filename is not None else os.fspath(path)
        raise OutputError(f"could not {doing} at {str(where)!r}: {reason}.") from err


def _swap(tmp: Path, path: Path, *, owned: Owner, what: str) -> None:
    if not os.path.lexists(path) or (path.is_dir() and not path.is_symlink() and _is_empty(path)):
        os.replace(tmp, path)  # rename onto nothing, or over an empty folder
        return
    if path.is_symlink() or not path.is_dir() or not owned(path):  # something appeared while we worked
        raise OutputError(f"{str(path)!r} changed while {what} was written and no longer holds one; nothing replaced.")
    old = path.with_name(f".{_stem(path.name)}.mechscope-old-{os.getpid()}")
    if os.path.lexists(old):
        _discard(old, path)
    os.replace(path, old)
    os.replace(tmp, path)
    _discard(old, path)


def _discard(entry: Path, path: Path) -> None:
    """Remove our own leftover: renamed to a temporary name first, so a crash mid-way leaves only that."""
    trash = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=path.parent))
    os.replace(entry, trash / "old")
    _remove(trash)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # outputs this process is writing now are in _ACTIVE and never reach here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid at all: leave it alone
    return True


def _tmp_prefix(path: Path) -> str:
    return f".{_stem(path.name)}.mechscope-tmp-{os.getpid()}-"


def _stem(name: str) -> str:
    if len(name) <= _STEM_MAX:
        return name
    return f"{name[:48]}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def _is_empty(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def _resolve(target: str | os.PathLike[str]) -> Path:
    path = Path(target).expanduser()
    # The parent is resolved, not the path itself: a link at the path must be seen, not followed.
    parent = path.absolute().parent.resolve() if path.name not in ("", ".", "..") else path.resolve().parent
    name = path.name if path.name not in ("", ".", "..") else path.resolve().name
    return parent / name


def _check_names(path: Path) -> None:
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX:
            raise OutputError(
                f"the name {part[:40]!r}... in {str(path)[:80]!r} has {len(part.encode('utf-8', 'surrogateescape'))} "
                f"bytes; file systems allow at most {_NAME_MAX}: choose a shorter path."
            )
