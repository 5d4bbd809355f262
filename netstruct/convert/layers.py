"""Handlers of convolution, normalisation, embedding, pooling and reshaping layers.

Graph semantics (see ``docs/concepts/layers.md``):

* **Convolution** ``ConvNd``/``ConvTranspose2d``: one node per output channel; a channel-level
  block ``(out_channels, in_channels)`` whose edge weight is the kernel reduction chosen in
  :func:`netstruct.from_torch` (default: the sum of the pair's taps, the response to a
  constant input). Grouped and depthwise convs have edges only inside their groups. The full
  kernel is kept on the block (``block.kernel``) for exact re-import.
* **Normalisation** (``BatchNorm``, ``LayerNorm``, ``GroupNorm``, ``RMSNorm``): fresh nodes fed
  one-to-one by the normalised units through a diagonal ``kind="norm"`` block whose weights
  are the per-unit scales (``weight``) and whose bias is the shift; batch-norm running
  statistics are kept as the block's ``state``. The normalisation itself (statistics over
  the batch or the features) is an operator of the architecture spec.
* **Embedding**: a vocabulary -> dimension block (``dim x vocab``, the transposed table);
  vocabulary entries are input nodes ``token[i]``.
* **Pooling, flatten, unflatten**: no nodes or weights; the exporter follows them on the node
  ids (channels stay channels, a flattened map repeats each channel once per position).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..exceptions import GraphError, UnsupportedModuleError
from .builder import PendingInput, to_numpy
from .handlers import ModuleHandler, load_params

__all__ = [
    "ConvHandler",
    "NormHandler",
    "EmbeddingHandler",
    "ShapeHandler",
    "ParametersHandler",
    "export_parameter",
    "builtin_handlers",
]


#: layers with at most this many parameters are built on the CPU, initialiser and all (the
#: random state restored): 3-4x faster than ``skip_init``'s meta build for small layers
PLAIN_BUILD_MAX = 1 << 16


def _rng_free_init(cls: Any) -> bool:
    """Normalisation layers initialise with ones and zeros: cheap, and no random numbers."""
    import torch

    norms = [torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm]
    if hasattr(torch.nn, "RMSNorm"):
        norms.append(torch.nn.RMSNorm)
    return issubclass(cls, tuple(norms))


def _quiet_build(cls: Any, *args: Any, numel: int | None = None, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)`` on the CPU, its weights to be overwritten by the caller.

    ``numel`` (the layer's parameter count, when the caller knows it) at most
    :data:`PLAIN_BUILD_MAX`, or a normalisation layer: a plain build, with torch's random
    state restored after it so the build draws nothing from the user's generator. Bigger
    layers: ``torch.nn.utils.skip_init`` (built on the meta device, memory left
    uninitialised).
    """
    if numel is not None and numel > 0:  # no zero-element tensor: nothing to warn about
        return _build(cls, args, kwargs, numel)
    with warnings.catch_warnings():  # a shrunk layer may have zero width: nothing to initialise
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        return _build(cls, args, kwargs, numel)


def _build(cls: Any, args: tuple, kwargs: dict, numel: int | None) -> Any:
    import torch

    if (numel is not None and numel <= PLAIN_BUILD_MAX) or _rng_free_init(cls):
        kwargs = {"device": "cpu", **kwargs}
        state = torch.random.get_rng_state()
        try:
            return cls(*args, **kwargs)
        finally:
            torch.random.set_rng_state(state)
    return torch.nn.utils.skip_init(cls, *args, **kwargs)


def load_state(module: Any, params: dict[str, np.ndarray]) -> None:
    """Copy parameters and buffers (by name) into ``module``."""
    import torch

    buffers = dict(module.named_buffers())
    params = {k: v for k, v in params.items() if not k.startswith("__")}
    plain = {k: v for k, v in params.items() if k not in buffers}
    load_params(module, plain)
    with torch.no_grad():
        for k, v in params.items():
            if k in buffers:
                buf = buffers[k]
                if buf.dim() == 0 and np.size(v) == 1:  # scalars may be stored as (1,)
                    v = np.reshape(v, ())
                if tuple(buf.shape) != tuple(np.shape(v)):
                    raise GraphError(
                        f"Buffer {k!r} has shape {tuple(buf.shape)} but the graph holds {np.shape(v)}."
                    )
                buf.copy_(torch.from_numpy(np.array(v, copy=True)).to(buf.dtype))


