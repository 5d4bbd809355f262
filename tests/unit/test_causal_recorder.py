"""TrajectoryRecorder / TrajectoryReader: bounded memory, exact round trip, selections, hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netstruct import FileFormatError, InvalidParameterError  # noqa: E402
from netstruct.causal import TrajectoryReader, TrajectoryRecorder  # noqa: E402

pytestmark = pytest.mark.torch


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Sigmoid(), torch.nn.Linear(6, 3))


def _train(model, rec, n_steps, *, capture=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.randn(n_steps, 4, generator=torch.Generator().manual_seed(1))
    for i in range(n_steps):
        opt.zero_grad()
        loss = model(x[i : i + 1]).pow(2).sum()
        loss.backward()
        opt.step()
        if capture is not None:
            capture.append(
                np.concatenate(
                    [
                        p.detach().numpy().ravel()
                        for n, p in model.named_parameters()
                        if n.endswith("weight")
                    ]
                )
            )
        rec.record(loss=loss.item(), error_rate=i / n_steps)


def test_round_trip_with_small_memory_budget_writes_many_chunks(tmp_path):
    model = _model()
    initial = np.concatenate(
        [model[0].weight.detach().numpy().ravel(), model[2].weight.detach().numpy().ravel()]
    )
    budget = 2048  # bytes: far less than the 301 x 42 float32 run (~50 kB)
    captured = []
    with TrajectoryRecorder(model, tmp_path, max_memory=budget) as rec:
        assert rec.buffer_nbytes <= budget
        _train(model, rec, 300, capture=captured)
    tr = TrajectoryReader(tmp_path)
    assert tr.complete and tr.n_rows == 301 and tr.n_edges == 42
    assert len(tr.manifest["chunks"]) >= 301 // rec.chunk_rows
    assert all(c["rows"] <= rec.chunk_rows for c in tr.manifest["chunks"])
    W = tr.weights()
    np.testing.assert_array_equal(W[0], initial.astype(np.float32))
    np.testing.assert_array_equal(W[1:], np.asarray(captured, dtype=np.float32))
    np.testing.assert_array_equal(tr.edge(7), W[:, 7])
    assert tr.steps().tolist() == list(range(301))
    loss = tr.metric("loss")
    assert np.isnan(loss[0]) and np.isfinite(loss[1:]).all()
    et = tr.edge_table()
    assert et["param"][0] == "0.weight" and et["param"][-1] == "2.weight"
    assert (et["row"][5], et["col"][5]) == (1, 1)
    assert not list(tmp_path.glob("*.tmp"))


def test_every_k_and_edge_selection(tmp_path):
    model = _model()
    mask = np.zeros((3, 6), dtype=bool)
    mask[0, 2] = mask[2, 5] = True
    with TrajectoryRecorder(
        model, tmp_path, params={"2.weight": mask, "0": None}, every=5, record_initial=False
    ) as rec:
        _train(model, rec, 20)  # rows at steps 5, 10, 15, 20 (the last = final weights)
    tr = TrajectoryReader(tmp_path)
    assert tr.n_rows == 4 and tr.steps().tolist() == [5, 10, 15, 20]
    et = tr.edge_table()
    assert et["param"][:2].tolist() == ["2.weight", "2.weight"]
    assert et["index"][:2].tolist() == [2, 17]
    assert tr.n_edges == 2 + 24
    np.testing.assert_array_equal(
        tr.weights()[-1, :2], model[2].weight.detach().numpy()[[0, 2], [2, 5]]
    )


def test_attach_records_after_each_optimizer_step_with_metrics_fn(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = {"n": 0}

    def metrics():
        calls["n"] += 1
        return {"error_rate": 0.25}

    rec = TrajectoryRecorder(model, tmp_path, params="0.weight", metrics_fn=metrics).attach(opt)
    for _ in range(4):
        opt.zero_grad()
        model(torch.ones(1, 4)).sum().backward()
        opt.step()
    rec.close()
    opt.step()  # detached: no further rows
    tr = TrajectoryReader(tmp_path)
    assert tr.n_rows == 5 and calls["n"] == 5
    np.testing.assert_array_equal(tr.metric("error_rate"), np.full(5, 0.25))


def test_unclosed_run_is_a_readable_prefix(tmp_path):
    model = _model()
    rec = TrajectoryRecorder(model, tmp_path, max_memory=24 * 4 * 3 + 8 * 3 * 3)
    _train(model, rec, 10)
    tr = TrajectoryReader(tmp_path)
    assert not tr.complete
    assert tr.n_rows == (11 // rec.chunk_rows) * rec.chunk_rows
    rec.close()
    assert TrajectoryReader(tmp_path).n_rows == 11


def test_errors(tmp_path):
    model = _model()
    with pytest.raises(InvalidParameterError, match="'params' parameter"):
        TrajectoryRecorder(model, tmp_path / "a", params="nope")
    with pytest.raises(InvalidParameterError, match="boolean mask of shape \\(3, 6\\)"):
        TrajectoryRecorder(model, tmp_path / "b", params={"2.weight": np.ones((6, 3), bool)})
    with pytest.raises(InvalidParameterError, match="'every' parameter"):
        TrajectoryRecorder(model, tmp_path / "c", every=0)
    rec = TrajectoryRecorder(model, tmp_path / "d")
    with pytest.raises(InvalidParameterError, match="'metrics' parameter"):
        rec.record(accuracy=1.0)
    rec.close()
    with pytest.raises(InvalidParameterError, match="closed"):
        rec.record()
    with pytest.raises(InvalidParameterError, match="already holds a trajectory"):
        TrajectoryRecorder(model, tmp_path / "d")
    with pytest.raises(FileFormatError):
        TrajectoryReader(tmp_path / "missing")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(FileFormatError, match="not a netstruct trajectory"):
        TrajectoryReader(tmp_path / "e")
