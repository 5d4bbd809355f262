"""Structural balance: closed forms and bounds against brute force on small graphs."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from tests.oracles.naive_netsci import (
    naive_cycle_balance,
    naive_frustration,
    naive_projection,
    random_layered_graph,
)


def _graphs():
    out = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out.append(
            random_layered_graph(
                rng,
                list(rng.integers(2, 5, size=4)),
                float(rng.uniform(0.4, 1.0)),
                skip=bool(seed % 2),
            )
        )
    return out


@pytest.mark.parametrize("G", _graphs())
def test_projection_and_cycle_balance_equal_brute_force(G):
    E = naive_projection(G)
    A = ns.sign_adjacency(G)
    assert A.nnz == 2 * len(E)
    for e, s in E.items():
        a, b = tuple(e)
        assert A[a, b] == s == A[b, a]
    br = ns.balance_ratio(G).set_index("length")
    for length in (3, 4):
        total, pos = naive_cycle_balance(E, length)
        assert br.loc[length, "n_cycles"] == total and br.loc[length, "n_balanced"] == pos
        assert br.loc[length, "ratio"] == (pos / total if total else 1.0)


@pytest.mark.parametrize("G", _graphs())
def test_frustration_exact_and_bounds_bracket_it(G):
    E = naive_projection(G)
    ref = naive_frustration(E)
    r = ns.frustration_index(G)
    assert r.exact and r.index == r.lower_bound == ref
    c = r.colouring
    assert (
        sum(int(s * c[a] * c[b] < 0) for (a, b), s in ((tuple(e), s) for e, s in E.items())) == ref
    )
    h = ns.frustration_index(G, exact_max=2, seed=0)
    assert h.lower_bound <= ref <= h.index


def test_frustration_on_lstm():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    G = ns.from_torch(torch.nn.LSTM(2, 3))
    r = ns.frustration_index(G)
    assert r.index == naive_frustration(naive_projection(G))


def test_sign_consistency_equals_brute_force():
    G = _graphs()[1]
    c = np.where(np.random.default_rng(0).random(G.n_nodes) < 0.5, -1, 1)
    t = ns.sign_consistency(G, colouring=c).set_index("block")
    for b in G.blocks:
        W = b.weight
        m = np.count_nonzero(W)
        sat = sum(
            int(np.sign(W[r, q]) * c[b.targets[r]] * c[b.sources[q]] > 0)
            for r in range(W.shape[0])
            for q in range(W.shape[1])
            if W[r, q] != 0
        )
        assert t.loc[b.name, "partition_agreement"] == pytest.approx(sat / m)
        src = [
            abs(int((W[:, q] > 0).sum()) - int((W[:, q] < 0).sum())) / np.count_nonzero(W[:, q])
            for q in range(W.shape[1])
            if np.count_nonzero(W[:, q])
        ]
        assert t.loc[b.name, "source_agreement"] == pytest.approx(np.mean(src))


def test_balance_rejects_bad_parameters():
    G = _graphs()[0]
    with pytest.raises(ns.InvalidParameterError, match="'exact_max'"):
        ns.frustration_index(G, exact_max=0)
    with pytest.raises(ns.InvalidParameterError, match="'colouring'"):
        ns.sign_consistency(G, colouring=np.zeros(G.n_nodes))
    with pytest.raises(ns.InvalidParameterError, match="'aggregate'"):
        ns.balance_ratio(G, aggregate="mean")
