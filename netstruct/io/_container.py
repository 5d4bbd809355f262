"""A checksummed zip container of a JSON manifest and ``.npy`` arrays (no pickle)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import FileFormatError
from ._atomic import atomic_write

__all__ = ["write_container", "read_container"]

_MANIFEST = "manifest.json"


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def write_container(path: Path, kind: str, version: int, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``meta`` and ``arrays`` atomically; every entry gets a sha256 in the manifest."""
    blobs = {f"arrays/{k}.npy": _npy_bytes(v) for k, v in arrays.items()}
    manifest = {
        "format": kind,
        "version": version,
        "meta": meta,
        "checksums": {k: hashlib.sha256(b).hexdigest() for k, b in blobs.items()},
    }
    mbytes = json.dumps(manifest, sort_keys=True).encode()
    with atomic_write(path) as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(_MANIFEST, mbytes)
        zf.writestr("manifest.sha256", hashlib.sha256(mbytes).hexdigest())
        for k, b in blobs.items():
            zf.writestr(k, b)


def read_container(path: Path, kind: str, max_version: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate a container written by :func:`write_container`.

    Raises
    ------
    FileFormatError
        Truncated or altered file, wrong format, newer version, checksum mismatch.
    """
    where = f"{str(path)!r}"
    try:
        zf = zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileFormatError(f"{where} is not a readable netstruct file (truncated or not a zip archive: {exc}).") from None
    with zf:
        try:
            mbytes = zf.read(_MANIFEST)
            digest = zf.read("manifest.sha256").decode()
        except KeyError:
            raise FileFormatError(f"{where} has no netstruct manifest; it was not written by netstruct.") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FileFormatError(f"{where} is damaged ({exc}).") from None
        if hashlib.sha256(mbytes).hexdigest() != digest:
            raise FileFormatError(f"{where}: the manifest was altered (checksum mismatch).")
        manifest = json.loads(mbytes)
        if manifest.get("format") != kind:
            raise FileFormatError(f"{where} holds a {manifest.get('format')!r}, not a {kind!r}.")
        if int(manifest.get("version", 0)) > max_version:
            raise FileFormatError(
                f"{where} was written by a newer netstruct (format version {manifest['version']} > "
                f"{max_version}); upgrade netstruct to read it."
            )
        arrays = {}
        for name, expected in manifest["checksums"].items():
            try:
                blob = zf.read(name)
            except KeyError:
                raise FileFormatError(f"{where} lacks entry {name!r} (truncated?).") from None
            except (zipfile.BadZipFile, OSError, EOFError, zlib_error()) as exc:
                raise FileFormatError(f"{where}: entry {name!r} is damaged ({exc}).") from None
            if hashlib.sha256(blob).hexdigest() != expected:
                raise FileFormatError(f"{where}: entry {name!r} was altered (checksum mismatch).")
            try:
                arrays[name[len("arrays/") : -len(".npy")]] = np.load(io.BytesIO(blob), allow_pickle=False)
            except ValueError as exc:
                raise FileFormatError(f"{where}: entry {name!r} is not a valid array ({exc}).") from None
    return manifest["meta"], arrays


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error
