"""Attention layers: ``nn.MultiheadAttention``, the ``nn.Transformer`` encoder and decoder layers.

Graph semantics (see ``docs/concepts/layers.md``): for self-attention the Q/K/V projections
are one block ``in_proj_weight`` (``3E x E``) whose target nodes are grouped by head (``gate``
column ``q0``, ``k0``, ``v0``, ``q1``, ...); the data-dependent token mixing
``softmax(QK^T / sqrt(d)) V`` is an **operator**: fresh context nodes, one per value dimension,
fed by ``kind="operator"`` edges from the query, key and value nodes of the same head and
dimension (weight 1 marks the dependency, not a magnitude). ``out_proj`` is an ordinary Linear
block. Attention heads are therefore unit groups over Q/K/V/O. Operator edges, and the residual
sums inside an encoder layer, are structure: re-import refuses a graph in which they were pruned
or edited.

Cross-attention (query from one value, key/value from another; ``kdim``/``vdim`` too) has one
block per projection, each reading its own source: the row thirds of ``in_proj_weight`` (or
torch's ``q/k/v_proj_weight``) and of ``in_proj_bias``, marked ``layout["part"]`` and stacked
again on re-import (:meth:`MultiheadAttentionHandler.join_parts`).
``nn.TransformerDecoder(Layer)`` are layers of two inputs (target, memory) built from the same
parts; ``nn.Transformer`` is traced through (:func:`traced_through`).

Heads are coupling groups (:func:`netstruct.graphs.coupling.coupled_units`), removed whole by
:func:`netstruct.shrink`. ``nn.MultiheadAttention`` cannot hold fewer heads than
``embed_dim / head_dim``, so a head-pruned layer is rebuilt as
:class:`~netstruct.convert._attention_module.HeadPrunedAttention` (same parameter names, call
signature and outputs; ``num_heads`` is the number of heads kept); an unpruned layer comes back
as ``nn.MultiheadAttention``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..exceptions import UnsupportedModuleError
from ..graphs._generated import identity_block
from ..graphs._names import NameRange
from .builder import PendingInput, to_numpy
from .handlers import ModuleHandler, load_params
from .layers import STAT_MASK, _quiet_build, build_feature_norm, load_state

__all__ = [
    "MultiheadAttentionHandler",
    "TransformerEncoderLayerHandler",
    "TransformerEncoderHandler",
    "TransformerDecoderLayerHandler",
    "TransformerDecoderHandler",
]


def _pfx(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def _pfx_path(path: str, name: str) -> str:
    """``<path>.<name>``, or ``name`` for the model itself (``path`` empty)."""
    return f"{path}.{name}" if path else name


def _attention_config(mha: Any) -> dict[str, Any]:
    cfg = {
        "num_heads": mha.num_heads,
        "head_dim": mha.head_dim,
        "dropout": mha.dropout,
        "batch_first": mha.batch_first,
        "bias": mha.in_proj_bias is not None,
    }
    if mha.in_proj_weight is None:  # separate projections (kdim/vdim): their widths
        cfg["kdim"], cfg["vdim"] = int(mha.kdim), int(mha.vdim)
    return cfg


def build_attention(config: dict[str, Any], params: dict[str, np.ndarray], prefix: str = "") -> Any:
    """Attention rebuilt from its parameters; the head count is read off their shapes.

    ``nn.MultiheadAttention`` when the inner width equals the embedding width, else a
    :class:`~netstruct.convert._attention_module.HeadPrunedAttention` (heads were removed).
    A fused ``in_proj_weight`` gives a layer with ``kdim = vdim = embed_dim``; separate
    ``q/k/v_proj_weight`` a layer with their widths.
    """
    import torch

    from ._attention_module import HeadPrunedAttention

    fused = f"{prefix}in_proj_weight" in params
    w = params[f"{prefix}in_proj_weight" if fused else f"{prefix}q_proj_weight"]
    E = int(w.shape[1])
    inner = int(w.shape[0]) // 3 if fused else int(w.shape[0])
    kdim = vdim = E
    if not fused:
        kdim = int(params[f"{prefix}k_proj_weight"].shape[1])
        vdim = int(params[f"{prefix}v_proj_weight"].shape[1])
    head_dim = int(config.get("head_dim") or E // int(config["num_heads"]))
    H = inner // head_dim
    n_out = int(params[f"{prefix}out_proj.weight"].shape[0])
    kw: dict[str, Any] = {
        "dropout": float(config.get("dropout", 0.0)),
        "bias": bool(config.get("bias", True)),
        "batch_first": bool(config.get("batch_first", False)),
    }
    if not fused:
        kw.update(kdim=kdim, vdim=vdim)
    torch_fuses = kdim == vdim == E  # nn.MultiheadAttention's rule for one in_proj_weight
    if inner == E == n_out and H * head_dim == E and H > 0 and torch_fuses == fused:
        numel = 4 * E * E + 4 * E if fused else E * (2 * E + kdim + vdim) + 4 * E
        m = _quiet_build(torch.nn.MultiheadAttention, E, H, numel=numel, **kw)
    else:
        m = HeadPrunedAttention(E, H, head_dim, out_dim=n_out, device="meta", **kw)
        m = m.to_empty(device="cpu")
    own = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
    load_params(m, {k: v for k, v in own.items() if k.split("_", 1)[0] in _ATTENTION_PARAMS})
    return m


#: first word of an attention layer's parameter names (``in_proj_weight``, ``q_proj_weight``...)
_ATTENTION_PARAMS = ("in", "q", "k", "v", "out")


def export_linear(
    builder: Any, lin: Any, path: str, prefix: str, src: np.ndarray, label: str
) -> np.ndarray:
    """A Linear inside a composite layer (block named ``<path>.<prefix>weight``)."""
    out = builder.add_units(lin.out_features, module=path, label=f"{prefix}{label}")
    _add_prefixed(builder, path, prefix, ("weight", "bias"), lin.weight, lin.bias, src, out)
    return out


def _add_prefixed(
    builder: Any,
    path: str,
    prefix: str,
    names: tuple[str, str],
    weight: Any,
    bias: Any,
    sources: np.ndarray,
    targets: np.ndarray,
) -> None:
    """A weight block of a composite layer whose parameters are ``<prefix><names[i]>``."""
    builder.add_block(
        module=path,
        param=_pfx(prefix, names[0]),
        weight=weight,
        sources=sources,
        targets=targets,
        bias=bias,
        bias_param=_pfx(prefix, names[1]) if bias is not None else None,
    )


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


def _same_source(*ids: Any) -> bool:
    return all(isinstance(i, np.ndarray) and np.array_equal(ids[0], i) for i in ids) or all(
        isinstance(i, PendingInput) for i in ids
    )


def _head_nodes(builder: Any, path: str, prefix: str, parts: str, H: int, D: int) -> np.ndarray:
    """Projection units ``<part>[h.d]`` of every head, gate-labelled ``<part><h>``, one group."""
    builder.n_groups += 1
    runs = [
        NameRange(_pfx_path(path, f"{prefix}{part}"), H * D, head_dim=D, gate=part)
        for part in parts
    ]
    return builder._add(runs, kind="hidden", group=builder.n_groups, module=path)


def _projection_parts(
    builder: Any, mha: Any, path: str, prefix: str, sources: list[np.ndarray], qkv: np.ndarray
) -> None:
    """Cross-attention's Q, K and V projections: one block each, reading its own source.

    With a fused ``in_proj_weight`` the three blocks hold its row thirds (``param``
    ``in_proj_weight``, names ``...in_proj_weight[q]``/``[k]``/``[v]``); with ``kdim``/``vdim``
    they are ``q_proj_weight``, ``k_proj_weight`` and ``v_proj_weight``. The ``in_proj_bias``
    is split alike. ``layout["part"]`` marks them: re-import concatenates blocks of one
    parameter (and of one bias) in block order.
    """
    inner = qkv.size // 3
    fused = mha.in_proj_weight is not None
    bias = mha.in_proj_bias
    for k, part in enumerate("qkv"):
        rows = slice(k * inner, (k + 1) * inner)
        if fused:
            weight, param = mha.in_proj_weight[rows], "in_proj_weight"
            name = _pfx_path(path, f"{prefix}in_proj_weight[{part}]")
        else:
            weight, param = getattr(mha, f"{part}_proj_weight"), f"{part}_proj_weight"
            name = _pfx_path(path, f"{prefix}{param}")
        builder._append(
            name=name,
            weight=to_numpy(weight),
            sources=np.asarray(sources[k], dtype=INDEX_DTYPE),
            targets=qkv[rows],
            bias=None if bias is None else to_numpy(bias[rows]),
            module=path,
            param=_pfx(prefix, param),
            bias_param=_pfx(prefix, "in_proj_bias") if bias is not None else None,
            layout={"part": k},
        )


def export_attention(
    builder: Any,
    mha: Any,
    path: str,
    prefix: str,
    src: Any,
    key: Any = None,
    value: Any = None,
) -> np.ndarray:
    """Q/K/V projections, the token-mixing operator and the output projection; returns outputs.

    ``key``/``value`` (feature ids; None: ``src``, self-attention) are the key and value
    sources of cross-attention. Self-attention with a fused ``in_proj_weight`` is one block
    over the query source; otherwise each projection is its own block reading its own source
    (see :func:`_projection_parts`).
    """
    if mha.bias_k is not None or mha.add_zero_attn:
        raise UnsupportedModuleError(
            f"module {path!r}: netstruct exports MultiheadAttention without bias_k/bias_v and "
            "with add_zero_attn=False"
        )
    key = src if key is None else key
    value = key if value is None else value
    E, H = mha.embed_dim, mha.num_heads
    D = mha.head_dim
    inner = H * D
    fused = mha.in_proj_weight is not None
    self_attention = fused and _same_source(src, key, value)
    q_src = builder.resolve_features(src, E, path)
    qkv = _head_nodes(builder, path, prefix, "qkv", H, D)
    if self_attention:
        names = ("in_proj_weight", "in_proj_bias")
        _add_prefixed(
            builder, path, prefix, names, mha.in_proj_weight, mha.in_proj_bias, q_src, qkv
        )
    else:
        k_src = builder.resolve_features(key, mha.kdim, path)
        v_src = builder.resolve_features(value, mha.vdim, path)
        _projection_parts(builder, mha, path, prefix, [q_src, k_src, v_src], qkv)
    ctx = builder.add_units(inner, module=path, label=f"{prefix}context")
    builder._append(
        identity_block,
        name=_pfx_path(path, f"{prefix}attention"),
        sources=qkv,
        targets=ctx,
        module=path,
        kind="operator",
        copies=3,
    )
    builder.internal.add(_pfx_path(path, f"{prefix}attention"))
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
        out = builder.add_sum([a, b], _pfx_path(path, f"{prefix}add{k}"), internal=True)
        return out

    def norm(h, k):
        return export_layer_norm(builder, getattr(layer, f"norm{k}"), path, f"{prefix}norm{k}.", h)

    if layer.norm_first:
        h = add(x, sa(norm(x, 1)), 1)
        return add(h, ff(norm(h, 2)), 2)
    h = norm(add(x, sa(x), 1), 1)
    return norm(add(h, ff(h), 2), 2)


class MultiheadAttentionHandler(ModuleHandler):
    """``nn.MultiheadAttention``: self-attention (``attn(x, x, x)``) or cross-attention
    (``attn(x, memory, memory)``, key and value may differ too; ``kdim``/``vdim`` allowed).

    Masks (``attn_mask``, ``key_padding_mask``, ``is_causal``) change which tokens mix, not
    which units feed which: the graph is the same, and re-import passes them on.
    """

    name = "MultiheadAttention"
    n_inputs = 3

    def export(self, module, path, inputs, builder):
        ids = [np.asarray(i, dtype=INDEX_DTYPE) if isinstance(i, np.ndarray) else i for i in inputs]
        if len(ids) < 3:
            raise UnsupportedModuleError(
                f"module {path!r}: MultiheadAttention is called with query, key and value"
            )
        return (export_attention(builder, module, path, "", ids[0], ids[1], ids[2]), None)

    shrinkable = True

    def config(self, module):
        return _attention_config(module)

    def join_parts(self, name, parts):
        # a shrunk cross-attention whose query and key/value inputs lost different numbers of
        # units: one in_proj_weight cannot hold its rows, separate projections can
        if name == "in_proj_weight" and len({p.shape[1:] for p in parts}) > 1:
            return {f"{part}_proj_weight": p for part, p in zip("qkv", parts, strict=True)}
        return super().join_parts(name, parts)

    def build(self, config, params):
        return build_attention(config, params)


def _layer_config(layer: Any) -> dict[str, Any]:
    name = getattr(layer.activation, "__name__", None) or type(layer.activation).__name__.lower()
    return {
        "nhead": layer.self_attn.num_heads,
        "head_dim": layer.self_attn.head_dim,
        "dim_feedforward": layer.linear1.out_features,
        "dropout": float(layer.dropout.p),
        "activation": name,
        "layer_norm_eps": layer.norm1.eps,
        "batch_first": layer.self_attn.batch_first,
        "norm_first": layer.norm_first,
        "bias": layer.linear1.bias is not None,
    }


def _build_layer(config: dict[str, Any], params: dict[str, np.ndarray], prefix: str = "") -> Any:
    """One encoder layer, widths read off its parameters (``prefix`` inside an encoder)."""
    import torch

    cfg = dict(config)
    if cfg["activation"] not in ("relu", "gelu"):
        raise UnsupportedModuleError(
            f"TransformerEncoderLayer activation {cfg['activation']!r} cannot be rebuilt"
        )
    d_model = int(params[f"{prefix}self_attn.in_proj_weight"].shape[1])
    cfg["dim_feedforward"] = int(params[f"{prefix}linear1.weight"].shape[0])
    attn_cfg = {
        "num_heads": cfg["nhead"],
        "head_dim": cfg.pop("head_dim", None),
        "dropout": cfg["dropout"],
        "batch_first": cfg["batch_first"],
        "bias": cfg.get("bias", True),
    }
    attn = build_attention(attn_cfg, params, f"{prefix}self_attn.")
    cfg["nhead"] = 1  # any divisor builds the layer; its attention is replaced by the rebuilt one
    ff = cfg["dim_feedforward"]
    numel = 4 * d_model * d_model + 2 * d_model * ff + 9 * d_model + ff  # with its attention
    numel = numel if ff and d_model else None  # a zero-width part: build as skip_init does
    layer = _quiet_build(torch.nn.TransformerEncoderLayer, d_model, numel=numel, **cfg)
    layer.self_attn = attn
    norm_cfg = {"eps": cfg["layer_norm_eps"], "bias": cfg.get("bias", True)}
    for k in ("norm1", "norm2"):
        setattr(
            layer, k, build_feature_norm("LayerNorm", d_model, norm_cfg, params, f"{prefix}{k}.")
        )
    if any(hasattr(n, STAT_MASK) for n in (layer.norm1, layer.norm2)):
        # torch's fused encoder-layer kernel reads the norms' weights, not their modules:
        # a masked norm (norm-width removal) needs the module path
        layer.activation_relu_or_gelu = False
    return layer


class TransformerEncoderLayerHandler(ModuleHandler):
    """``nn.TransformerEncoderLayer`` (self-attention, feed-forward, two residual sums, norms)."""

    name = "TransformerEncoderLayer"
    #: its norms may drop entries from their statistics (norm-width removal, ``stat_mask``)
    masks_statistics = True
    keeps_shape = True

    def export(self, module, path, inputs, builder):
        return export_encoder_layer(builder, module, path, "", inputs)

    def config(self, module):
        return _layer_config(module)

    shrinkable = True

    def build(self, config, params):
        m = _build_layer(config, params)
        load_state(m, params)
        return m


class TransformerEncoderHandler(ModuleHandler):
    """``nn.TransformerEncoder``: a stack of encoder layers and an optional final norm."""

    name = "TransformerEncoder"
    masks_statistics = True
    keeps_shape = True

    def export(self, module, path, inputs, builder):
        return _export_stack(builder, module, path, inputs, export_encoder_layer)

    def config(self, module):
        cfg = _stack_config(module, _layer_config)
        cfg["enable_nested_tensor"] = bool(module.enable_nested_tensor)
        return cfg

    shrinkable = True

    def build(self, config, params):
        import warnings

        import torch

        def stack(first, norm):
            # nested tensors need torch's fused path, which pruned heads do not take
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "enable_nested_tensor is True", UserWarning)
                return torch.nn.TransformerEncoder(
                    first, 0, norm=norm, enable_nested_tensor=config["enable_nested_tensor"]
                )

        return _build_stack(config, params, _build_layer, stack)


def _export_stack(builder: Any, module: Any, path: str, h: Any, export_layer: Callable) -> Any:
    """A ``TransformerEncoder``/``TransformerDecoder``: each layer, then the final norm."""
    for i, layer in enumerate(module.layers):
        h = export_layer(builder, layer, path, f"layers.{i}.", h)
    if module.norm is not None:
        h = export_layer_norm(builder, module.norm, path, "norm.", h)
    return h


def _stack_config(module: Any, layer_config: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Config of an encoder/decoder stack: layer count, the first layer's config, final norm."""
    return {
        "num_layers": module.num_layers,
        "layer": layer_config(module.layers[0]),
        "norm": module.norm is not None,
        "norm_eps": module.norm.eps if module.norm is not None else 1e-5,
    }


