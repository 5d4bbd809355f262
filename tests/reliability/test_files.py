"""Damaged native files: every single-byte flip, forged manifests, write failures, modes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import netstruct as ns
from tests.reliability._outcomes import classify, record


def _small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))


WRITERS = {
    "nsg": (lambda m, p: ns.save(ns.from_torch(m), p), ns.load),
    "nsg-compressed": (lambda m, p: ns.save(ns.from_torch(m), p, compress=True), ns.load),
    "nsm": (lambda m, p: ns.save_model(m, p), ns.load_model),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_single_byte_flip_is_a_file_format_error(tmp_path, kind):
    write, read = WRITERS[kind]
    p = tmp_path / "f"
    write(_small_model(), p)
    data = p.read_bytes()
    q = tmp_path / "flipped"
    bad = []
    for i in range(len(data)):
        b = bytearray(data)
        b[i] ^= 0xFF
        q.write_bytes(bytes(b))
        try:
            read(q)
            outcome = "silent wrong"  # a flipped byte must never load
        except ns.FileFormatError:
            outcome = "clear error"
        except Exception as exc:  # noqa: BLE001
            outcome = "raw traceback"
            bad.append((i, type(exc).__name__))
        record(f"{kind} byte {i} flipped", outcome)
        if outcome == "silent wrong":
            bad.append((i, "loaded"))
    assert not bad, f"{len(bad)} of {len(data)} flips not refused cleanly, e.g. {bad[:5]}"


def _rewrite(src, dst, edit):
    """Copy a container, letting ``edit(manifest) -> manifest`` change its manifest (sha kept valid)."""
    with zipfile.ZipFile(src) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    man = edit(json.loads(entries["manifest.json"]))
    mb = json.dumps(man).encode()
    entries["manifest.json"] = mb
    entries["manifest.sha256"] = hashlib.sha256(mb).hexdigest().encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for n, b in entries.items():
            zf.writestr(n, b)


def _set(key, value):
    def edit(m):
        m[key] = value
        return m

    return edit


def _drop(key):
    def edit(m):
        m.pop(key)
        return m

    return edit


FORGERIES = {
    "manifest is a list": lambda m: [m],
    "manifest is a number": lambda m: 3,
    "no checksums": _drop("checksums"),
    "checksums a list": _set("checksums", []),
    "version as string": _set("version", "2"),
    "version as float": _set("version", 2.0),
    "version as bool": _set("version", True),
    "version 0": _set("version", 0),
    "newer version": _set("version", 99),
    "no version": _drop("version"),
    "no meta": _drop("meta"),
    "meta a list": _set("meta", []),
    "foreign format": _set("format", "something-else"),
    "unknown checksum scheme": _set("checksum", "md5"),
}


@pytest.mark.parametrize("what", list(FORGERIES))
@pytest.mark.parametrize("kind", ["nsg", "nsm"])
def test_forged_manifests_are_file_format_errors(tmp_path, kind, what):
    write, read = WRITERS[kind]
    write(_small_model(), tmp_path / "f")
    _rewrite(tmp_path / "f", tmp_path / "forged", FORGERIES[what])
    outcome, detail = classify(lambda: read(tmp_path / "forged"))
    record(f"{kind}: {what}", outcome, detail)
    assert outcome == "clear error", detail
    with pytest.raises(ns.FileFormatError):
        read(tmp_path / "forged")


def test_foreign_and_empty_files(tmp_path):
    for name, content in {
        "empty": b"",
        "text": b"hello",
        "zip-no-manifest": None,
        "pickle": b"\x80\x04K\x01.",
    }.items():
        p = tmp_path / name
        if content is None:
            with zipfile.ZipFile(p, "w") as zf:
                zf.writestr("x", "y")
        else:
            p.write_bytes(content)
        for reader in (ns.load, ns.load_model):
            outcome, detail = classify(lambda r=reader, q=p: r(q))
            record(f"{reader.__name__}({name})", outcome, detail)
            assert outcome == "clear error", detail


def test_failed_write_leaves_no_temporary_and_keeps_the_old_file(tmp_path, monkeypatch):
    import netstruct.io._container as c

    G = ns.from_torch(_small_model())
    p = tmp_path / "g.nsg"
    ns.save(G, p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(c, "_npy_header", boom)
    with pytest.raises(OSError):
        ns.save(G, p)
    assert p.read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["g.nsg"]


def test_temporaries_of_a_killed_writer_are_removed(tmp_path):
    G = ns.from_torch(_small_model())
    p = tmp_path / "g.nsg"
    # a writer process that dies (SIGKILL) in the middle of its write
    code = (
        "import os, signal, netstruct.io._container as c, netstruct as ns, torch\n"
        "def die(*a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
        "c._npy_header = die\n"
        f"ns.save(ns.from_torch(torch.nn.Linear(2, 1)), {str(p)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run([sys.executable, "-c", code], env=env, check=False)
    stale = [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")]
    assert stale, "the killed writer should have left its temporary"
    ns.save(G, p)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["g.nsg"]
    assert ns.load(p).n_edges == G.n_edges


@pytest.mark.skipif(os.name != "posix", reason="umask is POSIX")
def test_written_files_get_the_umask_mode(tmp_path):
    G = ns.from_torch(_small_model())
    old = os.umask(0o022)
    try:
        paths = [tmp_path / n for n in ("g.nsg", "m.nsm", "g.graphml", "g.gexf", "e.csv")]
        ns.save(G, paths[0])
        ns.save_model(_small_model(), paths[1])
        ns.write_graphml(G, paths[2])
        ns.write_gexf(G, paths[3])
        ns.write_edgelist_csv(G, paths[4])
    finally:
        os.umask(old)
    for q in paths:
        assert stat.S_IMODE(q.stat().st_mode) == 0o644, q


def test_version_1_files_still_load(tmp_path):
    """A file in the previous layout (deflated, plain sha256 per entry, no file digest)."""
    import io

    G = ns.from_torch(_small_model())
    ns.save(G, tmp_path / "v2.nsg")
    with zipfile.ZipFile(tmp_path / "v2.nsg") as zf:
        man = json.loads(zf.read("manifest.json"))
        blobs = {k: zf.read(k) for k in man["checksums"]}
    for k, b in blobs.items():  # v1 arrays were whole .npy files hashed with plain sha256
        a = np.load(io.BytesIO(b))
        buf = io.BytesIO()
        np.save(buf, a)
        blobs[k] = buf.getvalue()
    man.update(version=1, checksums={k: hashlib.sha256(b).hexdigest() for k, b in blobs.items()})
    man.pop("checksum")
    mb = json.dumps(man).encode()
    with zipfile.ZipFile(tmp_path / "v1.nsg", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", mb)
        zf.writestr("manifest.sha256", hashlib.sha256(mb).hexdigest())
        for k, b in blobs.items():
            zf.writestr(k, b)
    H = ns.load(tmp_path / "v1.nsg")
    assert H.n_edges == G.n_edges
    for a, b in zip(G.blocks, H.blocks):
        np.testing.assert_array_equal(a.weight, b.weight)


def test_large_arrays_span_several_hash_pieces(tmp_path, monkeypatch):
    import netstruct.io._container as c

    monkeypatch.setattr(c, "_PIECE", 1000)  # many pieces on a small model
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5))
    for compress in (False, True):
        ns.save_model(m, tmp_path / "m.nsm", compress=compress)
        r = ns.load_model(tmp_path / "m.nsm")
        x = torch.randn(3, 40)
        assert torch.equal(r(x), m(x))
        data = bytearray((tmp_path / "m.nsm").read_bytes())
        data[len(data) // 2] ^= 1
        (tmp_path / "bad.nsm").write_bytes(bytes(data))
        with pytest.raises(ns.FileFormatError):
            ns.load_model(tmp_path / "bad.nsm")
