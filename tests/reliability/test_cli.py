"""The CLI never shows a traceback for a user's mistake; schedulers that are not Dask are refused."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import pytest
import torch

import netstruct as ns
from netstruct.cli import main
from tests.reliability._outcomes import record


def _cli(args, capsys):
    """(outcome, stderr) of ``netstruct args``: exit 2 with 'error:' is a clear error."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own usage errors (exit 2, message, no traceback)
        code = exc.code
    except BaseException as exc:  # noqa: BLE001
        return "raw traceback", f"{type(exc).__name__}: {exc}"
    err = capsys.readouterr().err
    if code == 0:
        return "correct result", err
    if code == 2 and "error" in err and "Traceback" not in err:
        return "clear error", err
    return "raw traceback", err


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    p = tmp_path / "m.nsm"
    ns.save_model(m, p)
    return m, p


def test_export_refuses_to_overwrite_its_input(model_file, capsys):
    _, p = model_file
    before = p.read_bytes()
    for opt in ("-o", "--graphml", "--gexf", "--csv"):
        args = ["export", p, "-o", p.with_suffix(".nsg")] if opt != "-o" else ["export", p]
        args += [opt, p]
        outcome, err = _cli(args, capsys)
        record(f"export {opt} <input>", outcome, err[:160])
        assert outcome == "clear error", err
        assert p.read_bytes() == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_output_folder(model_file, tmp_path, capsys):
    _, p = model_file
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        outcome, err = _cli(["export", p, "-o", ro / "g.nsg"], capsys)
        record("export into a read-only folder", outcome, err[:160])
        assert outcome == "clear error", err
    finally:
        ro.chmod(0o755)


def test_bad_export_arguments(model_file, tmp_path, capsys):
    _, p = model_file
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = {
        "output below a file": ["export", p, "-o", afile / "g.nsg"],
        "output in a missing folder": ["export", p, "-o", tmp_path / "no" / "g.nsg"],
        "output is a folder": ["export", p, "-o", tmp_path],
        "missing model": ["export", tmp_path / "none.nsm", "-o", tmp_path / "g.nsg"],
        "model is text": ["export", afile, "-o", tmp_path / "g.nsg"],
        "state_dict without factory": ["export", tmp_path / "sd.pt", "-o", tmp_path / "g.nsg"],
        "factory not importable": [
            "export",
            tmp_path / "sd.pt",
            "--factory",
            "no_such_mod:f",
            "-o",
            tmp_path / "g.nsg",
        ],
        "factory malformed": [
            "export",
            tmp_path / "sd.pt",
            "--factory",
            "nocolon",
            "-o",
            tmp_path / "g.nsg",
        ],
        "factory wrong model": [
            "export",
            tmp_path / "sd.pt",
            "--factory",
            "torch.nn:Identity",
            "-o",
            tmp_path / "g.nsg",
        ],
        "info of a model file": ["info", p],
        "info of a missing file": ["info", tmp_path / "none.nsg"],
        "run with a bad scheduler": [
            "run",
            "--out",
            tmp_path / "r",
            "--scheduler",
            "nonsense",
            "--quick",
        ],
        "run with an unknown step": ["run", "--out", tmp_path / "r", "--steps", "nope", "--quick"],
        "run with out below a file": [
            "run",
            "--out",
            afile / "r",
            "--steps",
            "train",
            "--quick",
            "--epochs",
            "1",
            "--runs",
            "1",
            "--scheduler",
            "serial",
        ],
        "run with negative epochs": ["run", "--out", tmp_path / "r", "--epochs", "-1"],
        "unknown command": ["frobnicate"],
    }
    torch.save(model_file[0].state_dict(), tmp_path / "sd.pt")
    for name, args in cases.items():
        outcome, err = _cli(args, capsys)
        record(f"cli: {name}", outcome, err[:160])
        assert outcome == "clear error", (name, err)


def make_model():
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))


def test_export_of_a_torch_state_dict_with_a_factory(model_file, tmp_path, capsys, monkeypatch):
    m, _ = model_file
    torch.save(m.state_dict(), tmp_path / "sd.pt")
    monkeypatch.setitem(sys.modules, "reliab_factory", sys.modules[__name__])
    outcome, err = _cli(
        [
            "export",
            tmp_path / "sd.pt",
            "--factory",
            "reliab_factory:make_model",
            "-o",
            tmp_path / "g.nsg",
        ],
        capsys,
    )
    record("export of a state_dict with --factory", outcome, err[:160])
    assert outcome == "correct result", err
    H = ns.to_torch(ns.load(tmp_path / "g.nsg"))
    x = torch.randn(4, 3)
    assert torch.allclose(H(x), m(x))


class _Server:
    """A TCP server on 127.0.0.1 that accepts and then stays silent or sends a banner."""

    def __init__(self, banner: bytes | None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.banner = banner
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.banner:
                c.sendall(self.banner)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize(
    "banner", [None, b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 400 Bad\r\n\r\n" * 3, b"\xff" * 64]
)
def test_a_server_that_is_not_dask_is_refused_quickly(banner, monkeypatch):
    from netstruct.utils import cluster

    srv = _Server(banner)
    try:
        if banner is None:  # a silent server: the probe waits its timeout; shorten it for the test
            real = cluster._probe_scheduler
            monkeypatch.setattr(
                cluster, "_probe_scheduler", lambda a, f, timeout=10.0: real(a, f, 1.0)
            )
        t0 = time.perf_counter()
        with pytest.raises(ns.BackendUnavailableError, match="not a Dask scheduler"):
            cluster.get_client(f"tcp://127.0.0.1:{srv.port}")
        elapsed = time.perf_counter() - t0
        record(f"scheduler answering {banner!r:.20}", "clear error" if elapsed < 15 else "hang")
        assert elapsed < 15
    finally:
        srv.close()


def test_closed_port_is_a_clear_error():
    from netstruct.utils import cluster

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ns.BackendUnavailableError, match="could not reach"):
        cluster.get_client(f"tcp://127.0.0.1:{port}")
    record("scheduler on a closed port", "clear error")
