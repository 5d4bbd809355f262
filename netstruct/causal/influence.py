"""Signed path influence in feed-forward graphs: sums over paths of weight products.

For a feed-forward :class:`~netstruct.SignedGraph`, the signed influence of node u on output
o is the sum, over all directed paths u -> o, of the product of the edge weights — entry
(o, u) of W_L ... W_1 for an MLP. :func:`path_influence` computes it for every node and
every output by one backward sweep of matrix products over the blocks, and the influence
carried by each edge (its weight times the influence of its target). With data ``X`` the
variant is activation-weighted: every edge s -> t is scaled by the activation slope at t,
sample by sample, and the result is the input-output Jacobian averaged over the data.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..exceptions import GraphError, param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph

__all__ = ["path_influence"]


def _gains(G, X: np.ndarray) -> np.ndarray:
    """Activation slope of every node on every sample, shape (n_nodes, n_samples)."""
    from ..convert.elementwise import activation_map, activation_slope

    for b in G.blocks:
        if b.kind in ("norm", "operator") or b.kernel is not None:
            raise GraphError(
                f"path_influence with data evaluates node values as activation(sum of weight * source "
                f"+ bias); block {b.name!r} ({'a norm' if b.kind == 'norm' else 'a convolution or flattened map'}) "
                "does not compute that. Call path_influence(G) without X for the structural influence."
            )
    nodes = G.nodes()
    act = nodes["activation"].to_numpy()
    maps, slopes = {}, {}
    for label in set(act.tolist()):
        try:  # every activation's map and slope come from its layer handler
            maps[label], slopes[label] = activation_map(label), activation_slope(label)
            slopes[label](np.zeros(1))
        except GraphError as exc:
            raise GraphError(
                f"path_influence with data cannot use activation {label!r}: {exc}"
            ) from None
    inputs = np.flatnonzero(nodes["kind"].to_numpy() == "input")
    order = np.argsort(nodes["index"].to_numpy()[inputs], kind="stable")
    inputs = inputs[order]
    if X.shape[1] != inputs.size:
        raise param_error(
            "X",
            "path_influence",
            f"an array with {inputs.size} columns (the graph's inputs)",
            f"shape {X.shape}",
        )
    n = G.n_nodes
    z = np.zeros((n, X.shape[0]))
    z += nodes["bias"].to_numpy()[:, None]
    z[inputs] = X.T
    done = np.zeros(n, dtype=bool)
    done[inputs] = True
    a = np.zeros_like(z)
    a[inputs] = X.T
    for b in G.blocks:
        todo = b.sources[~done[b.sources]]
        for u in np.unique(todo):
            a[u] = maps[act[u]](z[u])
            done[u] = True
        z[b.targets] += b.weight.astype(np.float64) @ a[b.sources]
    g = np.ones_like(z)
    for u in np.flatnonzero(~np.isin(np.arange(n), inputs)):
        g[u] = slopes[act[u]](z[u])
    return g


def path_influence(
    G: SignedGraph, X: ArrayLike | None = None
) -> tuple[SignedGraph, NDArray[np.float64]]:
    """Signed influence of every node and edge on every output, attached as attributes.

    Parameters
    ----------
    G : SignedGraph
        A feed-forward graph (no recurrent blocks) whose blocks are in forward order, e.g.
        from :func:`netstruct.from_torch` on an MLP.
    X : array_like of shape (n_samples, n_inputs), optional
        Data for the activation-weighted variant (averaged Jacobian). Without it, the
        influence is the plain sum over paths of weight products.

    Returns
    -------
    G_out : SignedGraph
        ``G`` with node attributes ``influence_o{j}`` (influence of the node on output j,
        1 for output j itself) and ``influence_abs`` (sum over outputs of the absolute
        values), and edge attributes of the same names (influence carried by the edge:
        its weight times the influence of its target, times the target's slope with data).
    M : ndarray of shape (n_nodes, n_outputs)
        The node influence matrix.

    Raises
    ------
    GraphError
        Recurrent blocks (unroll first), or activations without a known slope (with data).

    Notes
    -----
    One backward sweep over the blocks: ``M[sources] += W_b.T @ M[targets]`` (per sample
    with data), so the cost is O(n_edges n_outputs) (times n_samples with data).

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> b1 = ns.make_block(name="a", weight=np.array([[2.0, -1.0]]), sources=[0, 1], targets=[2])
    >>> b2 = ns.make_block(name="b", weight=np.array([[3.0]]), sources=[2], targets=[3])
    >>> G = ns.SignedGraph({"name": ["x0", "x1", "h", "y"], "kind": ["input", "input", "hidden", "output"]}, [b1, b2])
    >>> H, M = path_influence(G)
    >>> M[:, 0].tolist()
    [6.0, -3.0, 3.0, 1.0]
    >>> H.edges()["influence_o0"].tolist()
    [6.0, -3.0, 3.0]
    """
    check_graph(G, "path_influence")
    if any(b.delay for b in G.blocks):
        raise GraphError(
            "path_influence needs a feed-forward graph; this one has recurrent blocks "
            f"{[b.name for b in G.blocks if b.delay]}. Unroll it first with netstruct.unroll(G, steps)."
        )
    kinds = G.nodes()["kind"].to_numpy()
    outputs = np.flatnonzero(kinds == "output")
    if outputs.size == 0:
        raise GraphError("path_influence found no node of kind 'output' in the graph.")
    gains = None
    if X is not None:
        Xa = np.asarray(X, dtype=np.float64)
        if Xa.ndim != 2 or not np.isfinite(Xa).all():
            raise param_error(
                "X",
                "path_influence",
                "a finite array of shape (n_samples, n_inputs)",
                f"shape {Xa.shape}",
            )
        gains = _gains(G, Xa)  # (n_nodes, n_samples)
    n_s = 1 if gains is None else gains.shape[1]
    M = np.zeros((G.n_nodes, outputs.size, n_s))
    M[outputs, np.arange(outputs.size), :] = 1.0
    edge_parts = []
    for b in reversed(G.blocks):
        W = b.weight.astype(np.float64)
        Mt = M[b.targets]  # (n_t, n_out, n_s)
        if gains is not None:
            Mt = Mt * gains[b.targets][:, None, :]
        M[b.sources] += np.einsum("tu,ton->uon", W, Mt)
        rows, cols = np.nonzero(b.mask)
        edge_parts.append(W[rows, cols][:, None] * Mt[rows].mean(axis=2))
    Mn = M.mean(axis=2)
    E = np.concatenate(edge_parts[::-1], axis=0) if edge_parts else np.zeros((0, outputs.size))
    node_attrs = {f"influence_o{j}": Mn[:, j] for j in range(outputs.size)}
    node_attrs["influence_abs"] = np.abs(Mn).sum(axis=1)
    edge_attrs = {f"influence_o{j}": E[:, j] for j in range(outputs.size)}
    edge_attrs["influence_abs"] = np.abs(E).sum(axis=1)
    return G.with_node_attrs(**node_attrs).with_edge_attrs(**edge_attrs), Mn