def _build_stack(
    config: dict[str, Any],
    params: dict[str, Any],
    build_layer: Callable[[dict[str, Any], dict[str, Any], str], Any],
    make: Callable[[Any, Any], Any],
) -> Any:
    """A rebuilt ``TransformerEncoder``/``TransformerDecoder``: its layers one by one (each with
    its own widths, no clones of layer 0), the final norm, then ``make(first_layer, norm)``'s
    empty stack given the layers."""
    import torch

    layers = [
        build_layer(config["layer"], params, f"layers.{i}.")
        for i in range(int(config["num_layers"]))
    ]
    d_model = layers[0].self_attn.embed_dim
    norm = (
        build_feature_norm("LayerNorm", d_model, {"eps": config["norm_eps"]}, params, "norm.")
        if config["norm"]
        else None
    )
    m = make(layers[0], norm)
    m.layers = torch.nn.ModuleList(layers)
    m.num_layers = int(config["num_layers"])
    load_state(m, params)
    return m


def export_decoder_layer(
    builder: Any, layer: Any, path: str, prefix: str, src: Any, memory: Any
) -> np.ndarray:
    """``nn.TransformerDecoderLayer`` (post- or pre-norm): self-attention over the target,
    cross-attention from the target to ``memory``, feed-forward, three residual sums and norms."""
    x = builder.resolve_features(src, layer.self_attn.embed_dim, path)

    def sa(h):
        return export_attention(builder, layer.self_attn, path, f"{prefix}self_attn.", h)

    def ca(h):
        mha = layer.multihead_attn
        return export_attention(builder, mha, path, f"{prefix}multihead_attn.", h, memory, memory)

    def ff(h):
        a = export_linear(builder, layer.linear1, path, f"{prefix}linear1.", h, "out")
        a = builder.apply_elementwise(a, _activation_label(layer.activation), path)
        return export_linear(builder, layer.linear2, path, f"{prefix}linear2.", a, "out")

    def add(a, b, k):
        return builder.add_sum([a, b], _pfx_path(path, f"{prefix}add{k}"), internal=True)

    def norm(h, k):
        return export_layer_norm(builder, getattr(layer, f"norm{k}"), path, f"{prefix}norm{k}.", h)

    if layer.norm_first:
        h = add(x, sa(norm(x, 1)), 1)
        h = add(h, ca(norm(h, 2)), 2)
        return add(h, ff(norm(h, 3)), 3)
    h = norm(add(x, sa(x), 1), 1)
    h = norm(add(h, ca(h), 2), 2)
    return norm(add(h, ff(h), 3), 3)


