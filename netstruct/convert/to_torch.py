"""Re-import a :class:`~netstruct.SignedGraph` as a torch module."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..exceptions import GraphError, InvalidParameterError
from ..graphs._kernels import fold_shared
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph
from .handlers import handler_for_name

__all__ = ["to_torch", "build_modules"]


def _module_params(G: SignedGraph) -> dict[str, dict[str, np.ndarray]]:
    """``{module path: {parameter or buffer name: array}}`` read off the blocks.

    Blocks with ``layout["part"]`` (cross-attention's Q, K and V rows of one
    ``in_proj_weight``) each hold rows of their parameter and bias: those of one module and
    name are concatenated in block order.
    """
    params: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    parts: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    repeats: list[Any] = []
    for b in G.blocks:
        if b.kind in ("skip", "identity", "operator"):
            continue
        if "@" in b.module:  # a second call of a shared module
            repeats.append(b)
            continue
        own = params[b.module]
        if b.layout.get("part") is not None:
            parts[(b.module, b.param)].append(b.parameter())
            if b.bias is not None and b.bias_param:
                parts[(b.module, b.bias_param)].append(b.bias)
            own.update(b.state)
            continue
        if b.has_parameter:
            own[b.param] = b.parameter()
        else:
            own["__n__"] = np.asarray(b.shape[0])
        if b.bias is not None and b.bias_param:
            own[b.bias_param] = fold_shared(b, b.bias, "bias") if b.layout.get("shared") else b.bias
        own.update(b.state)
    for (path, name), arrays in parts.items():
        params[path].update(_join_parts(G, path, name, arrays))
    joined: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)  # (call, param)
    for b in repeats:
        if b.layout.get("part") is not None:
            joined[(b.module, b.param)].append(b.parameter())
            continue
        _check_repeat(params, b.module, b.param, b.parameter(), b.name)
    for (call, name), arrays in joined.items():
        for key, value in _join_parts(G, call, name, arrays).items():
            _check_repeat(params, call, key, value, f"{call}.{key}")
    return params


def _join_parts(G: SignedGraph, path: str, name: str, arrays: list[np.ndarray]) -> dict[str, Any]:
    """A parameter held by several blocks, joined by its layer's handler (``join_parts``)."""
    from .handlers import ModuleHandler

    entry = ((G._spec or {}).get("modules") or {}).get(path.split("@", 1)[0])
    handler = handler_for_name(entry["handler"]) if entry else ModuleHandler()
    return handler.join_parts(name, arrays)


def _check_repeat(
    params: dict[str, dict[str, np.ndarray]], call: str, name: str, value: np.ndarray, what: str
) -> None:
    path = call.split("@", 1)[0]
    first = params.get(path, {}).get(name)
    if first is None or first.shape != value.shape or not np.array_equal(first, value):
        raise GraphError(
            f"Block {what!r} is a second use of module {path!r}, whose parameters are shared, but "
            "its weights or mask differ from the first use's; prune or edit both uses alike."
        )


