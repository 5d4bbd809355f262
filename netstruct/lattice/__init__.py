"""Posets and lattices of neural networks: formal contexts, concept lattices, irreducibles.

A weight block is read as a formal context (presynaptic units x postsynaptic units); a
recurrent network unrolled over a short window is read as a poset (u <= v iff u can
influence v). The module computes concept lattices and Dedekind–MacNeille completions for
small cases, meet- and join-irreducible elements at scale (without building the lattice),
and lattice-based pruning of RNN/LSTM/GRU graphs.

Examples
--------
>>> import netstruct as ns
>>> K = ns.lattice.FormalContext([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
>>> len(ns.lattice.concept_lattice(K)), ns.lattice.meet_irreducibles(K).elements
(5, (0, 1, 2))
"""

from __future__ import annotations

from .adjacency import UnitMap, unit_adjacency
from .baselines import magnitude_prune, random_prune, unit_prune
from .centrality import unit_centrality
from .concepts import ConceptLattice, concept_lattice
from .context import FormalContext
from .irreducibles import Irreducibles, join_irreducibles, meet_irreducibles, persistence
from .nulls import IrreducibleNull, irreducible_null
from .poset import Poset, dedekind_macneille, poset_from_dag, reachability_bitsets
from .prune import lattice_prune
from .result import PruneResult
from .thresholds import binarize, level_cuts
from .window import WindowPoset, window_poset

__all__ = [
    "FormalContext",
    "binarize",
    "level_cuts",
    "unit_adjacency",
    "UnitMap",
    "ConceptLattice",
    "concept_lattice",
    "Irreducibles",
    "meet_irreducibles",
    "join_irreducibles",
    "persistence",
    "irreducible_null",
    "IrreducibleNull",
    "Poset",
    "poset_from_dag",
    "reachability_bitsets",
    "dedekind_macneille",
    "WindowPoset",
    "window_poset",
    "PruneResult",
    "lattice_prune",
    "magnitude_prune",
    "random_prune",
    "unit_prune",
    "unit_centrality",
]
