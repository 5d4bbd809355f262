"""netstruct: neural networks as signed graphs.

Export a torch model to a :class:`SignedGraph`, analyse it (lattices, null models, causal
influence), probe and prune it by graph queries, and turn it back into a torch module.

``import netstruct`` is light: torch, networkx, igraph and numba.cuda are imported only by the
functions that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._config import config, config_context
from ._version import __version__
from .exceptions import (
    BackendUnavailableError,
    DatasetNotFoundError,
    FileFormatError,
    GraphError,
    InfeasibleTestError,
    InvalidParameterError,
    NetstructError,
    NetstructWarning,
    NotImplementedForBackend,
    UnsupportedModuleError,
)
from .graphs.block import Block, make_block
from .graphs.signed import SignedGraph

# name -> module that defines it (imported on first access)
_LAZY = {
    "from_torch": "netstruct.convert.from_torch",
    "to_torch": "netstruct.convert.to_torch",
    "shrink": "netstruct.convert.shrink",
    "reconstruct": "netstruct.pruning.reconstruct",
    "register_module_handler": "netstruct.convert.handlers",
    "ModuleHandler": "netstruct.convert.handlers",
    "from_networkx": "netstruct.graphs.signed",
    "unroll": "netstruct.graphs.unroll",
    "coupled_units": "netstruct.graphs.coupling",
    "block_counts": "netstruct.pruning.counts",
    "count_macs": "netstruct.pruning.counts",
    "graph_params": "netstruct.pruning.counts",
    "structured_groups": "netstruct.pruning.structured",
    "group_importance": "netstruct.pruning.importance",
    "structured_prune": "netstruct.pruning.structured",
    "save": "netstruct.io.native",
    "load": "netstruct.io.native",
    "save_model": "netstruct.io.model",
    "load_model": "netstruct.io.model",
    "write_graphml": "netstruct.io.export",
    "write_gexf": "netstruct.io.export",
    "write_edgelist_csv": "netstruct.io.export",
    "available_backends": "netstruct.backends",
    "randomize": "netstruct.algorithms.randomize",
    "randomize_ensemble": "netstruct.algorithms.randomize",
    "mixing_diagnostic": "netstruct.algorithms.randomize",
    "motif_census": "netstruct.algorithms.motifs",
    "motif_zscores": "netstruct.algorithms.motifs",
    "fit_maxent": "netstruct.algorithms.maxent",
    "expected_motif_census": "netstruct.algorithms.maxent",
    "sign_adjacency": "netstruct.algorithms.balance",
    "balance_ratio": "netstruct.algorithms.balance",
    "frustration_index": "netstruct.algorithms.balance",
    "sign_consistency": "netstruct.algorithms.balance",
    "prune": "netstruct.pruning",
    "select_edges": "netstruct.pruning",
    "select_nodes": "netstruct.pruning",
    "PruningPlan": "netstruct.pruning",
    "magnitude_prune": "netstruct.pruning",
    "random_prune": "netstruct.pruning",
    "odf2nna": "netstruct.pruning",
    "learn_mask": "netstruct.pruning",
    "imp": "netstruct.pruning",
    "path_influence": "netstruct.causal",
    "legcnet_prune": "netstruct.causal",
    "granger": "netstruct.causal",
    "lyapunov": "netstruct.causal",
    "FormalContext": "netstruct.lattice",
    "concept_lattice": "netstruct.lattice",
    "meet_irreducibles": "netstruct.lattice",
    "join_irreducibles": "netstruct.lattice",
    "lattice_prune": "netstruct.lattice",
    "sweep": "netstruct.probes",
    "task_complexity": "netstruct.probes",
    "signed_projection": "netstruct.algorithms.communities",
    "signed_modularity": "netstruct.algorithms.communities",
    "signed_communities": "netstruct.algorithms.communities",
    "clusterability": "netstruct.algorithms.communities",
    "community_lesion": "netstruct.algorithms.communities",
    "layer_spectra": "netstruct.algorithms.spectra",
    "powerlaw_fit": "netstruct.algorithms.spectra",
}
_SUBMODULES = {
    "datasets",
    "training",
    "convert",
    "io",
    "backends",
    "algorithms",
    "probes",
    "lattice",
    "causal",
    "graphs",
    "utils",
    "figures",
    "pruning",
    "report",
    "models",
}

__all__ = [
    "__version__",
    "config",
    "config_context",
    "SignedGraph",
    "Block",
    "make_block",
    "NetstructError",
    "InvalidParameterError",
    "GraphError",
    "BackendUnavailableError",
    "NotImplementedForBackend",
    "UnsupportedModuleError",
    "FileFormatError",
    "DatasetNotFoundError",
    "InfeasibleTestError",
    "NetstructWarning",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = importlib.import_module(_LAZY[name])
        val = getattr(mod, name)
        globals()[name] = val
        return val
    if name in _SUBMODULES:
        return importlib.import_module(f"netstruct.{name}")
    raise AttributeError(f"module 'netstruct' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
