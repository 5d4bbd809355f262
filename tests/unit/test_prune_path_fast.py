"""Fast paths of the export/plan/prune path against the slower code they replace.

* :func:`netstruct.convert._values.decode` (one sorted search of the code table) against the
  ``np.unique`` + per-code dictionary lookup it replaced;
* ``SignedGraph._node_ids`` (a per-graph name -> id dict) against the pandas name index, and
  that the dict of one graph never answers for another;
* :func:`netstruct.pruning.plan.check_layers_kept` (per-layer bincounts) against the per-layer
  loop it replaced: the same refusal, with the same message, or none.
"""

from __future__ import annotations

import numpy as np
import pytest

from netstruct.convert._values import Feat, decode, encode
from netstruct.exceptions import GraphError

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------------- decode
def _decode_reference(t, lookup):
    """The former decode: ``np.unique`` of every entry, one dict lookup per distinct value."""
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    if a.dtype != np.float64 or a.ndim == 0:
        return None
    flat = a.reshape(-1)
    uniq, inv = np.unique(flat, return_inverse=True)
    ids = np.array([lookup.get(float(u), -1) for u in uniq], dtype=np.int64)
    if (ids < 0).any():
        return None
    node = ids[inv].reshape(a.shape)
    varying = [k for k in range(a.ndim) if a.shape[k] > 1 and not (np.ptp(node, axis=k) == 0).all()]
    if len(varying) > 1:
        sub = node[tuple(slice(None) if k in varying else 0 for k in range(a.ndim))]
        if np.unique(sub).size != sub.size:
            return None
        return Feat(np.ascontiguousarray(sub), a.ndim, varying[0], tuple(varying))
    if not varying:
        sizes = [k for k in range(a.ndim) if a.shape[k] == 1]
        if np.unique(node).size != 1 or not sizes:
            return None
        axis = sizes[-1]
    else:
        axis = varying[0]
    index: list = [0] * a.ndim
    index[axis] = slice(None)
    return Feat(np.ascontiguousarray(node[tuple(index)]).reshape(-1), a.ndim, axis)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (
        a.ndim == b.ndim
        and a.axis == b.axis
        and a.axes == b.axes
        and a.ids.dtype == b.ids.dtype
        and np.array_equal(a.ids, b.ids)
    )


def _code_tensors():
    """Code tensors of the shape operations export follows, and of ones it must refuse."""
    rng = np.random.default_rng(0)
    ids = np.array([3, 7, 7, 1, 9, 4])
    t, lk = encode(Feat(ids, 3, -1), (2, 5, 6), rng)
    yield "last axis", t, lk
    yield "view into heads", t.view(2, 5, 2, 3), lk
    yield "heads to the front", t.view(2, 5, 2, 3).permute(0, 2, 1, 3), lk
    yield "flatten", t.flatten(1), lk
    u, lku = encode(Feat(np.array([3, 7, 0, 1, 9, 4]), 3, -1), (2, 5, 6), rng)
    yield "view into distinct heads", u.view(2, 5, 2, 3), lku
    yield "distinct heads to the front", u.view(2, 5, 2, 3).permute(0, 2, 1, 3), lku
    yield "one position", t[:, :1, :1], lk
    yield "one feature", t[..., 2:3], lk
    yield "one node everywhere", t[..., 1:3], lk
    yield "a mean over features", t.mean(-1, keepdim=True), lk
    yield "zero padded", torch.nn.functional.pad(t, (0, 1)), lk
    yield "nan", torch.where(t > t.mean(), torch.tensor(float("nan"), dtype=t.dtype), t), lk
    yield "empty", t[:0], lk
    yield "float32", t.float(), lk
    yield "scalar", t[0, 0, 0], lk
    yield "empty table", t, {}
    c, lk2 = encode(Feat(np.array([5, 6, 8]), 4, 1), (2, 3, 4, 4), rng)
    yield "channels", c, lk2
    yield "pooled", torch.nn.functional.adaptive_avg_pool2d(c, 1), lk2
    yield "flattened map", c.flatten(1), lk2
    both = dict(lk)
    both.update(lk2)
    yield "concatenated", torch.cat([t[:, 0, :], c[:, :, 0, 0]], dim=1), both
    prod, lk3 = encode(Feat(np.arange(6).reshape(2, 3), 4, 1, (1, 3)), (2, 2, 4, 3), rng)
    yield "a product layout", prod, lk3
    yield "a product layout, transposed", prod.transpose(1, 3), lk3
    yield "a non-product layout", torch.cat([prod[:, :1], prod[:, :1]], dim=1), lk3


@pytest.mark.parametrize("label,t,lookup", list(_code_tensors()), ids=lambda v: str(v)[:20])
def test_decode_matches_the_former_decode(label, t, lookup):
    assert _same(decode(t, lookup), _decode_reference(t, lookup)), label


def test_decode_follows_and_refuses_what_it_should():
    rng = np.random.default_rng(1)
    t, lk = encode(Feat(np.array([4, 2, 8]), 3, -1), (2, 4, 3), rng)
    got = decode(t.flatten(1), lk)
    assert got is not None and got.ids.tolist() == [4, 2, 8] * 4
    assert decode(t.mean(-1), lk) is None  # mixes the features: no code


# ---------------------------------------------------------------------- node ids by name
def _mlp(width: int):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)
    )


