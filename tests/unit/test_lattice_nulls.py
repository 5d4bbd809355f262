"""Irreducible counts against sign-preserving null ensembles."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.lattice import FormalContext, irreducible_null, join_irreducibles, meet_irreducibles


def _graph(W):
    n_out, n_in = W.shape
    names = [f"x{i}" for i in range(n_in)] + [f"y{j}" for j in range(n_out)]
    kinds = ["input"] * n_in + ["output"] * n_out
    b = ns.make_block(name="w", weight=W, sources=range(n_in), targets=range(n_in, n_in + n_out))
    return ns.SignedGraph({"name": names, "kind": kinds}, [b])


def test_null_counts_are_those_of_the_ensemble_samples():
    rng = np.random.default_rng(0)
    G = _graph(rng.standard_normal((9, 12)))
    res = irreducible_null(G, "w", quantile=0.7, n_samples=6, seed=3)
    ens = ns.randomize_ensemble(G, "B", 6, blocks="w", seed=3)
    for k in range(6):
        ctx = FormalContext.from_block(ens.graph(k), "w", quantile=0.7)
        assert res.null["meet"][k] == meet_irreducibles(ctx).mask.sum()
        assert res.null["join"][k] == join_irreducibles(ctx).mask.sum()
    again = irreducible_null(G, 0, quantile=0.7, n_samples=6, seed=3)
    assert all((again.null[k] == res.null[k]).all() for k in ("meet", "join"))


def test_modular_structure_is_far_from_chance():
    # three modules of 4 inputs -> 4 outputs: inside a module every unit has the same strong
    # neighbours, so the context has few distinct concepts; shuffles within sign destroy it
    W = np.kron(np.eye(3), np.ones((4, 4))) + 0.01 * np.random.default_rng(0).random((12, 12))
    res = irreducible_null(_graph(W), "w", quantile=0.6, n_samples=30, seed=0)
    assert res.observed["join"] < res.null["join"].min()
    assert res.zscore("join") < -3 and res.pvalue("join") < 0.05
    t = res.table()
    assert list(t["kind"]) == ["meet", "join"] and t["p"].between(0, 1).all()
    assert np.isfinite(t["null mean"]).all()


def test_zero_spread_gives_zero_or_inf_never_nan():
    from netstruct.lattice import IrreducibleNull

    r = IrreducibleNull(
        "w", "B", 0.5, {"meet": 3, "join": 4}, {"meet": np.array([3, 3]), "join": np.array([5, 5])}
    )
    assert r.zscore("meet") == 0.0 and r.zscore("join") == -np.inf
    assert r.pvalue("meet") == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"block": "nope"}, "block"),
        ({"block": 5}, "block"),
        ({"quantile": 1.0}, "quantile"),
        ({"quantile": 0.0}, "quantile"),
        ({"n_samples": 1}, "n_samples"),
        ({"model": "Z"}, "model"),
    ],
)
def test_bad_input(kwargs, match):
    G = _graph(np.random.default_rng(1).standard_normal((4, 5)))
    args = {"block": "w", **kwargs}
    block = args.pop("block")
    with pytest.raises(ns.InvalidParameterError, match=match):
        irreducible_null(G, block, **args)
