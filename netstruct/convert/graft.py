"""Put a graph's layers back into the user's own model: ``to_torch(G, into=model)``.

:func:`~netstruct.convert.to_torch.to_torch` rebuilds a module from the graph alone. For a
model recorded by running it once (a tape: transformers' LLMs, whose forward torch.fx cannot
trace) that module replays the recorded operations and so runs on the example's input shape
only. Most models compute their shapes from their inputs and their layers' sizes (a Llama's
attention views its projections as ``(*input_shape, -1, head_dim)``; its MLP reads the
intermediate size off its Linear layers), so their *own* forward runs the shrunk layers at any
shape. :func:`graft` takes a copy of the model, puts every exported layer of the graph in
place (masked, edited or physically smaller), re-ties shared parameters, updates the head
counts attention modules keep as attributes (``num_heads``, ``num_key_value_heads``,
``all_head_size``, ...) and the model's config where every layer agrees, and checks that the
result computes what the rebuilt module computes on the example's shape.
"""

from __future__ import annotations

import copy
from typing import Any

from ..exceptions import GraphError
from ..graphs.coupling import HEAD_GATE
from ..graphs.signed import SignedGraph
from ._tape import flat_tensors

__all__ = ["graft"]

#: attention attributes holding the number of query heads, of key/value heads, of their width
_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_head", "n_heads")
_KV_ATTRS = ("num_key_value_heads", "num_kv_heads")
_WIDTH_ATTRS = ("all_head_size", "inner_dim", "split_size")


def _set_module(root: Any, path: str, module: Any) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, module)


def _on_device_of(new: Any, old: Any) -> Any:
    """``new`` on the device of ``old``'s first tensor (a model on a GPU keeps its layers
    there; the rebuilt ones are made on the CPU)."""
    for t in (*old.parameters(recurse=True), *old.buffers(recurse=True)):
        return new.to(t.device)
    return new


def _put_tensors(target: Any, rebuilt: Any) -> None:
    """Every parameter and buffer of ``rebuilt`` into ``target`` under its name (a raw
    parameter a layer reads directly, e.g. ViT's ``cls_token``, a sliced norm weight)."""
    import torch

    own = dict(target.named_parameters(remove_duplicate=False))
    own.update(dict(target.named_buffers(remove_duplicate=False)))
    for name, value in rebuilt.state_dict(keep_vars=True).items():
        if name not in own:
            continue
        have = own[name]
        if have.shape == value.shape:
            with torch.no_grad():
                have.copy_(value.detach())
            continue
        path, _, leaf = name.rpartition(".")
        holder = target.get_submodule(path) if path else target
        if isinstance(have, torch.nn.Parameter):
            setattr(holder, leaf, torch.nn.Parameter(value.detach().clone(), have.requires_grad))
        else:
            holder.register_buffer(leaf, value.detach().clone())


def _head_counts(G: SignedGraph) -> dict[str, tuple[int, int, int]]:
    """Per attention module path: ``(query heads, key/value heads, query width)``."""
    gate = G.node_column("gate")
    out: dict[str, tuple[int, int, int]] = {}
    for b in G.blocks:
        if b.kind != "operator" or not b.name.endswith(".attention"):
            continue
        heads: dict[str, set[int]] = {"q": set(), "k": set()}
        n_q = 0
        for label in gate[b.sources].tolist():
            m = HEAD_GATE.match(str(label))
            if m is None:
                continue
            if m.group(1) == "q":
                n_q += 1
            if m.group(1) in heads:
                heads[m.group(1)].add(int(m.group(2)))
        if heads["q"]:  # b.module: the module that ran the attention (or its op's path)
            out[b.module] = (len(heads["q"]), len(heads["k"]) or len(heads["q"]), n_q)
    return out


def _patch_heads(model: Any, counts: dict[str, tuple[int, int, int]]) -> None:
    """Attributes of attention modules that hold head counts or widths, set to the kept ones
    (as Torch-Pruning's recipes patch ``num_heads`` by hand)."""
    for path, (heads, kv, width) in counts.items():
        mod = _owner(model, path)
        if mod is None:
            continue
        for names, new in ((_HEAD_ATTRS, heads), (_KV_ATTRS, kv), (_WIDTH_ATTRS, width)):
            for name in names:
                if isinstance(getattr(mod, name, None), int) and not isinstance(
                    getattr(mod, name), bool
                ):
                    setattr(mod, name, new)


def _owner(model: Any, path: str) -> Any:
    """The module at ``path``, or at its nearest parent (an operation's path names the module
    that ran it plus the operation: ``layers.0.self_attn.scaled_dot_product_attention``)."""
    while True:
        try:
            return model.get_submodule(path)
        except AttributeError:
            if not path:
                return None
            path = path.rpartition(".")[0]


