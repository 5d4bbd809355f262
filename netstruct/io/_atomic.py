"""Atomic file writing and path checks shared by the writers.

:func:`atomic_write` writes to a temporary file beside the target and moves it into place only
when the write succeeded. The temporary is created with mode ``0o666`` filtered by the umask,
so the finished file gets the same permissions as any file the user creates (``mkstemp``'s
``0o600`` would hide shared exports from colleagues). A failed write removes its temporary;
temporaries left by a killed process (their name holds the writer's pid) are removed by the
next write of the same file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..exceptions import InvalidParameterError

__all__ = ["atomic_write", "check_out_path", "check_in_path", "check_not_input"]


def check_out_path(path: str | os.PathLike, func: str, *, name: str = "path") -> Path:
    """Check that ``path`` can be written (its folder exists, is a folder and is writable)."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} must be a str or path. Got {path!r} instead."
        )
    p = Path(path)
    if str(path) == "" or p.name == "":
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} must name a file. Got {str(path)!r} instead."
        )
    parent = p.parent
    if not parent.exists():
        below = next((q for q in parent.parents if q.exists()), None)
        if below is not None and not below.is_dir():
            raise InvalidParameterError(
                f"The {name!r} parameter of {func} lies below {str(below)!r}, which is a file, "
                "not a folder; choose another location."
            )
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} points into {str(parent)!r}, which does not exist; "
            "create the folder first."
        )
    if not parent.is_dir():
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} lies below {str(parent)!r}, which is a file, not a "
            "folder; choose another location."
        )
    if p.is_dir():
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} is a directory ({str(p)!r}); give a file name."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} points into {str(parent)!r}, which is not writable; "
            "choose a folder you can write to."
        )
    return p


def check_in_path(path: str | os.PathLike, func: str, *, name: str = "path") -> Path:
    """Check that ``path`` is an existing, readable file."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} must be a str or path. Got {path!r} instead."
        )
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{func}: no file at {str(p)!r}; check the path.")
    if not os.access(p, os.R_OK):
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} points to {str(p)!r}, which is not readable; check "
            "its permissions."
        )
    return p


def check_not_input(out: Path, inputs: list[Path], func: str, name: str) -> None:
    """Refuse an output path that is one of the input files (writing would destroy the input)."""
    for q in inputs:
        with contextlib.suppress(OSError):
            if out.exists() and os.path.samefile(out, q):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {func} is the input file {str(q)!r}; writing there "
                    "would destroy it. Choose another output path."
                )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove temporaries of ``path`` left by writers that no longer run on this machine."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for q in path.parent.iterdir():
            name = q.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid = name[len(prefix) : -len(".tmp")].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    q.unlink()


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and move it into place only on success.

    ``mode`` is a write mode of :func:`open` (``"wb"``, ``"w"``, ``"w+b"``); ``kwargs`` go to
    :func:`os.fdopen` (``encoding``, ``newline``). The file gets the umask's usual permissions.
    """
    path = Path(path)
    _remove_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    flags = os.O_CREAT | os.O_EXCL | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    flags |= getattr(os, "O_BINARY", 0) if "b" in mode else 0
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