class ConvHandler(ModuleHandler):
    """``nn.Conv1d/2d/3d`` and ``nn.ConvTranspose1d/2d/3d`` (groups only for plain convs)."""

    shrinkable = True
    feature_axis = 1
    _ATTRS = ("stride", "padding", "dilation", "groups", "padding_mode")

    def __init__(self, type_name: str) -> None:
        self.name = type_name
        self.transposed = type_name.startswith("ConvTranspose")

    def export(self, module, path, inputs, builder):
        if self.transposed and module.groups != 1:
            raise UnsupportedModuleError(
                f"module {path!r} ({self.name}) uses groups={module.groups}; netstruct exports "
                "transposed convolutions with groups=1"
            )
        src = builder.resolve_features(inputs, module.in_channels, path)
        out = builder.add_units(module.out_channels, module=path)
        kernel = to_numpy(module.weight)
        if self.transposed:  # torch stores (in, out, *k): the block reads it as (out, in, *k)
            kernel = np.ascontiguousarray(kernel.swapaxes(0, 1))
        blk = builder.add_conv_block(
            module=path,
            param="weight",
            kernel=kernel,
            groups=module.groups,
            sources=src,
            targets=out,
            bias=module.bias,
            bias_param="bias" if module.bias is not None else None,
        )
        if self.transposed:
            builder.blocks[-1] = blk.replace(layout={**blk.layout, "transposed": True})
        return out

    def config(self, module):
        cfg = {a: getattr(module, a) for a in self._ATTRS}
        cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
        cfg["bias"] = module.bias is not None
        if self.transposed:
            cfg["output_padding"] = list(module.output_padding)
        return cfg

    def build(self, config, params):
        import torch

        w = params["weight"]
        cfg = dict(config)
        groups = int(cfg.get("groups", 1))
        if groups > 1 and w.shape[1] == 1 and w.shape[0] < groups:  # a shrunk depthwise conv
            groups = cfg["groups"] = int(w.shape[0])
        if self.transposed:
            n_in, n_out = w.shape[0], w.shape[1] * groups
        else:
            n_out, n_in = w.shape[0], w.shape[1] * groups
        m = _quiet_build(
            getattr(torch.nn, self.name), n_in, n_out, tuple(w.shape[2:]), numel=w.size, **cfg
        )
        load_state(m, params)
        return m


class NormHandler(ModuleHandler):
    """``BatchNorm1d/2d/3d``, ``LayerNorm``, ``GroupNorm`` and ``RMSNorm``."""

    shrinkable = True

    def __init__(self, type_name: str) -> None:
        self.name = type_name
        self.batch = type_name.startswith("BatchNorm")
        self.feature_axis = 1 if (self.batch or type_name == "GroupNorm") else -1

    def _n(self, module) -> int:
        if self.batch:
            return int(module.num_features)
        if self.name == "GroupNorm":
            return int(module.num_channels)
        shape = tuple(module.normalized_shape)
        if len(shape) != 1:
            raise UnsupportedModuleError(
                f"{self.name} over {len(shape)} trailing dims ({shape}); netstruct exports norms over "
                "the feature axis only"
            )
        return int(shape[0])

    def export(self, module, path, inputs, builder):
        n = self._n(module)
        src = builder.resolve_features(inputs, n, path)
        state = {}
        if self.batch and module.track_running_stats and module.running_mean is not None:
            state = {
                "running_mean": module.running_mean,
                "running_var": module.running_var,
                "num_batches_tracked": module.num_batches_tracked,
            }
        weight = getattr(module, "weight", None)
        bias = getattr(module, "bias", None)
        return builder.add_norm_block(
            module=path, sources=src, scale=weight, shift=bias, state=state
        )

    def config(self, module):
        if self.batch:
            return {
                "eps": module.eps,
                "momentum": module.momentum,
                "affine": module.affine,
                "track_running_stats": module.track_running_stats,
            }
        if self.name == "GroupNorm":
            return {"num_groups": module.num_groups, "eps": module.eps, "affine": module.affine}
        cfg: dict[str, Any] = {"eps": module.eps, "elementwise_affine": module.elementwise_affine}
        if self.name == "LayerNorm":
            cfg["bias"] = module.bias is not None
        return cfg

    def build(self, config, params):
        import torch

        cls = getattr(torch.nn, self.name)
        cfg = dict(config)
        n = self._size(params, cfg)
        if self.name == "GroupNorm":
            m = _quiet_build(cls, cfg.pop("num_groups"), n, **cfg)
        else:
            m = _quiet_build(cls, n, **cfg)
        if self.batch and m.running_mean is not None:  # skip_init leaves buffers uninitialised
            m.reset_running_stats()
        load_state(m, params)
        return m

    def _size(self, params, cfg) -> int:
        for key in ("weight", "running_mean", "bias"):
            if key in params:
                return int(np.shape(params[key])[0])
        return int(params["__n__"])


