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
    res = lattice_prune(_lstm_graph(seed, H=8), target_sparsity=0.7, irreducible="either")
    assert abs(res.global_sparsity - 0.7) < 0.1
    assert res.config["target_sparsity"] == 0.7


@pytest.mark.parametrize("target", [None, 0.3, 0.6])
def test_continuous_prune_reports_persistence_and_sparsity(target, seed):
    G = _lstm_graph(seed, H=6)
    res = lattice_prune(G, variant="continuous", target_sparsity=target)
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
    mag = magnitude_prune(G, sparsity=lat.global_sparsity, level=level)
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
        ({"target_sparsity": 1.0}, "'target_sparsity' parameter"),
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
        magnitude_prune(G, sparsity=0.5)