def test_node_ids_match_the_name_index_and_do_not_leak_between_graphs():
    import netstruct as ns

    G, H = ns.from_torch(_mlp(4)), ns.from_torch(_mlp(6))
    names = ["0[3]", "input[1]", "0[5]", "nope", "2[0]"]
    for graph in (G, H, G):  # the first graph's dict must not answer for the second
        want = graph._name_index().get_indexer(names)
        assert graph._node_ids(names).tolist() == want.tolist()
    assert G._node_ids(["0[5]"]).tolist() == [-1] and H._node_ids(["0[5]"]).tolist() != [-1]
    assert G._node_ids([]).dtype == np.int64 and G._node_ids([]).size == 0


def test_plan_from_one_graph_applies_to_another_by_name():
    import netstruct as ns
    from netstruct.pruning import PruningPlan

    G, H = ns.from_torch(_mlp(4)), ns.from_torch(_mlp(4))
    plan = PruningPlan.for_graph(G).remove_units(G, "name in ['0[1]', '0[2]']")
    assert [b.shape for b in plan.apply(H, shrink=True).blocks] == [(2, 3), (2, 2)]
    other = ns.from_torch(_mlp(2))
    with pytest.raises(GraphError):  # another architecture
        plan.apply(other, shrink=True)


# ---------------------------------------------------------------------- layers kept
def _check_reference(G, removed_units, edge_mask, func):
    """The former check_layers_kept: one pass over the nodes per hidden layer."""
    from netstruct.pruning.plan import _layer_label

    a = G.edge_arrays()
    unit, kind, group = G.node_column("unit"), G.node_column("kind"), G.node_column("group")
    n = G.n_nodes
    gone = removed_units[unit]
    live = ~edge_mask & ~gone[a["source"]] & ~gone[a["target"]]
    src, tgt = a["source"][live], unit[a["target"][live]]
    indeg = np.bincount(tgt, minlength=n)
    outdeg = np.bincount(src[tgt != src], minlength=n)
    is_unit = (kind == "hidden") & (unit == np.arange(n))
    works = is_unit & ~removed_units & (indeg > 0) & (outdeg > 0)
    layers = [(g, is_unit & (group == g)) for g in np.unique(group[is_unit])]
    emptied = [(g, m) for g, m in layers if removed_units[m].all()]
    for g, in_layer in emptied + [(g, m) for g, m in layers if not works[m].any()]:
        how = (
            "removes every unit"
            if removed_units[in_layer].all()
            else "leaves no unit with both inputs and outputs"
        )
        raise GraphError(
            f"{func}: the selection {how} of {_layer_label(G, int(g))}, which has {int(in_layer.sum())} "
            "units; keep at least one unit per hidden layer (narrow the query)."
        )


def _outcome(fn, *args):
    try:
        fn(*args)
    except GraphError as exc:
        return str(exc)
    return None


def test_check_layers_kept_matches_the_per_layer_loop():
    import netstruct as ns
    from netstruct.pruning.plan import check_layers_kept

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2), torch.nn.ReLU(),
        torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2),
    )  # fmt: skip
    G = ns.from_torch(model)
    rng = np.random.default_rng(0)
    hidden = np.flatnonzero(G.node_column("kind") == "hidden")
    seen = set()
    for _ in range(300):
        units = np.zeros(G.n_nodes, dtype=bool)
        units[hidden[rng.random(hidden.size) < 0.4]] = True
        edges = rng.random(G.n_edges) < 0.2
        got = _outcome(check_layers_kept, G, units, edges, "f")
        assert got == _outcome(_check_reference, G, units, edges, "f")
        seen.add(None if got is None else got.split(" of layer")[0])
    # every outcome was met: kept, an emptied layer, a layer without a working unit
    assert seen == {
        None,
        "f: the selection removes every unit",
        "f: the selection leaves no unit with both inputs and outputs",
    }


# ---------------------------------------------------------------------- batch-norm rebuild
def _bn_model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)
    )
    with torch.no_grad():
        m[1].running_mean.copy_(torch.randn(4))
        m[1].running_var.copy_(torch.rand(4) + 0.5)
        m[1].num_batches_tracked.fill_(7)
    return m.eval()


def test_batchnorm_buffers_come_back_exactly():
    import netstruct as ns

    m = _bn_model()
    rebuilt = ns.to_torch(ns.from_torch(m, torch.randn(2, 1, 6, 6)))
    for name, buf in m[1].named_buffers():
        got = dict(rebuilt.named_buffers())[f"1.{name}"]
        assert got.dtype == buf.dtype and torch.equal(got, buf), name


def test_batchnorm_build_converts_other_dtypes_and_resets_what_is_missing():
    from netstruct.convert.handlers import handler_for_name

    h = handler_for_name("BatchNorm2d")
    m = _bn_model()[1]
    config = h.config(m)
    mean = np.array([0.1, -0.2, 1.0 / 3.0, 2.0], dtype=np.float64)  # converted to float32
    weight = m.weight.detach().numpy().copy()
    bn = h.build(config, {"weight": weight, "bias": weight * 0, "running_mean": mean})
    assert torch.equal(bn.running_mean, torch.from_numpy(mean).float())
    assert torch.equal(bn.running_var, torch.ones(4))  # not given: reset, not left uninitialised
    assert int(bn.num_batches_tracked) == 0
    nbt = np.array(5, dtype=np.int64)
    full = {"weight": weight, "bias": weight, "running_mean": mean.astype(np.float32)}
    full.update(running_var=np.full(4, 2.0, dtype=np.float32), num_batches_tracked=nbt)
    bn = h.build(config, full)
    assert torch.equal(bn.running_var, torch.full((4,), 2.0)) and int(bn.num_batches_tracked) == 5