def _decoder_layer_config(layer: Any) -> dict[str, Any]:
    cfg = _layer_config(layer)
    cfg["cross"] = _attention_config(layer.multihead_attn)
    return cfg


def _build_decoder_layer(
    config: dict[str, Any], params: dict[str, np.ndarray], prefix: str = ""
) -> Any:
    """One decoder layer, widths read off its parameters (``prefix`` inside a decoder)."""
    import torch

    cfg = dict(config)
    cross_cfg = cfg.pop("cross")
    if cfg["activation"] not in ("relu", "gelu"):
        raise UnsupportedModuleError(
            f"TransformerDecoderLayer activation {cfg['activation']!r} cannot be rebuilt"
        )
    d_model = int(params[f"{prefix}self_attn.in_proj_weight"].shape[1])
    cfg["dim_feedforward"] = ff = int(params[f"{prefix}linear1.weight"].shape[0])
    attn_cfg = {
        "num_heads": cfg["nhead"],
        "head_dim": cfg.pop("head_dim", None),
        "dropout": cfg["dropout"],
        "batch_first": cfg["batch_first"],
        "bias": cfg.get("bias", True),
    }
    self_attn = build_attention(attn_cfg, params, f"{prefix}self_attn.")
    cross = build_attention(cross_cfg, params, f"{prefix}multihead_attn.")
    cfg["nhead"] = (
        1  # any divisor builds the layer; its attentions are replaced by the rebuilt ones
    )
    numel = 8 * d_model * d_model + 2 * d_model * ff + 15 * d_model + ff
    layer = _quiet_build(
        torch.nn.TransformerDecoderLayer, d_model, numel=numel if ff and d_model else None, **cfg
    )
    layer.self_attn, layer.multihead_attn = self_attn, cross
    norm_cfg = {"eps": cfg["layer_norm_eps"], "bias": cfg.get("bias", True)}
    for k in ("norm1", "norm2", "norm3"):
        setattr(
            layer, k, build_feature_norm("LayerNorm", d_model, norm_cfg, params, f"{prefix}{k}.")
        )
    return layer


