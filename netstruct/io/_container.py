"""A checksummed zip container of a JSON manifest and ``.npy`` arrays (no pickle).

Layout (format version 2)
-------------------------
* ``arrays/<name>.npy`` -- one entry per array, stored (or deflated with ``compress=True``);
* ``manifest.json`` -- format, version, metadata and a checksum of every array entry;
* ``manifest.sha256`` -- the sha256 of ``manifest.json``;
* the zip comment -- the sha256 of every byte of the file outside the array data (zip headers,
  central directory, manifest), so a change to *any* byte is detected on load.

Array checksums are sha256 "trees": the sha256 of the concatenated sha256 digests of the
entry's ``.npy`` header and of its data in 16 MiB pieces. The pieces are hashed on a thread
pool (hashlib releases the GIL) while the main thread writes or reads the next piece, so
checking costs little beside the file transfer. Stored entries are read straight into the
array's memory (one copy from the page cache). Version 1 files (deflated, plain sha256 per
entry, no file digest) are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..exceptions import FileFormatError
from ._atomic import atomic_write

__all__ = ["write_container", "read_container", "CHECKSUM"]

_MANIFEST = "manifest.json"
_MANIFEST_SHA = "manifest.sha256"
_PIECE = 16 * 2**20
CHECKSUM = "sha256-tree-16MiB"
_DIGEST_LEN = 64
_LOCAL = struct.Struct("<4s5H3L2H")  # zip local file header (30 bytes)
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    if not _POOL:
        _POOL.append(
            ThreadPoolExecutor(
                max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="ns-hash"
            )
        )
    return _POOL[0]


def _sha(b: Any) -> bytes:
    return hashlib.sha256(b).digest()


def _npy_header(a: np.ndarray) -> bytes:
    d = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False, "shape": a.shape}
    h = repr(d).encode("latin1")
    total = 10 + len(h) + 1
    pad = (-total) % 64
    h = h + b" " * pad + b"\n"
    if len(h) < 2**16:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(h)) + h  # pragma: no cover - huge ndim


def _bytes_view(a: np.ndarray) -> memoryview:
    return memoryview(a.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # ndarray is a buffer


def _tree_digest(parts: list[Future]) -> str:
    return hashlib.sha256(b"".join(f.result() for f in parts)).hexdigest()


def _write_array(zf: zipfile.ZipFile, name: str, a: np.ndarray, compress: bool) -> str:
    a = np.ascontiguousarray(a)
    if a.dtype.hasobject:  # pragma: no cover - callers convert object columns first
        raise TypeError(f"array {name!r} holds Python objects")
    header = _npy_header(a)
    data = _bytes_view(a)
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    if compress:
        for attr in ("_compresslevel", "compress_level"):  # renamed in Python 3.13
            if hasattr(info, attr):
                setattr(info, attr, 1)
    info.file_size = len(header) + data.nbytes
    pool = _pool()
    parts = [pool.submit(_sha, header)]
    with zf.open(info, "w", force_zip64=info.file_size > 2**31 - 1) as fh:
        fh.write(header)
        for i in range(0, data.nbytes, _PIECE):
            piece = data[i : i + _PIECE]
            parts.append(pool.submit(_sha, piece))
            fh.write(piece)
    return _tree_digest(parts)


def write_container(
    path: Path,
    kind: str,
    version: int,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    *,
    compress: bool = False,
) -> None:
    """Write ``meta`` and ``arrays`` atomically with a checksum of every byte (inputs validated)."""
    with atomic_write(path, "w+b") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            checksums = {
                f"arrays/{k}.npy": _write_array(zf, f"arrays/{k}.npy", v, compress)
                for k, v in arrays.items()
            }
            manifest = {
                "format": kind,
                "version": version,
                "checksum": CHECKSUM,
                "meta": meta,
                "checksums": checksums,
            }
            mbytes = json.dumps(manifest, sort_keys=True).encode()
            zf.writestr(zipfile.ZipInfo(_MANIFEST, date_time=(1980, 1, 1, 0, 0, 0)), mbytes)
            zf.writestr(
                zipfile.ZipInfo(_MANIFEST_SHA, date_time=(1980, 1, 1, 0, 0, 0)),
                hashlib.sha256(mbytes).hexdigest(),
            )
        _append_file_digest(fh, list(checksums))


# ----------------------------------------------------------------------------- file digest
def _append_file_digest(fh: IO[bytes], skip: list[str]) -> None:
    """Put the digest of every byte outside the array data into the zip comment."""
    fh.flush()
    fh.seek(0)
    zf = zipfile.ZipFile(fh, "r")
    regions = _stored(zf, _data_regions(fh, zf, skip))
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(size - 22)
    eocd = fh.read(22)
    if (
        eocd[:4] != b"PK\x05\x06" or eocd[20:22] != b"\x00\x00"
    ):  # pragma: no cover - zipfile wrote it
        raise RuntimeError("unexpected end of zip archive")
    fh.seek(size - 2)
    fh.write(struct.pack("<H", _DIGEST_LEN))
    fh.flush()
    digest = _structure_digest(fh, size, regions)
    fh.seek(size)
    fh.write(digest.encode())


def _data_regions(
    fh: IO[bytes], zf: zipfile.ZipFile, names: list[str]
) -> dict[str, tuple[int, int]]:
    """(start, length) of the data of each named entry, checked against its local header."""
    out = {}
    for name in names:
        info = zf.getinfo(name)
        fh.seek(info.header_offset)
        raw = fh.read(_LOCAL.size)
        if len(raw) != _LOCAL.size:
            raise FileFormatError("a zip entry header is cut off")
        sig, _ver, _flag, method, _t, _d, _crc, _csize, _usize, nlen, xlen = _LOCAL.unpack(raw)
        if sig != b"PK\x03\x04" or method != info.compress_type:
            raise FileFormatError(f"the zip header of entry {name!r} is damaged")
        if fh.read(nlen) != info.orig_filename.encode(
            "utf-8" if info.flag_bits & 0x800 else "cp437"
        ):
            raise FileFormatError(f"the zip header of entry {name!r} does not match its name")
        out[name] = (info.header_offset + _LOCAL.size + nlen + xlen, info.compress_size)
    return out


def _stored(zf: zipfile.ZipFile, regions: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The regions of stored entries: their bytes are the array, covered by its own checksum.

    Deflated data stays in the file digest (bits a decoder ignores would escape the array's).
    """
    return {k: r for k, r in regions.items() if zf.getinfo(k).compress_type == zipfile.ZIP_STORED}


