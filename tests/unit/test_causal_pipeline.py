"""legcnet_prune end to end on Iris (tiny budget): mask shape, determinism, exact zeros, export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct.causal import (  # noqa: E402
    LEGCNetConfig,
    legcnet_prune,
    magnitude_mask,
    path_influence,
    random_mask,
    retrain,
)

pytestmark = pytest.mark.torch


def _iris_model(seed=1):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Sigmoid(), torch.nn.Linear(6, 3))
    rs = np.random.RandomState(seed)  # the authors' standard-normal init
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.as_tensor(rs.randn(*p.shape), dtype=torch.float32))
    return m


@pytest.fixture(scope="module")
def iris():
    return ns.datasets.load_iris(test_size=0.2, seed=0)


@pytest.fixture(scope="module")
def run(iris):
    cfg = LEGCNetConfig.authors(40)  # 1 + 3 * 120 rows -> K = 9 windows, L capped at 2
    return legcnet_prune(
        _iris_model(),
        iris,
        mode="PT",
        epochs=4,
        pt_epochs=3,
        lr=0.05,
        benchmark=0.9,
        config=cfg,
        extra_epochs=0,
    )


def test_result_shapes_and_graph_attributes(run):
    assert run.prune_mask.shape == (42,) and run.prune_mask.dtype == bool
    assert run.n_windows == 9 and run.scores.lags.tolist() == [1, 2]
    edges = run.graph.edges()
    assert {"prune", "gc_p", "gc_stat", "gc_status", "influence", "le_mean"} <= set(edges.columns)
    np.testing.assert_array_equal(edges["prune"].to_numpy(), run.prune_mask)
    assert run.sparse.nnz_weights == 42 - int(run.prune_mask.sum())
    assert run.dense.nnz_weights == 42


def test_deterministic_given_the_init(iris, run):
    again = legcnet_prune(
        _iris_model(),
        iris,
        mode="PT",
        epochs=4,
        pt_epochs=3,
        lr=0.05,
        benchmark=0.9,
        config=LEGCNetConfig.authors(40),
        extra_epochs=0,
    )
    np.testing.assert_array_equal(again.prune_mask, run.prune_mask)
    np.testing.assert_array_equal(again.scores.lyap, run.scores.lyap)


def test_masked_weights_stay_zero_and_export_matches_masked_forward(iris):
    model = _iris_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    mask = np.zeros(42, dtype=bool)
    mask[[0, 5, 23, 30, 41]] = True
    res = retrain(model, init, iris, prune_mask=mask, lr=0.05, max_epochs=2, benchmark=1.1)
    w = np.concatenate(
        [model[0].weight.detach().numpy().ravel(), model[2].weight.detach().numpy().ravel()]
    )
    assert (w[mask] == 0).all() and (w[~mask] != 0).all()
    assert res.nnz_weights == 37 and res.epochs == -1
    G = ns.from_torch(model).remove_edges(mask)
    exported = ns.to_torch(G)
    x = torch.as_tensor(iris.X_test)
    with torch.no_grad():
        np.testing.assert_allclose(exported(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)


def test_baseline_masks_are_count_matched_per_layer(run):
    model = _iris_model()
    like = run.prune_mask.copy()
    like[:3] = True
    for m in (magnitude_mask(model, like), random_mask(model, like, seed=0)):
        assert m[:24].sum() == like[:24].sum() and m[24:].sum() == like[24:].sum()
    w = np.abs(model[0].weight.detach().numpy().ravel())
    mm = magnitude_mask(model, like)[:24]
    assert w[mm].max() <= w[~mm].min()


def test_path_influence_attaches_on_the_pipeline_graph(run, iris):
    H, M = path_influence(run.graph, iris.X_test)
    assert M.shape == (13, 3)
    assert "influence_o2" in H.nodes().columns and "influence_abs" in H.edges().columns


def _copy_pair(seed=3, act=torch.nn.Sigmoid):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(4, 5), act(), torch.nn.Linear(5, 4), act(), torch.nn.Linear(4, 3)
    )
    import copy

    return m, copy.deepcopy(m)


@pytest.mark.parametrize("act", [torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.ReLU])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_numpy_online_sgd_records_the_torch_trajectory(iris, act, output):
    from netstruct.causal import pipeline as pl

    a, b = _copy_pair(act=act)
    assert pl._numpy_layers(a) is not None
    rows_a, rows_b = [], []
    pl._torch_epochs(
        a,
        iris.X_train,
        iris.y_train,
        lr=0.1,
        n_epochs=2,
        output=output,
        on_step=lambda s: rows_a.append(a[0].weight.detach().numpy().copy()),
    )
    pl._online_epochs(
        b,
        iris.X_train,
        iris.y_train,
        lr=0.1,
        n_epochs=2,
        output=output,
        on_step=lambda s: rows_b.append(b[0].weight.detach().numpy().copy()),
    )
    assert len(rows_a) == len(rows_b) == 2 * len(iris.y_train)
    np.testing.assert_allclose(np.array(rows_b), np.array(rows_a), atol=2e-6)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), atol=2e-6)


def test_numpy_online_sgd_keeps_masked_weights_zero_like_torch(iris):
    from netstruct.causal import pipeline as pl

    a, b = _copy_pair()
    mask = np.random.default_rng(0).random(5 * 4 + 4 * 5 + 3 * 4) < 0.5
    pa, pb = pl._masks(a, mask), pl._masks(b, mask)
    for p, m in pa + pb:
        with torch.no_grad():
            p.mul_(m)
    pl._torch_epochs(a, iris.X_train, iris.y_train, lr=0.1, n_epochs=1, output="softmax", masks=pa)
    pl._online_epochs(b, iris.X_train, iris.y_train, lr=0.1, n_epochs=1, output="softmax", masks=pb)
    wb = np.concatenate([p.detach().numpy().ravel() for _n, p in pl._weights(b)])
    assert (wb[mask] == 0).all()
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), atol=2e-6)


def test_models_outside_the_numpy_path_use_the_torch_loop():
    from netstruct.causal import pipeline as pl

    assert pl._numpy_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid())) is None
    assert (
        pl._numpy_layers(
            torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.GELU(), torch.nn.Linear(2, 2))
        )
        is None
    )
    frozen = torch.nn.Sequential(torch.nn.Linear(2, 2))
    frozen[0].bias.requires_grad_(False)
    assert pl._numpy_layers(frozen) is None