def _join_cross_parts(name: str, parts: list[np.ndarray]) -> dict[str, np.ndarray] | None:
    """A shrunk cross-attention's in_proj_weight whose parts no longer stack: separate
    ``q/k/v_proj_weight`` (torch's layout for ``kdim``/``vdim``); None when they stack."""
    if not name.endswith("in_proj_weight") or len({p.shape[1:] for p in parts}) == 1:
        return None
    owner = name[: -len("in_proj_weight")]
    return {f"{owner}{part}_proj_weight": p for part, p in zip("qkv", parts, strict=True)}


class TransformerDecoderLayerHandler(ModuleHandler):
    """``nn.TransformerDecoderLayer``: ``layer(tgt, memory, tgt_mask=..., ...)``.

    Masks change which tokens mix, not the graph; the rebuilt layer receives them on replay.
    """

    name = "TransformerDecoderLayer"
    n_inputs = 2
    masks_statistics = True
    keeps_shape = True
    shrinkable = True

    def export(self, module, path, inputs, builder):
        return export_decoder_layer(builder, module, path, "", inputs[0], inputs[1])

    def config(self, module):
        return _decoder_layer_config(module)

    def join_parts(self, name, parts):
        return _join_cross_parts(name, parts) or super().join_parts(name, parts)

    def build(self, config, params):
        m = _build_decoder_layer(config, params)
        load_state(m, params)
        return m


