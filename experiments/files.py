"""How the machine side writes files: canonical JSON and atomic, group-readable writes.

Every file a study holds (manifest, feature store, subsets, experiment files) goes
through `atomic_write`: a temporary file in the target's folder, renamed over the target
only when it is complete, so a crash or Ctrl-C never leaves half a file. `mkstemp` makes
its files owner-only (0600); a study folder is shared with the study's group, so the
finished file gets the permissions a plain `open()` would give, plus group read.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def canonical_json(obj) -> bytes:
    """Return the canonical JSON bytes of ``obj``: UTF-8, sorted keys, two-space indent,
    trailing newline, so that equal content gives equal bytes (docs/contracts.md)."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    # Linux reports the umask in /proc without changing it; elsewhere os.umask can only be
    # read by setting it, so that is done under a lock and set straight back.
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Return the permission bits of a file this package writes: what the umask allows
    for a new file, always with group read."""
    return (0o666 & ~_current_umask()) | 0o040


def make_dirs(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` and any missing parents, each open to the group (read
    and enter) as far as the umask allows the owner; return the path."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    mode = (0o777 & ~_current_umask()) | 0o050
    for p in missing:
        os.chmod(p, mode)
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, fsync: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file handle whose content replaces ``path`` atomically when the
    block ends without error (the parent folder is created); on error the temporary file
    is removed and ``path`` is left as it was."""
    path = Path(path)
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_write(path, fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj, fsync: bool = False) -> Path:
    """Write ``obj`` as canonical JSON to ``path`` atomically; return the path."""
    return write_bytes(path, canonical_json(obj), fsync=fsync)


def write_with(path: str | os.PathLike, writer: Callable[[BinaryIO], object]) -> Path:
    """Call ``writer(fh)`` on a temporary file that then replaces ``path`` atomically
    (for np.save, np.savez, DataFrame.to_csv, Figure.savefig); return the path."""
    with atomic_write(path) as fh:
        writer(fh)
    return Path(path)
