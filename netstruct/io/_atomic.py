"""Atomic file writing and path checks shared by the writers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..exceptions import InvalidParameterError

__all__ = ["atomic_write", "check_out_path", "check_in_path"]


def check_out_path(path: str | os.PathLike, func: str) -> Path:
    """Check that ``path`` can be written (its folder exists)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"The 'path' parameter of {func} must be a str or path. Got {path!r} instead.")
    p = Path(path)
    if not p.parent.exists():
        raise InvalidParameterError(
            f"The 'path' parameter of {func} points into {str(p.parent)!r}, which does not exist; create the folder first."
        )
    if p.is_dir():
        raise InvalidParameterError(f"The 'path' parameter of {func} is a directory ({str(p)!r}); give a file name.")
    return p


def check_in_path(path: str | os.PathLike, func: str) -> Path:
    """Check that ``path`` is an existing file."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"The 'path' parameter of {func} must be a str or path. Got {path!r} instead.")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{func}: no file at {str(p)!r}; check the path.")
    return p


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and move it into place only on success."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