def _fixed_weight(n_out: int, n_in: int, layout: Any = None) -> np.ndarray | None:
    """Structure block weights: ``[I I ... I]``, attention's ``[I I I B]`` with a per-head
    score bias (``B[j, h] = 1`` for the context units ``j`` of head ``h``), or grouped-query
    attention's ``[I R R]`` (``layout["kv_repeats"]``, see
    :func:`~netstruct.graphs._generated.attention_pattern`)."""
    rep = int((layout or {}).get("kv_repeats", 1))
    if rep > 1:
        from ..graphs._generated import attention_pattern

        dim = int(layout["head_dim"])  # whole key/value groups go: the head size stays
        return attention_pattern((n_out // dim, dim), rep)
    reps = n_in // n_out if n_out and n_in % n_out == 0 else 0
    if reps:
        return np.concatenate([np.eye(n_out)] * reps, axis=1)
    heads = n_in - 3 * n_out
    if n_out and 0 < heads <= n_out and n_out % heads == 0:
        bias = np.kron(np.eye(heads), np.ones((n_out // heads, 1)))
        return np.concatenate([np.eye(n_out)] * 3 + [bias], axis=1)
    return None


def _check_fixed(G: SignedGraph) -> None:
    """Operator edges and the sums inside composite layers cannot be edited on re-import."""
    internal = set((G._spec or {}).get("internal", ()))  # read only: no copy of the spec
    for b in G.blocks:
        if b.kind == "operator" or b.name in internal:
            want = _fixed_weight(*b.shape, b.layout)
            if want is None or want.shape != b.shape or not np.array_equal(b.weight, want):
                raise GraphError(
                    f"Block {b.name!r} ({b.kind}) is structure inside a layer (attention's token "
                    "mixing or a residual sum of a composite layer); re-import cannot realise pruning "
                    "or edits of it. Prune the weight blocks instead."
                )


def structural_scales(G: SignedGraph) -> dict[str, np.ndarray]:
    """Per-feature factors of skip/identity blocks that are no longer the identity."""
    _check_fixed(G)
    internal = set((G._spec or {}).get("internal", ()))
    out = {}
    for b in G.blocks:
        if b.kind in ("skip", "identity") and b.name not in internal:
            d = np.diagonal(np.where(b.mask, b.weight, 0.0)).astype(np.float32)
            off = b.weight.copy()
            np.fill_diagonal(off, 0.0)
            if np.any(off):
                raise GraphError(
                    f"Structural block {b.name!r} ({b.kind}) has weights off its diagonal; skip and "
                    "identity edges join unit i to unit i only."
                )
            if not np.all(d == 1.0):
                out[b.name] = d
    return out


def _tie(model: Any, spec: dict[str, Any], G: SignedGraph) -> None:
    """Make tied parameters (one Parameter under several names) the same object again."""
    blocks = {
        f"{b.module}.{b.param}" if b.module else b.param: b for b in G.blocks if b.has_parameter
    }
    retie(
        model,
        spec.get("tied", {}),
        lambda name: blocks[name].parameter() if name in blocks else None,
    )


def retie(model: Any, tied: dict[str, str], value: Any) -> None:
    """Tie ``model``'s parameters as ``tied`` (``{alias: first name}``) says, values checked.

    ``value(name)`` gives the array the re-import read for a parameter name (None: not read).
    Two that differ are refused: a tie holds one tensor, so an edit of one name only cannot
    be realised. Shared by :func:`to_torch` and :func:`netstruct.load_model`.

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2), "b": torch.nn.Linear(2, 2)})
    >>> retie(m, {"b.weight": "a.weight"}, lambda name: None)
    >>> m.a.weight is m.b.weight
    True
    """
    import torch

    for alias, first in tied.items():
        a, f = value(alias), value(first)
        if a is not None and f is not None:
            if a.shape != f.shape or not np.array_equal(a, f):
                raise GraphError(
                    f"Parameters {first!r} and {alias!r} are tied in the model (one tensor) but the graph "
                    "holds different values for them; prune or edit both blocks alike."
                )
        mod_path, _, name = alias.rpartition(".")
        src_path, _, src_name = first.rpartition(".")
        try:
            target = model.get_submodule(mod_path) if mod_path else model
            source = model.get_submodule(src_path) if src_path else model
        except AttributeError:
            continue
        p = getattr(source, src_name, None)
        if isinstance(p, torch.nn.Parameter):
            setattr(target, name, p)


def build_modules(spec: dict[str, Any], G: SignedGraph) -> dict[str, Any]:
    """Rebuild every module of ``spec`` from the graph's blocks (path -> module)."""
    params = _module_params(G)
    unknown = set(params) - set(spec["modules"])
    if unknown:
        raise GraphError(
            f"The graph has blocks of modules {sorted(unknown)} that its architecture spec lacks."
        )
    out = {}
    for path, m in spec["modules"].items():
        handler = handler_for_name(m["handler"])
        try:
            out[path] = handler.build(m.get("config", {}), params.get(path, {}))
        except GraphError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise GraphError(
                f"Module {path!r} ({m['handler']}) could not be rebuilt from the graph "
                f"({type(exc).__name__}: {exc}); the graph's blocks do not fit its architecture "
                "(were shapes or names altered?)."
            ) from None
    return out


def _assemble(
    spec: dict[str, Any],
    modules: dict[str, Any],
    scales: dict[str, np.ndarray],
    copy_spec: bool = True,
) -> Any:
    """The model from its rebuilt modules; ``copy_spec=False`` lets a traced model share
    ``spec`` (for a module that is thrown away at once, e.g. export's round-trip check)."""
    import torch

    kind = spec.get("container", "Traced")
    if kind == "Leaf" and list(modules) == [""] and not scales:
        return modules[""]
    if kind == "Sequential" and not scales:
        from .rebuilt import set_submodule

        root = torch.nn.Sequential()
        # in call order: a saved spec's module table may come back sorted by name ("10" < "2")
        order = [r["target"] for r in spec.get("ops", ()) if r.get("op") == "call_module"]
        order = list(dict.fromkeys(p for p in order if p in modules))
        for path in order + [p for p in modules if p not in order]:
            set_submodule(root, path, modules[path], torch.nn.Sequential)
        return root
    from ..graphs.signed import _copy_json
    from .rebuilt import RebuiltModel

    # the module keeps its own spec
    return RebuiltModel(_copy_json(spec) if copy_spec else spec, modules, scales)


def _apply_prune_masks(model: Any, G: SignedGraph) -> None:
    import torch
    from torch.nn.utils import prune as tprune

    parts: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for b in G.blocks:
        if b.has_parameter and "@" not in b.module and b.layout.get("part") is not None:
            parts[(b.module, b.param)].append(b)  # one mask over the parameter's row parts
    masks = [
        (b.module, b.param, _parameter_mask(b))
        for b in G.blocks
        if not (b.is_dense or not b.has_parameter or "@" in b.module)
        and b.layout.get("part") is None
    ]
    for (path, param), blocks in parts.items():
        if not all(b.is_dense for b in blocks):
            joined = _join_parts(G, path, param, [_parameter_mask(b) for b in blocks])
            masks.extend((path, name, mask) for name, mask in joined.items())
    for path, param, mask in masks:
        mod = model.get_submodule(path) if path else model
        inner, _, name = param.rpartition(".")  # a composite layer's own parameter path
        if inner:
            mod = mod.get_submodule(inner)
        tprune.custom_from_mask(mod, name, torch.from_numpy(mask))


def _parameter_mask(b: Any) -> np.ndarray:
    """The block's keep mask in its parameter's layout (transposed tables, norm diagonals,
    every tap of a kept convolution edge)."""
    kind = b.layout.get("type")
    if b.kernel is None:
        if kind == "transpose":
            return np.ascontiguousarray(b.mask.T)
        if kind == "diag":
            return np.ascontiguousarray(np.diagonal(b.mask))
        return b.mask.copy()
    ones = b.replace(
        weight=np.ones(b.shape, dtype=np.float32), kernel=np.ones(b.kernel.shape, np.float32)
    )
    return np.ascontiguousarray(ones.parameter() != 0)


def structure_key(G: SignedGraph) -> str:
    """Fingerprint of the graph's wiring: spec, node count, block names, kinds, shapes and ids.

    ``from_torch`` records it in ``provenance["structure"]``; a graph whose wiring is unchanged
    (masks, weights and biases may differ) is rebuilt without re-exporting it for a check.
    """
    cached = G.__dict__.get(_STRUCTURE_KEY)
    if cached is None:  # graphs are immutable: the key is computed once per graph
        cached = G.__dict__[_STRUCTURE_KEY] = wiring_key(
            G._spec, G.n_nodes, G.blocks, canonical_spec_of(G, G._spec)
        )
    return cached


_STRUCTURE_KEY = "_netstruct_structure_key"
#: a graph's spec as canonical JSON bytes (encoding it is most of a key's cost): a graph cut
#: from it with the same spec object (shrink, a mask) encodes only its own blocks
_SPEC_JSON = "_netstruct_spec_json"


def remember_structure_key(G: SignedGraph, key: str | None, spec_bytes: Any = None) -> SignedGraph:
    """Record ``key``, computed from ``G``'s own spec, node count and blocks, as its
    :func:`structure_key` (for graphs whose maker just computed it: no second hash), and
    ``spec_bytes`` (:func:`canonical_spec`) of a spec equal to ``G``'s."""
    if key is not None:
        G.__dict__[_STRUCTURE_KEY] = key
    if spec_bytes is not None:
        G.__dict__[_SPEC_JSON] = spec_bytes
    return G


def canonical_spec(spec: Any) -> bytes:
    """``spec`` as the canonical JSON bytes :func:`wiring_key` hashes first (plain bytes:
    a graph that remembers them still pickles)."""
    import json

    return json.dumps(spec, sort_keys=True, default=str).encode()


def canonical_spec_of(G: SignedGraph, spec: Any) -> bytes:
    """:func:`canonical_spec` of ``spec``: ``G``'s remembered one when ``spec`` is ``G``'s own."""
    cached = G.__dict__.get(_SPEC_JSON) if spec is G._spec else None
    if cached is None:
        cached = canonical_spec(spec)
        if spec is G._spec:
            G.__dict__[_SPEC_JSON] = cached
    return cached


def wiring_key(spec: Any, n_nodes: int, blocks: Any, spec_bytes: Any = None) -> str:
    """:func:`structure_key` from the parts (used by export before the graph exists);
    ``spec_bytes``: :func:`canonical_spec` of ``spec`` when the caller has it."""
    import hashlib

    h = hashlib.sha256(spec_bytes if spec_bytes is not None else canonical_spec(spec))
    h.update(str(n_nodes).encode())
    for b in blocks:
        h.update(f"{b.name}|{b.kind}|{b.shape}|{b.module}|{b.param}|{b.delay}".encode())
        h.update(b.sources.tobytes())
        h.update(b.targets.tobytes())
        if b.kernel is not None:
            h.update(str(b.kernel.shape).encode())
    return h.hexdigest()


def _verify_structure(G: SignedGraph, model: Any) -> None:
    """Export the rebuilt module again and check that its blocks wire up exactly like ``G``'s."""
    import torch

    from . import _ops
    from .from_torch import from_torch

    spec = G._spec or {}  # read only: no copy of the spec
    example: Any = None
    facts = spec.get("specialised") or {}
    if facts.get("input_shapes"):  # a tape trace: placeholders of every input's shape and dtype
        dtypes = facts.get("input_dtypes") or [None] * len(facts["input_shapes"])
        example = tuple(
            torch.zeros(shape, dtype=getattr(torch, dt or "float32")) if shape is not None else None
            for shape, dt in zip(facts["input_shapes"], dtypes)
        )
        example = example[0] if len(example) == 1 else example
    elif "input_shape" in spec:
        dtype = getattr(torch, spec.get("input_dtype", "float32"))
        example = torch.zeros(spec["input_shape"], dtype=dtype)
    token = _ops.GUARDS.set(False)
    try:
        H = from_torch(model, example, check=False, reduction=G.provenance.get("reduction", "sum"))
    except (GraphError, InvalidParameterError) as exc:
        raise GraphError(
            f"The graph's blocks do not chain into a working model ({exc}); were shapes altered?"
        ) from None
    finally:
        _ops.GUARDS.reset(token)
    for a, b in zip(G.blocks, H.blocks):
        if (
            a.name != b.name
            or a.shape != b.shape
            or not (np.array_equal(a.sources, b.sources) and np.array_equal(a.targets, b.targets))
        ):
            raise GraphError(
                f"Block {a.name!r} (shape {a.shape}) does not wire up as its architecture says (expected "
                f"{b.name!r} with shape {b.shape} and the same source/target nodes); the graph was altered "
                "inconsistently. Use netstruct.shrink to remove units."
            )
    if len(G.blocks) != len(H.blocks) or G.n_nodes != H.n_nodes:
        raise GraphError(
            f"The graph has {len(G.blocks)} blocks and {G.n_nodes} nodes but its architecture gives "
            f"{len(H.blocks)} blocks and {H.n_nodes} nodes; the graph was altered inconsistently."
        )


def to_torch(
    G: SignedGraph, *, shrink: bool = False, prune_masks: bool = False, into: Any = None
) -> Any:
    """Rebuild a torch module from a graph.

    Parameters
    ----------
    G : SignedGraph
        A graph exported with :func:`netstruct.from_torch` (possibly pruned or perturbed).
    shrink : bool, default=False
        Remove units left without inputs or outputs first (:func:`netstruct.shrink`), so the
        layers are physically smaller; outputs equal the masked model's.
    prune_masks : bool, default=False
        Attach ``torch.nn.utils.prune`` masks to pruned parameters, so fine-tuning keeps the
        removed weights at zero. Otherwise pruned weights are plain zeros.
    into : torch.nn.Module, optional
        The model the graph was exported from: return a copy of it with the graph's layers
        put in place (masked, edited or, with ``shrink``, physically smaller), tied
        parameters re-tied, the head counts its attention modules keep (``num_heads``,
        ``num_key_value_heads``, ``all_head_size``, ...) and its config's
        ``num_attention_heads``/``num_key_value_heads``/``intermediate_size`` updated where
        every layer agrees. The model's own forward then runs, at any input shape where it
        computes its shapes from its inputs (a transformers LLM: the rebuilt module of a
        model recorded by running it once runs on the example's shape only), and it stays
        the model's class (``save_pretrained`` works). It is checked against the rebuilt
        module on the example's shapes; a forward that keeps other sizes is refused.

    Returns
    -------
    torch.nn.Module
        In eval mode. ``nn.Sequential`` models come back as ``nn.Sequential``; traced models as
        a module with the same submodule paths (same ``state_dict`` keys); with ``into``, a
        copy of that model.

    Raises
    ------
    GraphError
        The graph has no architecture spec (e.g. an unrolled graph), or its blocks no longer
        fit it (tampered shapes).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    >>> rebuilt = ns.to_torch(ns.from_torch(model))
    >>> x = torch.randn(5, 3)
    >>> bool(torch.equal(model(x), rebuilt(x)))
    True
    """
    check_graph(G, "to_torch")
    if not isinstance(shrink, bool):
        raise InvalidParameterError(
            f"The 'shrink' parameter of to_torch must be a bool. Got {shrink!r} instead."
        )
    if into is None:
        return rebuild(G, shrink=shrink, prune_masks=prune_masks)
    import torch

    if not isinstance(into, torch.nn.Module):
        raise InvalidParameterError(
            "The 'into' parameter of to_torch must be the torch.nn.Module the graph was "
            f"exported from. Got {type(into).__name__} instead."
        )
    if shrink:
        from .shrink import shrink as _shrink

        G = _shrink(G)
    from .graft import graft

    return graft(G, into, rebuild(G, prune_masks=prune_masks))


def rebuild(
    G: SignedGraph, *, shrink: bool = False, prune_masks: bool = False, copy_spec: bool = True
) -> Any:
    """:func:`to_torch` after its argument checks; ``copy_spec=False``: the rebuilt module
    shares the graph's spec (only for a module that is discarded at once and never edited,
    e.g. export's round-trip check)."""
    spec = G._spec  # read only (handlers read their configs; the traced model gets a copy)
    if spec is None:
        raise GraphError(
            "This graph has no architecture spec, so it cannot become a torch module (graphs from "
            "netstruct.unroll or from_networkx of arbitrary graphs are analysis-only)."
        )
    if shrink:
        from .shrink import shrink as _shrink

        G = _shrink(G)
        spec = G._spec
        assert spec is not None  # shrinking keeps the spec
    modules = build_modules(spec, G)
    model = _assemble(spec, modules, structural_scales(G), copy_spec=copy_spec)
    _tie(model, spec, G)
    dtype = spec.get("dtype", "float32")
    if dtype != "float32":
        import torch

        model = model.to(getattr(torch, dtype))
    if G._provenance.get("structure") != structure_key(G):  # wiring changed since export: check it
        _verify_structure(G, model)
    if prune_masks:
        _apply_prune_masks(model, G)
    from .rebuilt import set_eval

    set_eval(model)
    return model