def _patch_config(
    model: Any, counts: dict[str, tuple[int, int, int]], mlp_widths: dict[str, int]
) -> list[str]:
    """The model's config where every layer agrees (heads, key/value heads, MLP width);
    returns the names it could not set (layers pruned unevenly)."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return []
    uneven = []
    for key, idx in (("num_attention_heads", 0), ("num_key_value_heads", 1)):
        values = {c[idx] for c in counts.values()}
        if hasattr(cfg, key) and values:
            if len(values) == 1:
                setattr(cfg, key, values.pop())
            else:
                uneven.append(key)
    old = getattr(cfg, "intermediate_size", None)
    if isinstance(old, int):
        # the MLP width: the Linear layers that had intermediate_size outputs (or twice it:
        # a fused gate/up projection) and now have fewer
        widths = set()
        for path, factor in mlp_widths.items():
            mod = _owner(model, path)
            if mod is not None and isinstance(getattr(mod, "out_features", None), int):
                widths.add(int(mod.out_features) // factor)
        if len(widths) == 1:
            cfg.intermediate_size = widths.pop()
        elif widths:
            uneven.append("intermediate_size")
    return uneven


def _mlp_layers(model: Any) -> dict[str, int]:
    """Paths of the Linear layers with ``config.intermediate_size`` outputs (1) or twice that
    many (2: a fused gate and up projection), read before the graft."""
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "intermediate_size", None)
    if not isinstance(n, int) or n <= 0:
        return {}
    out = {}
    for path, mod in model.named_modules():
        width = getattr(mod, "out_features", None)
        if width == n:
            out[path] = 1
        elif width == 2 * n:
            out[path] = 2
    return out


def _example_inputs(spec: dict[str, Any]) -> tuple[Any, ...] | None:
    """Inputs of the example's shapes and dtypes (token ids and masks: ones), or None."""
    import torch

    facts = spec.get("specialised") or {}
    shapes = facts.get("input_shapes")
    dtypes = facts.get("input_dtypes")
    if not shapes:
        shape, dtype = spec.get("input_shape"), spec.get("input_dtype")
        if shape is None:
            return None
        shapes, dtypes = [shape], [dtype or "float32"]
    gen = torch.Generator().manual_seed(0)
    out = []
    for shape, dtype in zip(shapes, dtypes or ["float32"] * len(shapes)):
        dt = getattr(torch, str(dtype))
        if dt.is_floating_point:
            out.append(torch.randn([int(s) for s in shape], generator=gen, dtype=dt))
        else:
            out.append(torch.ones([int(s) for s in shape], dtype=dt))
    return tuple(out)


def graft(G: SignedGraph, model: Any, rebuilt: Any) -> Any:
    """A copy of ``model`` running the graph's layers (see the module docstring).

    ``rebuilt``: ``to_torch(G)``, whose layers go in and against which the result is checked.
    """
    import torch

    spec = G._spec or {}
    target = copy.deepcopy(model)
    for path, entry in spec.get("modules", {}).items():
        if "@" in path or entry.get("handler") == "Parameters":
            continue  # a second call; a holder of directly read parameters (moved below)
        try:
            new = rebuilt.get_submodule(path)
            target.get_submodule(path)
        except AttributeError:
            raise GraphError(
                f"to_torch(into=...): the model has no layer {path!r} that the graph holds; pass "
                "the model the graph was exported from."
            ) from None
        _set_module(target, path, _on_device_of(copy.deepcopy(new), target.get_submodule(path)))
    _put_tensors(target, rebuilt)
    from .to_torch import retie

    retie(target, spec.get("tied", {}) or {}, lambda name: None)
    counts = _head_counts(G)
    _patch_heads(target, counts)
    uneven = _patch_config(target, counts, _mlp_layers(model))
    target.eval()
    x = _example_inputs(spec)
    if x is not None:
        device = next((t.device for t in target.parameters()), None)
        if device is not None:
            x = tuple(t.to(device) for t in x)
            rebuilt = rebuilt.to(device)
    else:
        import warnings

        warnings.warn(
            "to_torch(into=...) could not check the model against the rebuilt module: the "
            "graph keeps no example input shape (exported without example_input, or on a "
            "tuple of inputs torch.fx traced); compare their outputs on your inputs.",
            stacklevel=3,
        )
    if x is not None:
        with torch.no_grad():
            try:
                got = flat_tensors(target(*x))
            except Exception as exc:  # noqa: BLE001 - reported with what to do
                raise GraphError(
                    f"to_torch(into=...): the model's own forward does not run with the graph's "
                    f"layers ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); it keeps "
                    "sizes netstruct does not update. Use to_torch(G) (the rebuilt module)."
                ) from None
            want = flat_tensors(rebuilt(*x))
        # every output the rebuilt module gives (the model may give more: unused fields)
        for a, b in zip(got, want):
            if a.shape != b.shape or not torch.allclose(a, b, atol=1e-5, rtol=1e-4):
                diff = float((a - b).abs().max()) if a.shape == b.shape else float("nan")
                raise GraphError(
                    f"to_torch(into=...): the model's own forward with the graph's layers "
                    f"differs from the rebuilt module (shapes {tuple(a.shape)} and "
                    f"{tuple(b.shape)}, max difference {diff:.3g}); it keeps sizes netstruct "
                    "does not update. Use to_torch(G) (the rebuilt module)."
                )
        if len(got) < len(want):
            raise GraphError(
                f"to_torch(into=...): the model's own forward gives {len(got)} tensors, the "
                f"rebuilt module {len(want)}; pass the model the graph was exported from."
            )
    if uneven:
        import warnings

        warnings.warn(
            f"to_torch(into=...): layers were pruned unevenly, so the config's {uneven} "
            "keep their old values (the model runs; save its state_dict, not save_pretrained).",
            stacklevel=3,
        )
    return target