def _structure_digest(fh: IO[bytes], end: int, regions: dict[str, tuple[int, int]]) -> str:
    """sha256 of bytes [0, end) minus the given data regions (which have their own checksums)."""
    h = hashlib.sha256()
    pos = 0
    for start, length in sorted(regions.values()):
        if start < pos or start + length > end:
            raise FileFormatError("zip entries overlap or run past the end of the file")
        fh.seek(pos)
        h.update(_read_exact(fh, start - pos))
        pos = start + length
    fh.seek(pos)
    h.update(_read_exact(fh, end - pos))
    return h.hexdigest()


def _read_exact(fh: IO[bytes], n: int) -> bytes:
    b = fh.read(n)
    if len(b) != n:
        raise FileFormatError("the file is shorter than its zip directory says (truncated?)")
    return b


# ----------------------------------------------------------------------------- reading
def read_container(
    path: Path, kind: str, max_version: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate a container written by :func:`write_container`.

    Raises
    ------
    FileFormatError
        Truncated or altered file (any byte), wrong format, newer version, checksum mismatch.
    """
    where = f"{str(path)!r}"
    try:
        with open(path, "rb") as fh:
            return _read(fh, os.fstat(fh.fileno()).st_size, kind, max_version, where)
    except FileFormatError as exc:
        msg = str(exc)
        raise FileFormatError(
            msg if msg.startswith(where) else f"{where} is damaged: {msg}."
        ) from None
    except MemoryError:
        raise
    except Exception as exc:  # any parser failure on a damaged file (zip, zlib, json, npy)
        raise FileFormatError(
            f"{where} is damaged or not a netstruct file ({type(exc).__name__}: {exc}); it may be "
            "truncated or altered -- save it again."
        ) from None


def _read(fh: IO[bytes], size: int, kind: str, max_version: int, where: str):
    try:
        zf = zipfile.ZipFile(fh, "r")
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileFormatError(
            f"{where} is not a readable netstruct file (truncated or not a zip archive: {exc})."
        ) from None
    try:
        mbytes = zf.read(_MANIFEST)
        digest = zf.read(_MANIFEST_SHA).decode("ascii")
    except KeyError:
        raise FileFormatError(
            f"{where} has no netstruct manifest; it was not written by netstruct."
        ) from None
    if hashlib.sha256(mbytes).hexdigest() != digest:
        raise FileFormatError(f"{where}: the manifest was altered (checksum mismatch).")
    manifest = _check_manifest(json.loads(mbytes), kind, max_version, where)
    checksums = manifest["checksums"]
    if manifest["version"] >= 2:
        comment = zf.comment
        if len(comment) != _DIGEST_LEN or size < _DIGEST_LEN:
            raise FileFormatError(f"{where} lacks its file checksum (the zip comment was altered).")
        regions = _data_regions(fh, zf, list(checksums))
        if _structure_digest(fh, size - _DIGEST_LEN, _stored(zf, regions)) != comment.decode(
            "ascii"
        ):
            raise FileFormatError(
                f"{where}: the file was altered (checksum mismatch in its zip structure)."
            )
        arrays = {}
        for name, expected in checksums.items():
            info = zf.getinfo(name)
            a, got = (
                _read_stored(fh, regions[name], info)
                if info.compress_type == zipfile.ZIP_STORED
                else _read_stream(zf.open(info))
            )
            if got != expected:
                raise FileFormatError(f"{where}: entry {name!r} was altered (checksum mismatch).")
            arrays[name[len("arrays/") : -len(".npy")]] = a
    else:
        arrays = _read_v1(zf, checksums, where)
    return manifest["meta"], arrays


def _check_manifest(manifest: Any, kind: str, max_version: int, where: str) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise FileFormatError(
            f"{where}: the manifest is a {type(manifest).__name__}, not a JSON object."
        )
    if manifest.get("format") != kind:
        raise FileFormatError(f"{where} holds a {manifest.get('format')!r}, not a {kind!r}.")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FileFormatError(f"{where}: the format version {version!r} is not an int >= 1.")
    if version > max_version:
        raise FileFormatError(
            f"{where} was written by a newer netstruct (format version {version} > "
            f"{max_version}); upgrade netstruct to read it."
        )
    checksums = manifest.get("checksums")
    if not isinstance(checksums, dict) or not all(
        isinstance(k, str) and k.startswith("arrays/") and k.endswith(".npy") and isinstance(v, str)
        for k, v in checksums.items()
    ):
        raise FileFormatError(
            f"{where}: the manifest lacks valid checksums (a mapping entry -> sha256)."
        )
    if version >= 2 and manifest.get("checksum") != CHECKSUM:
        raise FileFormatError(f"{where}: unknown checksum scheme {manifest.get('checksum')!r}.")
    if not isinstance(manifest.get("meta"), dict):
        raise FileFormatError(f"{where}: the manifest lacks its metadata object.")
    return manifest


def _parse_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    major, _minor = np.lib.format.read_magic(fh)
    if major == 1:
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif major == 2:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise FileFormatError(f"unknown .npy version {major}")
    if dtype.hasobject:
        raise FileFormatError("an array entry holds Python objects (pickle is never read)")
    return shape, fortran, dtype


def _read_stored(
    fh: IO[bytes], region: tuple[int, int], info: zipfile.ZipInfo
) -> tuple[np.ndarray, str]:
    start, length = region
    if info.file_size != length:
        raise FileFormatError(f"entry {info.filename!r} has inconsistent sizes")
    fh.seek(start)
    shape, fortran, dtype = _parse_header(fh)
    hlen = fh.tell() - start
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if hlen + nbytes != length:
        raise FileFormatError(
            f"entry {info.filename!r}: the array shape does not match the entry size"
        )
    fh.seek(start)
    header = _read_exact(fh, hlen)
    a = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(a.reshape(-1, order="A").view(np.uint8)) if a.size else memoryview(b"")  # type: ignore[arg-type]
    pool = _pool()
    parts = [pool.submit(_sha, header)]
    for i in range(0, nbytes, _PIECE):
        piece = view[i : i + _PIECE]
        if fh.readinto(piece) != len(piece):  # type: ignore[attr-defined]  # zip/file handles have it
            raise FileFormatError(f"entry {info.filename!r} is cut off (truncated?)")
        parts.append(pool.submit(_sha, piece))
    return a, _tree_digest(parts)


def _read_stream(fh: IO[bytes]) -> tuple[np.ndarray, str]:
    with fh:
        shape, fortran, dtype = _parse_header(fh)
        hlen = fh.tell()
        fh.seek(0)  # ZipExtFile rewinds by decompressing again: only the short header
        header = _read_exact(fh, hlen)
        a = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        view = memoryview(a.reshape(-1, order="A").view(np.uint8)) if a.size else memoryview(b"")  # type: ignore[arg-type]
        pool = _pool()
        parts = [pool.submit(_sha, header)]
        for i in range(0, view.nbytes, _PIECE):
            piece = view[i : i + _PIECE]
            got = fh.read(len(piece))
            if len(got) != len(piece):
                raise FileFormatError("a compressed entry is cut off (truncated?)")
            piece[:] = got
            parts.append(pool.submit(_sha, piece))
        if fh.read(1):
            raise FileFormatError("a compressed entry is longer than its array")
        return a, _tree_digest(parts)


def _read_v1(zf: zipfile.ZipFile, checksums: dict[str, str], where: str) -> dict[str, np.ndarray]:
    import io

    arrays = {}
    for name, expected in checksums.items():
        try:
            blob = zf.read(name)
        except KeyError:
            raise FileFormatError(f"{where} lacks entry {name!r} (truncated?).") from None
        if hashlib.sha256(blob).hexdigest() != expected:
            raise FileFormatError(f"{where}: entry {name!r} was altered (checksum mismatch).")
        arrays[name[len("arrays/") : -len(".npy")]] = np.load(io.BytesIO(blob), allow_pickle=False)
    return arrays
