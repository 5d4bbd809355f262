"""Signed motif census: closed form == brute force, == igraph unsigned; z-scores."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.algorithms.motifs import MOTIFS
from tests.oracles.naive_netsci import naive_motifs, random_layered_graph


def _as_dict(df):
    return {(r.motif, r.signs, r.blocks): r.count for r in df.itertuples()}


def _assert_matches_oracle(G):
    got = _as_dict(ns.motif_census(G, size=None, by_block=True))
    ref = naive_motifs(G)
    assert set(ref) <= set(got)
    bad = {k: (got[k], ref.get(k, 0)) for k in got if got[k] != ref.get(k, 0)}
    assert not bad


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("skip", [False, True])
def test_census_equals_brute_force(seed, skip):
    rng = np.random.default_rng(seed)
    sizes = list(rng.integers(2, 7, size=4))
    _assert_matches_oracle(
        random_layered_graph(rng, sizes, float(rng.uniform(0.3, 1.0)), skip=skip)
    )


def test_census_equals_brute_force_on_lstm_and_mlp():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    _assert_matches_oracle(ns.from_torch(torch.nn.LSTM(3, 4)))
    _assert_matches_oracle(ns.from_torch(torch.nn.LSTM(2, 3, num_layers=2)))
    mlp = torch.nn.Sequential(
        torch.nn.Linear(4, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 3),
        torch.nn.ReLU(),
        torch.nn.Linear(3, 2),
    )
    _assert_matches_oracle(ns.from_torch(mlp))


def test_sparse_and_dense_products_agree():
    rng = np.random.default_rng(7)
    G = random_layered_graph(rng, [70, 80, 75, 60], 0.05, skip=True)  # sparse path (> 4096 cells)
    H = random_layered_graph(np.random.default_rng(7), [70, 80, 75, 60], 0.05, skip=True)
    a = ns.motif_census(G, size=None, by_block=True)["count"].to_numpy()
    from netstruct.algorithms import _motif_plan

    old = _motif_plan._SPARSE_BELOW
    _motif_plan._SPARSE_BELOW = 0.0
    try:
        b = ns.motif_census(H, size=None, by_block=True)["count"].to_numpy()
    finally:
        _motif_plan._SPARSE_BELOW = old
    assert np.array_equal(a, b)


def _isoclass(edges, n):
    ig = pytest.importorskip("igraph")
    return ig.Graph(n=n, edges=edges, directed=True).isoclass()


def test_unsigned_census_equals_igraph_motifs():
    ig = pytest.importorskip("igraph")
    rng = np.random.default_rng(3)
    G = random_layered_graph(rng, [6, 7, 6, 5], 0.5)
    edges = G.edges()
    g = ig.Graph(n=G.n_nodes, edges=list(zip(edges["source"], edges["target"])), directed=True)
    c = ns.motif_census(G, size=None, signed=False).set_index("motif")["count"]
    m3, m4 = g.motifs_randesu(size=3), g.motifs_randesu(size=4)
    assert m3[_isoclass([(0, 1), (1, 2)], 3)] == c["chain"]
    assert m3[_isoclass([(0, 2), (1, 2)], 3)] == c["convergent"]
    assert m3[_isoclass([(0, 1), (0, 2)], 3)] == c["divergent"]
    assert m4[_isoclass([(0, 1), (1, 2), (2, 3)], 4)] == c["chain4"]
    assert m4[_isoclass([(0, 2), (0, 3), (1, 2), (1, 3)], 4)] == c["bifan"]
    assert m4[_isoclass([(0, 1), (0, 2), (1, 3), (2, 3)], 4)] == c["biparallel"]


def test_signed_classes_sum_to_unsigned_and_labels_are_complete():
    G = random_layered_graph(np.random.default_rng(1), [4, 5, 4, 3], 0.8, skip=True)
    s = ns.motif_census(G, size=None).groupby("motif")["count"].sum()
    u = ns.motif_census(G, size=None, signed=False).set_index("motif")["count"]
    assert (s == u[s.index]).all()
    full = ns.motif_census(G, size=None)
    for motif, (_, labels) in MOTIFS.items():
        assert full[full.motif == motif]["signs"].tolist() == list(labels)


def test_census_rejects_bad_parameters():
    G = random_layered_graph(np.random.default_rng(0), [2, 2], 1.0)
    with pytest.raises(ns.InvalidParameterError, match="'size' parameter of motif_census"):
        ns.motif_census(G, size=5)
    with pytest.raises(ns.InvalidParameterError, match="'aggregate'"):
        ns.motif_census(G, aggregate="mean")
    with pytest.raises(ns.InvalidParameterError, match="'G' parameter"):
        ns.motif_census("graph")


def test_empty_and_single_edge_graphs():
    G = ns.SignedGraph(
        {"name": ["a", "b"]},
        [ns.make_block(name="w", weight=np.array([[2.0]]), sources=[0], targets=[1])],
    )
    assert ns.motif_census(G, size=None)["count"].sum() == 0
    E = ns.SignedGraph({"name": ["a"]}, [])
    assert len(ns.motif_census(E, size=None)) == 0


# ----------------------------------------------------------------------------- z-scores
def test_zscore_samples_are_the_randomize_ensemble(seed=11):
    rng = np.random.default_rng(0)
    G = random_layered_graph(rng, [5, 6, 4], 0.9)
    zs = ns.motif_zscores(
        G, "curveball", n_samples=6, seed=seed, chunk_size=4, by_block=True, n_steps=20
    )
    ens = ns.randomize_ensemble(G, "curveball", 6, seed=seed, n_steps=20)
    ref = np.array(
        [ns.motif_census(ens.graph(k), by_block=True)["count"].to_numpy() for k in range(6)]
    )
    assert np.array_equal(zs.samples, ref)
    again = ns.motif_zscores(
        G, "curveball", n_samples=6, seed=seed, chunk_size=6, by_block=True, n_steps=20
    )
    assert np.array_equal(again.samples, zs.samples)


def test_zscores_formula_and_sign_pattern_models():
    rng = np.random.default_rng(2)
    G = random_layered_graph(rng, [5, 6, 4], 0.9)
    zs = ns.motif_zscores(G, "A", n_samples=40, seed=0)
    t = zs.table
    assert np.allclose(t["mean"], zs.samples.mean(0))
    ok = t["std"] > 0
    assert np.allclose(t["z"][ok], ((t["observed"] - t["mean"]) / t["std"])[ok])
    assert np.allclose(t["p_greater"], (1 + (zs.samples >= t["observed"].to_numpy()).sum(0)) / 41)
    # model E keeps the sign pattern: every sample equals the observation
    e = ns.motif_zscores(G, "E", n_samples=5, seed=0).table
    assert (e["z"] == 0).all() and (e["std"] == 0).all()


def test_zscores_on_dask_equal_serial():
    pytest.importorskip("distributed")
    G = random_layered_graph(np.random.default_rng(4), [4, 5, 4], 0.9)
    a = ns.motif_zscores(G, "B", n_samples=8, seed=3, chunk_size=3)
    b = ns.motif_zscores(G, "A", n_samples=8, seed=3, chunk_size=3, scheduler=None, n_jobs=2)
    c = ns.motif_zscores(G, "A", n_samples=8, seed=3, chunk_size=8)
    assert np.array_equal(b.samples, c.samples)
    assert a.model == "B"


def test_zscores_reject_bad_parameters():
    G = random_layered_graph(np.random.default_rng(0), [3, 3], 1.0)
    with pytest.raises(ns.InvalidParameterError, match="'model'"):
        ns.motif_zscores(G, "Z")
    with pytest.raises(ns.InvalidParameterError, match="'n_samples'"):
        ns.motif_zscores(G, "A", n_samples=1)
    with pytest.raises(ns.InvalidParameterError, match="'n_steps'"):
        ns.motif_zscores(G, "A", n_steps=3)
    with pytest.raises(ns.InvalidParameterError, match="'scheduler'"):
        ns.motif_zscores(G, "A", scheduler=3)


@pytest.mark.parametrize("model", ["curveball", "B", "stp"])
def test_zscores_on_lstm_graphs(model):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    G = ns.from_torch(torch.nn.LSTM(3, 5))
    zs = ns.motif_zscores(G, model, n_samples=6, size=None, seed=0, by_block=True)
    obs = ns.motif_census(G, size=None, by_block=True)
    assert np.array_equal(zs.table["observed"].to_numpy(), obs["count"].to_numpy())
    assert zs.samples.shape == (6, len(obs)) and np.isfinite(zs.samples).all()
    # gate rows collapse by the largest magnitude, so even sign-keeping models (B) move unit signs
    assert (zs.samples != obs["count"].to_numpy()).any()
