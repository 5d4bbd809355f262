"""Handlers of attention layers: ``nn.MultiheadAttention`` and ``nn.TransformerEncoder(Layer)``.

Graph semantics (see ``docs/concepts/layers.md``): the Q/K/V projections are one block
``in_proj_weight`` (``3E x E``) whose target nodes are grouped by head (``gate`` column ``q0``,
``k0``, ``v0``, ``q1``, ...); the data-dependent token mixing ``softmax(QK^T / sqrt(d)) V`` is an
**operator**: fresh context nodes, one per value dimension, fed by ``kind="operator"`` edges from
the query, key and value nodes of the same head and dimension (weight 1 marks the dependency,
not a magnitude). ``out_proj`` is an ordinary Linear block. Attention heads are therefore unit
groups over Q/K/V/O. Operator edges, and the residual sums inside an encoder layer, are
structure: re-import refuses a graph in which they were pruned or edited.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..exceptions import UnsupportedModuleError
from .handlers import ModuleHandler, load_params
from .layers import _quiet_build, load_state

__all__ = [
    "MultiheadAttentionHandler",
    "TransformerEncoderLayerHandler",
    "TransformerEncoderHandler",
]


def _pfx(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def export_linear(
    builder: Any, lin: Any, path: str, prefix: str, src: np.ndarray, label: str
) -> np.ndarray:
    """A Linear inside a composite layer (block named ``<path>.<prefix>weight``)."""
    out = builder.add_units(lin.out_features, module=path, label=f"{prefix}{label}")
    builder.add_block(
        module=path,
        param=_pfx(prefix, "weight"),
        weight=lin.weight,
        sources=src,
        targets=out,
        bias=lin.bias,
        bias_param=_pfx(prefix, "bias") if lin.bias is not None else None,
    )
    return out


def export_layer_norm(
    builder: Any, norm: Any, path: str, prefix: str, src: np.ndarray
) -> np.ndarray:
    """A LayerNorm inside a composite layer: fresh nodes through its per-unit scale."""
    return builder.add_norm_block(
        module=path,
        sources=src,
        scale=norm.weight,
        shift=norm.bias,
        label=f"{prefix}out",
        prefix=prefix,
    )


def export_attention(builder: Any, mha: Any, path: str, prefix: str, src: np.ndarray) -> np.ndarray:
    """Q/K/V projection, the token-mixing operator and the output projection; returns outputs."""
    if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
        raise UnsupportedModuleError(
            f"module {path!r}: netstruct exports MultiheadAttention with one in_proj_weight (kdim = "
            "vdim = embed_dim), no bias_k/bias_v and add_zero_attn=False"
        )
    E, H = mha.embed_dim, mha.num_heads
    D = E // H
    src = builder.resolve_features(src, E, path)
    builder.n_groups += 1
    names, gates = [], []
    for part in "qkv":
        for j in range(E):
            names.append(f"{path}.{prefix}{part}[{j // D}.{j % D}]")
            gates.append(f"{part}{j // D}")
    qkv = builder._add(names, kind="hidden", group=builder.n_groups, module=path, gate=gates)
    builder.add_block(
        module=path,
        param=_pfx(prefix, "in_proj_weight"),
        weight=mha.in_proj_weight,
        sources=src,
        targets=qkv,
        bias=mha.in_proj_bias,
        bias_param=_pfx(prefix, "in_proj_bias") if mha.in_proj_bias is not None else None,
    )
    ctx = builder.add_units(E, module=path, label=f"{prefix}context")
    W = np.concatenate([np.eye(E)] * 3, axis=1)
    builder._append(
        name=f"{path}.{prefix}attention",
        weight=W,
        mask=W.astype(bool),
        sources=qkv,
        targets=ctx,
        module=path,
        param="",
        kind="operator",
    )
    builder.internal.add(f"{path}.{prefix}attention")
    return export_linear(builder, mha.out_proj, path, _pfx(prefix, "out_proj."), ctx, "out")


def _activation_label(act: Any) -> str:
    from .elementwise import FUNCTIONAL, label_for

    name = getattr(act, "__name__", None) or type(act).__name__
    type_name = FUNCTIONAL.get(name, name)
    cfg = {"approximate": act.approximate} if hasattr(act, "approximate") else {}
    return label_for(type_name, cfg)


def export_encoder_layer(
    builder: Any, layer: Any, path: str, prefix: str, src: np.ndarray
) -> np.ndarray:
    """``nn.TransformerEncoderLayer`` (post- or pre-norm) as graph nodes and blocks."""
    x = builder.resolve_features(src, layer.self_attn.embed_dim, path)

    def sa(h):
        return export_attention(builder, layer.self_attn, path, f"{prefix}self_attn.", h)

    def ff(h):
        a = export_linear(builder, layer.linear1, path, f"{prefix}linear1.", h, "out")
        a = builder.apply_elementwise(a, _activation_label(layer.activation), path)
        return export_linear(builder, layer.linear2, path, f"{prefix}linear2.", a, "out")

    def add(a, b, k):
        out = builder.add_sum([a, b], f"{path}.{prefix}add{k}", internal=True)
        return out

    def norm(h, k):
        return export_layer_norm(builder, getattr(layer, f"norm{k}"), path, f"{prefix}norm{k}.", h)

    if layer.norm_first:
        h = add(x, sa(norm(x, 1)), 1)
        return add(h, ff(norm(h, 2)), 2)
    h = norm(add(x, sa(x), 1), 1)
    return norm(add(h, ff(h), 2), 2)


class MultiheadAttentionHandler(ModuleHandler):
    """``nn.MultiheadAttention`` used as self-attention (``attn(x, x, x)``)."""

    name = "MultiheadAttention"
    n_inputs = 3

    def export(self, module, path, inputs, builder):
        ids = [np.asarray(i, dtype=INDEX_DTYPE) if isinstance(i, np.ndarray) else i for i in inputs]
        if not all(isinstance(i, np.ndarray) for i in ids) or not all(
            np.array_equal(ids[0], i) for i in ids[1:]
        ):
            raise UnsupportedModuleError(
                f"module {path!r}: netstruct exports self-attention (query, key and value the same value)"
            )
        return (export_attention(builder, module, path, "", ids[0]), None)

    def config(self, module):
        return {
            "num_heads": module.num_heads,
            "dropout": module.dropout,
            "batch_first": module.batch_first,
            "bias": module.in_proj_bias is not None,
        }

    def build(self, config, params):
        import torch

        E = params["in_proj_weight"].shape[1]
        m = _quiet_build(torch.nn.MultiheadAttention, E, **config)
        load_params(m, params)
        return m


def _layer_config(layer: Any) -> dict[str, Any]:
    name = getattr(layer.activation, "__name__", None) or type(layer.activation).__name__.lower()
    return {
        "nhead": layer.self_attn.num_heads,
        "dim_feedforward": layer.linear1.out_features,
        "dropout": float(layer.dropout.p),
        "activation": name,
        "layer_norm_eps": layer.norm1.eps,
        "batch_first": layer.self_attn.batch_first,
        "norm_first": layer.norm_first,
        "bias": layer.linear1.bias is not None,
    }


def _build_layer(config: dict[str, Any], d_model: int) -> Any:
    import torch

    cfg = dict(config)
    if cfg["activation"] not in ("relu", "gelu"):
        raise UnsupportedModuleError(
            f"TransformerEncoderLayer activation {cfg['activation']!r} cannot be rebuilt"
        )
    cfg["dim_feedforward"] = int(cfg["dim_feedforward"])
    return _quiet_build(torch.nn.TransformerEncoderLayer, d_model, **cfg)


class TransformerEncoderLayerHandler(ModuleHandler):
    """``nn.TransformerEncoderLayer`` (self-attention, feed-forward, two residual sums, norms)."""

    name = "TransformerEncoderLayer"

    def export(self, module, path, inputs, builder):
        return export_encoder_layer(builder, module, path, "", inputs)

    def config(self, module):
        return _layer_config(module)

    def build(self, config, params):
        cfg = dict(config)
        cfg["dim_feedforward"] = params["linear1.weight"].shape[0]
        m = _build_layer(cfg, params["self_attn.in_proj_weight"].shape[1])
        load_state(m, params)
        return m


class TransformerEncoderHandler(ModuleHandler):
    """``nn.TransformerEncoder``: a stack of encoder layers and an optional final norm."""

    name = "TransformerEncoder"

    def export(self, module, path, inputs, builder):
        h = inputs
        for i, layer in enumerate(module.layers):
            h = export_encoder_layer(builder, layer, path, f"layers.{i}.", h)
        if module.norm is not None:
            h = export_layer_norm(builder, module.norm, path, "norm.", h)
        return h

    def config(self, module):
        return {
            "num_layers": module.num_layers,
            "layer": _layer_config(module.layers[0]),
            "norm": module.norm is not None,
            "norm_eps": module.norm.eps if module.norm is not None else 1e-5,
            "enable_nested_tensor": bool(module.enable_nested_tensor),
        }

    def build(self, config, params):
        import torch

        d_model = params["layers.0.self_attn.in_proj_weight"].shape[1]
        cfg = dict(config["layer"])
        cfg["dim_feedforward"] = params["layers.0.linear1.weight"].shape[0]
        layer = _build_layer(cfg, d_model)
        norm = torch.nn.LayerNorm(d_model, eps=config["norm_eps"]) if config["norm"] else None
        m = torch.nn.TransformerEncoder(
            layer,
            config["num_layers"],
            norm=norm,
            enable_nested_tensor=config["enable_nested_tensor"],
        )
        load_state(m, params)
        return m


def builtin_handlers():
    """``(module type, handler)`` pairs of this module's layers."""
    import torch

    yield torch.nn.MultiheadAttention, MultiheadAttentionHandler()
    yield torch.nn.TransformerEncoderLayer, TransformerEncoderLayerHandler()
    yield torch.nn.TransformerEncoder, TransformerEncoderHandler()
