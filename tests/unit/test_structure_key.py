"""Wiring fingerprints: a remembered spec hash gives the key a fresh hash gives.

``from_torch`` remembers the sha256 state after its spec, and graphs cut from it with the same
spec (shrink, masks, provenance updates) hash only their own blocks. The reference is
:func:`wiring_key` computed from nothing remembered.
"""

from __future__ import annotations

import pytest
import torch

import netstruct as ns
from netstruct.convert import to_torch as tt

pytestmark = pytest.mark.torch


def _fresh_key(G) -> str:
    return tt.wiring_key(G._spec, G.n_nodes, G.blocks)


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 3),
    ).eval()
    return ns.from_torch(model, torch.randn(2, 1, 6, 6))


def test_the_exported_key_is_the_fresh_key(graph):
    assert graph.provenance["structure"] == _fresh_key(graph) == tt.structure_key(graph)


def test_a_shrunk_and_a_masked_graph_hash_as_from_scratch(graph):
    plan = ns.structured_prune(graph, amount=0.5)
    shrunk = plan.apply(graph, shrink=True)
    assert shrunk.__dict__.get(tt._SPEC_JSON) is not None  # remembered, not recomputed
    for H in (shrunk, plan.apply(graph)):
        assert tt.structure_key(H) == _fresh_key(H)
        assert H.provenance["structure"] == tt.structure_key(H)  # to_torch needs no re-export


def test_a_loaded_graph_matches_its_recorded_key(graph, tmp_path):
    ns.save(graph, tmp_path / "g.nsg")
    G = ns.load(tmp_path / "g.nsg")
    assert tt.structure_key(G) == G.provenance["structure"] == graph.provenance["structure"]


def test_a_spec_that_differs_gets_its_own_hash(graph):
    other = dict(graph._spec, container="Traced")
    assert tt.canonical_spec_of(graph, other) != tt.canonical_spec_of(graph, graph._spec)
    assert tt.wiring_key(other, graph.n_nodes, graph.blocks) != tt.structure_key(graph)


def test_a_graph_that_remembers_its_spec_still_pickles(graph):
    cloudpickle = pytest.importorskip("cloudpickle")

    H = ns.structured_prune(graph, amount=0.5).apply(graph, shrink=True)
    back = cloudpickle.loads(cloudpickle.dumps(H))  # how Dask ships graphs to its workers
    assert tt.structure_key(back) == _fresh_key(H)