class EmbeddingHandler(ModuleHandler):
    """``nn.Embedding``: a vocabulary -> dimension block (the table transposed)."""

    shrinkable = True

    name = "Embedding"

    def export(self, module, path, inputs, builder):
        V, D = module.weight.shape
        if isinstance(inputs, PendingInput):
            src = builder.resolve_input(inputs, V, path, label="token")
        else:
            src = builder._add(
                [f"{path}.index[{i}]" for i in range(V)], kind="input", group=0, module=path
            )
        out = builder.add_units(D, module=path)
        table = to_numpy(module.weight)
        builder._append(
            name=f"{path}.weight" if path else "weight",
            weight=table.T,
            sources=src,
            targets=out,
            module=path,
            param="weight",
            layout={"type": "transpose"},
        )
        return out

    def config(self, module):
        return {
            "padding_idx": module.padding_idx,
            "max_norm": module.max_norm,
            "norm_type": module.norm_type,
            "scale_grad_by_freq": module.scale_grad_by_freq,
            "sparse": module.sparse,
        }

    def build(self, config, params):
        import torch

        w = params["weight"]
        # the table given as ``_weight``: no initialiser runs (one copy of the array)
        table = torch.tensor(np.asarray(w), dtype=torch.get_default_dtype())
        m = torch.nn.Embedding(w.shape[0], w.shape[1], _weight=table, **config)
        load_state(m, {k: v for k, v in params.items() if k != "weight"})
        return m


class ShapeHandler(ModuleHandler):
    """Parameterless modules that move values between positions: pooling, flatten, unflatten.

    The exporter follows them on the node ids (``moves_features``): they add no nodes.
    """

    moves_features = True

    def __init__(self, type_name: str, attrs: tuple[str, ...]) -> None:
        self.name = type_name
        self.attrs = attrs

    def export(self, module, path, inputs, builder):  # pragma: no cover - the exporter moves ids
        return inputs

    def config(self, module):
        out = {}
        for a in self.attrs:
            v = getattr(module, a)
            out[a] = list(v) if isinstance(v, tuple) else v
        return out

    def build(self, config, params):
        import torch

        return getattr(torch.nn, self.name)(**config)


