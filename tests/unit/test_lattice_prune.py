"""Lattice pruning of hand-built LSTM / RNN graphs and the magnitude baseline."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.lattice import lattice_prune, magnitude_prune


def _lstm_graph(seed, D=3, H=5, C=2):
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(D)] + [f"h{u}" for u in range(H)]
    names += [f"{g}{u}" for g in "ifgo" for u in range(H)] + [f"y{c}" for c in range(C)]
    kind = ["input"] * D + ["hidden"] * H + ["gate"] * (4 * H) + ["output"] * C
    unit = [-1] * (D + H) + [D + u for _ in "ifgo" for u in range(H)] + [-1] * C
    gate = [""] * (D + H) + [g for g in "ifgo" for _ in range(H)] + [""] * C
    units, gates = np.arange(D, D + H), np.arange(D + H, D + 5 * H)
    outs = np.arange(D + 5 * H, D + 5 * H + C)
    blocks = [
        ns.make_block(
            name="lstm.weight_ih_l0",
            weight=rng.normal(size=(4 * H, D)),
            sources=np.arange(D),
            targets=gates,
        ),
        ns.make_block(
            name="lstm.weight_hh_l0",
            weight=rng.normal(size=(4 * H, H)),
            sources=units,
            targets=gates,
            delay=1,
        ),
        ns.make_block(
            name="fc.weight", weight=rng.normal(size=(C, H)), sources=units, targets=outs
        ),
    ]
    return ns.SignedGraph({"name": names, "kind": kind, "unit": unit, "gate": gate}, blocks)


@pytest.mark.parametrize("construction", ["block_context", "unrolled_dm"])
@pytest.mark.parametrize("irreducible", ["meet", "join", "either"])
def test_binary_prune_keeps_io_edges_and_gate_structure(construction, irreducible, seed):
    G = _lstm_graph(seed)
    res = lattice_prune(G, construction=construction, irreducible=irreducible)
    assert set(res.masks) == {"lstm.weight_ih_l0", "lstm.weight_hh_l0"}
    assert res.graph.block("fc.weight").is_dense  # the readout is never pruned
    # masks are unit-level: every gate row of a unit agrees
    for m in res.masks.values():
        H = m.shape[0] // 4
        assert all(np.array_equal(m[g * H : (g + 1) * H], m[:H]) for g in range(4))
    # protected inputs: every strong input edge survives (binary rule)
    A = ns.lattice.unit_adjacency(G, "lstm.weight_ih_l0")[0]
    strong = A > np.quantile(A, 0.5)
    um = ns.lattice.adjacency.unit_map(G, "lstm.weight_ih_l0")
    assert (um.expand(strong) <= res.masks["lstm.weight_ih_l0"]).all()
    nodes = res.graph.nodes()
    assert {
        "lattice_irreducible",
        "lattice_cover_size",
        "lattice_centrality",
        "lattice_critical",
    } <= set(nodes.columns)
    assert (
        nodes.loc[nodes.kind != "hidden", "lattice_critical"]
        .loc[nodes.kind.isin(["input", "output"])]
        .all()
    )
    assert res.global_sparsity >= 0.5 - 1e-9


def test_binary_target_sparsity_is_approached(seed):
    res = lattice_prune(_lstm_graph(seed, H=8), amount=0.7, irreducible="either")
    assert abs(res.global_sparsity - 0.7) < 0.1
    assert res.config["amount"] == 0.7


@pytest.mark.parametrize("target", [None, 0.3, 0.6])
def test_continuous_prune_reports_persistence_and_sparsity(target, seed):
    G = _lstm_graph(seed, H=6)
    res = lattice_prune(G, variant="continuous", amount=target)
    pers = res.graph.node_column("lattice_persistence")
    assert ((pers >= 0) & (pers <= 1)).all()
    if target is not None:
        assert abs(res.global_sparsity - target) < 0.1


def test_absolute_threshold_prunes_almost_everything_unprotected(seed):
    G = _lstm_graph(seed, H=6)
    res = lattice_prune(G, variant="continuous", threshold=0.99)
    assert res.sparsity["lstm.weight_hh_l0"] > 0.9


def test_plain_rnn_without_gates():
    rng = np.random.default_rng(1)
    nodes = {
        "name": ["x0", "x1", "h0", "h1", "h2", "y"],
        "kind": ["input"] * 2 + ["hidden"] * 3 + ["output"],
    }
    blocks = [
        ns.make_block(
            name="rnn.weight_ih_l0",
            weight=rng.normal(size=(3, 2)),
            sources=[0, 1],
            targets=[2, 3, 4],
        ),
        ns.make_block(
            name="rnn.weight_hh_l0",
            weight=rng.normal(size=(3, 3)),
            sources=[2, 3, 4],
            targets=[2, 3, 4],
            delay=1,
        ),
        ns.make_block(
            name="fc.weight", weight=rng.normal(size=(1, 3)), sources=[2, 3, 4], targets=[5]
        ),
    ]
    res = lattice_prune(ns.SignedGraph(nodes, blocks), construction="unrolled_dm")
    assert res.graph.n_edges < sum(b.weight.size for b in blocks)


@pytest.mark.parametrize("level", ["entry", "unit"])
def test_magnitude_baseline_matches_sparsity(level, seed):
    G = _lstm_graph(seed, H=6)
    lat = lattice_prune(G)
    mag = magnitude_prune(G, amount=lat.global_sparsity, level=level)
    assert abs(mag.global_sparsity - lat.global_sparsity) < 0.05
    kept = np.abs(mag.graph.block("lstm.weight_hh_l0").weight[mag.masks["lstm.weight_hh_l0"]])
    if level == "entry":
        dropped = np.abs(G.block("lstm.weight_hh_l0").weight[~mag.masks["lstm.weight_hh_l0"]])
        assert (
            dropped.size == 0
            or kept.size == 0
            or dropped.max()
            <= np.abs(
                np.concatenate([mag.graph.block(n).weight[m] for n, m in mag.masks.items()])
            ).min()
            + 1e-6
        )


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"variant": "fuzzy"}, "'variant' parameter of lattice_prune"),
        ({"construction": "birkhoff"}, "'construction' parameter"),
        ({"quantile": 1.0}, "'quantile' parameter"),
        ({"window": 0}, "'window' parameter"),
        ({"amount": 1.0}, "'amount' parameter"),
    ],
)
def test_bad_options_raise_standard_errors(kw, match):
    with pytest.raises(ns.InvalidParameterError, match=match):
        lattice_prune(_lstm_graph(0), **kw)


def test_graph_without_prunable_blocks_is_rejected():
    b = ns.make_block(name="fc", weight=np.ones((1, 2)), sources=[0, 1], targets=[2])
    G = ns.SignedGraph({"name": ["a", "b", "y"], "kind": ["input", "input", "output"]}, [b])
    with pytest.raises(ns.GraphError, match="no prunable"):
        lattice_prune(G)
    with pytest.raises(ns.GraphError, match="no prunable"):
        magnitude_prune(G, amount=0.5)


# ---------------------------------------------------------------- centrality, baselines, targets
def test_eigenvector_centrality_matches_networkx(seed):
    nx = pytest.importorskip("networkx")
    from netstruct.lattice import unit_centrality

    rng = np.random.default_rng(seed)
    n = 12
    W = rng.random((n, n)) * (rng.random((n, n)) < 0.4)  # post x pre
    W[np.arange(n), np.roll(np.arange(n), 1)] = 0.5  # a Hamiltonian cycle: strongly connected
    b = ns.make_block(name="hh", weight=W, sources=range(n), targets=range(n), delay=1)
    G = ns.SignedGraph({"name": [f"h{i}" for i in range(n)]}, [b])
    got = unit_centrality(G, {0: W}, "eigenvector")
    D = nx.DiGraph()
    D.add_nodes_from(range(n))
    for r, c in zip(*np.nonzero(W)):
        D.add_edge(int(c), int(r), weight=float(W[r, c]))
    ref = nx.eigenvector_centrality(D, weight="weight", max_iter=10_000, tol=1e-12)
    ref = np.array([ref[i] for i in range(n)])
    np.testing.assert_allclose(got, ref / ref.max(), atol=1e-6)


def test_eigenvector_centrality_warns_without_cycles():
    from netstruct.lattice import unit_centrality

    W = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = ns.make_block(name="w", weight=W, sources=[0, 1], targets=[0, 1])
    G = ns.SignedGraph({"name": ["a", "b"]}, [b])
    with pytest.warns(ns.NetstructWarning, match="did not converge"):
        unit_centrality(G, {0: W}, "eigenvector")
    with pytest.raises(ns.InvalidParameterError, match="'kind' parameter of unit_centrality"):
        unit_centrality(G, {0: W}, "katz")
    with pytest.raises(ns.InvalidParameterError, match="'adjacency' parameter"):
        unit_centrality(G, {0: np.ones((3, 3))}, "degree")


@pytest.mark.parametrize("centrality", ["eigenvector", "pagerank", "betweenness"])
def test_prune_with_other_centralities(centrality, seed):
    res = lattice_prune(_lstm_graph(seed, H=6), centrality=centrality)
    cen = res.graph.node_column("lattice_centrality")
    assert cen.max() == pytest.approx(1.0) and (cen >= 0).all()


@pytest.mark.parametrize("target", [0.2, 0.45, 0.6, 0.7])
def test_continuous_target_is_hit_within_one_connection(target, seed):
    G = _lstm_graph(seed, D=3, H=8)
    res = lattice_prune(G, variant="continuous", amount=target)
    total = sum(m.size for m in res.masks.values())
    # one unit-level connection of an LSTM block is 4 gate entries
    assert abs(res.global_sparsity - target) * total <= 4 + 1e-9


def test_continuous_unreachable_target_warns_and_caps(seed):
    G = _lstm_graph(seed, D=6, H=4)  # input edges are protected: 96 of 160 entries
    with pytest.warns(ns.NetstructWarning, match="out of reach"):
        res = lattice_prune(G, variant="continuous", amount=0.9)
    assert res.sparsity["lstm.weight_hh_l0"] == 1.0
    assert res.sparsity["lstm.weight_ih_l0"] == 0.0


@pytest.mark.parametrize("level", ["entry", "unit"])
def test_random_baseline_matches_per_block_sparsity(level, seed):
    G = _lstm_graph(seed, H=6)
    lat = lattice_prune(G, quantile=0.4)
    rnd = ns.lattice.random_prune(G, amount=lat.sparsity, level=level, seed=seed)
    for name, s in lat.sparsity.items():
        tol = 0.5 / G.block(name).mask.size if level == "entry" else 4 / G.block(name).mask.size
        assert abs(rnd.sparsity[name] - s) <= tol + 1e-12
    again = ns.lattice.random_prune(G, amount=lat.sparsity, level=level, seed=seed)
    assert all(np.array_equal(again.masks[k], m) for k, m in rnd.masks.items())
    with pytest.raises(ns.InvalidParameterError, match="'amount' parameter of random_prune"):
        ns.lattice.random_prune(G, amount={"nope": 0.5})
    with pytest.raises(ns.InvalidParameterError, match="'amount' parameter of random_prune"):
        ns.lattice.random_prune(G, amount=1.5)


def test_structured_removes_units_without_input(seed):
    G = _lstm_graph(seed, H=6)
    ih = G.block("lstm.weight_ih_l0")
    hh = G.block("lstm.weight_hh_l0")
    rows = [g * 6 + 2 for g in range(4)]  # unit h2 (node 5) gets no input at all
    w_ih, w_hh = ih.weight.copy(), hh.weight.copy()
    w_ih[rows], w_hh[rows] = 0.0, 0.0
    G = G.replace_blocks({0: {"weight": w_ih}, 1: {"weight": w_hh}})
    res = lattice_prune(G, structured=True)
    assert "h2" in res.config["removed_units"]
    assert not res.masks["fc.weight"][:, 2].any() and res.masks["fc.weight"][:, [0, 1]].all()
    assert res.graph.node_column("lattice_removed")[5]
    with pytest.raises(ns.InvalidParameterError, match="'structured' parameter"):
        lattice_prune(G, structured="yes")