class TransformerDecoderHandler(ModuleHandler):
    """``nn.TransformerDecoder``: a stack of decoder layers reading one memory, optional norm."""

    name = "TransformerDecoder"
    n_inputs = 2
    masks_statistics = True
    keeps_shape = True
    shrinkable = True

    def export(self, module, path, inputs, builder):
        h, memory = inputs[0], inputs[1]
        if not isinstance(memory, np.ndarray):  # the model's input: its nodes once, for all
            memory = builder.resolve_features(memory, module.layers[0].multihead_attn.kdim, path)
        return _export_stack(
            builder,
            module,
            path,
            h,
            lambda b, layer, p, prefix, x: export_decoder_layer(b, layer, p, prefix, x, memory),
        )

    def config(self, module):
        return _stack_config(module, _decoder_layer_config)

    def join_parts(self, name, parts):
        return _join_cross_parts(name, parts) or super().join_parts(name, parts)

    def build(self, config, params):
        import torch

        return _build_stack(
            config,
            params,
            _build_decoder_layer,
            lambda first, norm: torch.nn.TransformerDecoder(first, 0, norm=norm),
        )


def traced_through() -> tuple[type, ...]:
    """``torch.nn`` composites that export as the layers they call (no handler of their own).

    ``nn.Transformer`` only chains its encoder and decoder (each with a handler); torch.fx
    would otherwise keep it whole, as it does every ``torch.nn`` module. Its forward checks
    sizes in Python, so it is recorded by the tape tracer (specialised to the example's shapes).

    Examples
    --------
    >>> import torch
    >>> torch.nn.Transformer in traced_through()
    True
    """
    import torch

    return (torch.nn.Transformer,)


def builtin_handlers():
    """``(module type, handler)`` pairs of this module's layers."""
    import torch

    from ._attention_module import HeadPrunedAttention

    mha = MultiheadAttentionHandler()
    yield torch.nn.MultiheadAttention, mha
    yield HeadPrunedAttention, mha
    yield torch.nn.TransformerEncoderLayer, TransformerEncoderLayerHandler()
    yield torch.nn.TransformerEncoder, TransformerEncoderHandler()
    yield torch.nn.TransformerDecoderLayer, TransformerDecoderLayerHandler()
    yield torch.nn.TransformerDecoder, TransformerDecoderHandler()