class ParametersHandler(ModuleHandler):
    """Parameters a ``forward`` reads directly (ViT's ``cls_token``, ``position_embeddings``).

    Each such parameter ``P`` (``(..., D)``) is exported like an embedding of its rows: input
    nodes ``<name>[r]``, one per row of ``P`` viewed as ``(rows, D)``, feed ``D`` fresh units
    through a block named like the parameter (the rows transposed; ``block.parameter()``
    gives ``P`` back in its shape). The module entry is the parameters' owner; on re-import it
    becomes a plain ``nn.Module`` holding them at the same ``state_dict`` keys.
    """

    name = "Parameters"
    #: the units (the last axis of a table, the axis of a per-unit scale) may shrink
    shrinkable = True

    def export(self, module, path, inputs, builder):  # pragma: no cover - see _Exporter
        raise UnsupportedModuleError("parameters are exported by the exporter's get_attr step")

    def build(self, config, params):
        import torch

        holder = torch.nn.Module()
        shapes = config.get("shapes", {})
        for name, arr in params.items():
            shape = _shrunk_shape(tuple(shapes.get(name, np.shape(arr))), np.shape(arr))
            if int(np.prod(shape)) != np.size(arr):
                raise GraphError(
                    f"Parameter {name!r} has {np.size(arr)} values in the graph but its model shape "
                    f"is {shape}; was the block's shape altered?"
                )
            t = torch.from_numpy(np.array(arr, dtype=np.float32).reshape(shape))
            holder.register_parameter(name, torch.nn.Parameter(t))
        return holder


def _shrunk_shape(shape: tuple[int, ...], got: tuple[int, ...]) -> tuple[int, ...]:
    """The model shape of a directly read parameter after :func:`netstruct.shrink`.

    A table read row by row (``got == (rows, D')``) loses units on its last axis; a per-unit
    scale (``got == (n',)``) on its one axis longer than 1. Other shapes are returned as they are.
    """
    size = int(np.prod(got))
    if int(np.prod(shape)) == size or not shape:
        return shape
    if len(got) == 2 and int(np.prod(shape[:-1])) == got[0]:
        return (*shape[:-1], got[1])
    long = [k for k, d in enumerate(shape) if d != 1]
    if len(got) == 1 and len(long) == 1:
        return tuple(size if k == long[0] else d for k, d in enumerate(shape))
    return shape


def export_parameter(builder: Any, owner: str, pname: str, p: Any) -> np.ndarray:
    """The block of a directly read parameter (see :class:`ParametersHandler`); its unit ids."""
    arr = to_numpy(p)
    D = int(arr.shape[-1]) if arr.ndim else 1
    rows = arr.reshape(-1, D)
    full = f"{owner}.{pname}" if owner else pname
    src = builder._add(
        [f"{full}[{r}]" for r in range(rows.shape[0])], kind="input", group=0, module=owner
    )
    # the rows are inputs named ``<param>[r]``; the values they give are ``<param>.out[i]``
    out = builder.add_units(D, module=owner, label=f"{pname}.out")
    builder._append(
        name=full,
        weight=rows.T,
        sources=src,
        targets=out,
        module=owner,
        param=pname,
        layout={"type": "transpose"},
    )
    return out


_POOL_MAX = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
_POOL_AVG = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
_SHAPE_TYPES: dict[str, tuple[str, ...]] = {
    "Flatten": ("start_dim", "end_dim"),
    "Unflatten": ("dim", "unflattened_size"),
    **{f"MaxPool{d}d": _POOL_MAX for d in (1, 2, 3)},
    "AvgPool1d": _POOL_AVG,
    "AvgPool2d": (*_POOL_AVG, "divisor_override"),
    "AvgPool3d": (*_POOL_AVG, "divisor_override"),
    **{f"AdaptiveAvgPool{d}d": ("output_size",) for d in (1, 2, 3)},
    **{f"AdaptiveMaxPool{d}d": ("output_size", "return_indices") for d in (1, 2, 3)},
}


def builtin_handlers() -> Iterator[tuple[type, ModuleHandler]]:
    """``(module type, handler)`` pairs of this module's layers."""
    import torch

    for d in (1, 2, 3):
        for stem in ("Conv", "ConvTranspose"):
            yield getattr(torch.nn, f"{stem}{d}d"), ConvHandler(f"{stem}{d}d")
        yield getattr(torch.nn, f"BatchNorm{d}d"), NormHandler(f"BatchNorm{d}d")
    for name in ("LayerNorm", "GroupNorm", "RMSNorm"):
        if hasattr(torch.nn, name):
            yield getattr(torch.nn, name), NormHandler(name)
    yield torch.nn.Embedding, EmbeddingHandler()
    for name, attrs in _SHAPE_TYPES.items():
        yield getattr(torch.nn, name), ShapeHandler(name, attrs)
