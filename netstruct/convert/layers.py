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

import functools
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..exceptions import GraphError, UnsupportedModuleError
from ..graphs._names import NameRange
from .builder import PendingInput, to_numpy
from .handlers import ModuleHandler, _numpy_dtypes, absorb_output_affine, load_params, own_tensors

#: Block state (and buffer) name of the entries a LayerNorm/RMSNorm's statistics read.
STAT_MASK = "stat_mask"

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


@functools.cache
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


@functools.cache
def _clonable(cls: Any) -> bool:
    """torch's own leaf layers whose ``__init__`` only sets attributes and registers tensors."""
    import torch

    nn = torch.nn
    kinds = [nn.Linear, nn.Embedding, nn.LayerNorm, nn.GroupNorm]
    kinds += [nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d]
    kinds += [nn.ConvTranspose3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d]
    if hasattr(nn, "RMSNorm"):
        kinds.append(nn.RMSNorm)
    return cls in kinds


@functools.lru_cache(maxsize=256)
def _prototype(cls: Any, args: tuple, kwargs: tuple) -> Any:
    """One meta-device instance per layer class and arguments (its tensors hold no memory)."""
    return cls(*args, device="meta", **dict(kwargs))


def _clone_empty(proto: Any) -> Any:
    """A new module like ``proto`` with its own uninitialised CPU tensors, without ``__init__``.

    Building a small torch layer costs ~50-150 us of Python attribute setting and random
    initialisation, which the caller overwrites; a rebuilt model builds dozens of them twice
    per export (the round-trip check, then the result). The clone copies the prototype's
    attribute dictionary one level deep (the parameter, buffer, module and hook dictionaries
    and sets are its own) and gives each parameter and buffer fresh memory of its shape and
    dtype, as ``torch.nn.utils.skip_init`` does.
    """
    import torch

    m = object.__new__(type(proto))
    state: dict[str, Any] = dict(proto.__dict__)
    for k in _container_keys(proto):
        state[k] = state[k].copy()
    params: dict[str, Any] = state["_parameters"]
    buffers: dict[str, Any] = state["_buffers"]
    for name, p in params.items():
        if p is not None:
            params[name] = torch.nn.Parameter(
                torch.empty(p.shape, dtype=p.dtype), requires_grad=p.requires_grad
            )
    for name, b in buffers.items():
        if b is not None:
            buffers[name] = torch.empty(b.shape, dtype=b.dtype)
    m.__dict__.update(state)
    return m


@functools.lru_cache(maxsize=256)  # as many as prototypes are kept
def _container_keys(proto: Any) -> tuple[str, ...]:
    """The attributes of a prototype that are dicts or sets (a clone gets its own copies)."""
    return tuple(k for k, v in proto.__dict__.items() if isinstance(v, (dict, set)))


def _frozen(v: Any) -> Any:
    """``v`` with its lists as tuples (a handler's config holds a conv's padding as a list).

    Only for :func:`_clonable` layers, whose ``__init__`` turns such sequences into tuples
    itself (``_pair``, ``tuple(normalized_shape)``): the prototype built from the frozen
    arguments is the layer the lists would build, and hashable as a cache key.
    """
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    return v


def _build(cls: Any, args: tuple, kwargs: dict, numel: int | None) -> Any:
    import torch

    if _clonable(cls) and kwargs.get("device") in (None, "cpu"):
        key = tuple(sorted((k, _frozen(v)) for k, v in kwargs.items() if k != "device"))
        try:
            proto = _prototype(cls, _frozen(args), key)
        except TypeError:  # unhashable arguments: build it the plain way
            proto = None
        if proto is not None:
            return _clone_empty(proto)
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

    buffers = own_tensors(module, "_buffers")
    # "__n__" (a width) and stat masks of norms built plain (every entry kept) are no tensors
    params = {
        k: v
        for k, v in params.items()
        if not k.startswith("__") and not (k.endswith(STAT_MASK) and k not in buffers)
    }
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
                _copy_buffer(buf, v)


def _copy_buffer(buf: Any, value: Any) -> None:
    """Copy ``value`` (shaped like ``buf``) into the buffer ``buf``.

    A CPU buffer of the value's own dtype takes it straight into its memory (one copy); any
    other is filled through a torch tensor converted to its dtype.
    """
    import torch

    arr = np.asarray(value)
    if buf.device.type == "cpu" and buf.dtype in _numpy_dtypes() and not buf.requires_grad:
        target = buf.numpy()
        if target.dtype == arr.dtype:
            np.copyto(target, arr)
            return
    buf.copy_(torch.from_numpy(np.array(arr, copy=True)).to(buf.dtype))


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

    def absorb_affine(self, module, scale, shift, out_ndim=None):
        if self.transposed and module.groups != 1:  # not exported (see export)
            return None
        if out_ndim is not None and out_ndim != module.weight.dim():  # unbatched: (C, *spatial)
            return None
        # torch stores a conv's kernel (out, in, *k) and a transposed conv's (in, out, *k)
        return absorb_output_affine(module, scale, shift, out_axis=1 if self.transposed else 0)

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
    """``BatchNorm1d/2d/3d``, ``LayerNorm``, ``GroupNorm`` and ``RMSNorm``.

    A ``LayerNorm``/``RMSNorm`` block may carry a boolean ``stat_mask`` state (True = in the
    statistics; set by :func:`exclude_from_norm_statistics` when a plan removes dimensions of
    the normalised width): the norm is then rebuilt as
    :class:`~netstruct.convert._norm_module.MaskedLayerNorm` / ``MaskedRMSNorm``, whose mean
    and variance run over the kept entries only and whose removed entries output 0, which is
    what the shrunk ``LayerNorm(n_kept)`` computes. Without it (or with every entry kept) the
    norm is the plain torch layer.
    """

    #: the axis the units sit on (1: channels first; -1: last; None: whatever the input says)
    feature_axis: int | None
    shrinkable = True

    def __init__(self, type_name: str) -> None:
        self.name = type_name
        self.batch = type_name.startswith("BatchNorm")
        self.feature_axis = 1 if (self.batch or type_name == "GroupNorm") else -1
        #: statistics over the features that may be restricted to a subset (``stat_mask``)
        self.masks_statistics = type_name in _MASKABLE_NORMS

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

    def fold_obstacle(self, module) -> str | None:
        """Why this eval-mode norm cannot be folded into the layer before it (None: it can).

        Only a batch norm with running statistics is a fixed per-channel affine map in eval
        mode (:meth:`eval_affine`); the other norms depend on the values they normalise.
        """
        if not self.batch:
            return f"a {self.name} normalises with statistics of its input, not fixed ones"
        if not module.track_running_stats or module.running_mean is None:
            return "it has no running statistics (track_running_stats=False), so it always uses batch statistics"
        return None

    def eval_affine(self, module) -> tuple[Any, Any]:
        """An eval-mode batch norm as the per-channel map ``y = scale * x + shift`` (float64).

        ``scale = weight / sqrt(running_var + eps)`` and ``shift = bias - running_mean * scale``
        (``weight = 1``, ``bias = 0`` without affine parameters). Inputs already validated
        (:meth:`fold_obstacle` is None and the module is in eval mode).

        Examples
        --------
        >>> import torch
        >>> from netstruct.convert.layers import NormHandler
        >>> bn = torch.nn.BatchNorm1d(2, eps=0.0).eval()
        >>> _ = bn.running_var.fill_(4.0), bn.running_mean.fill_(1.0)
        >>> scale, shift = NormHandler("BatchNorm1d").eval_affine(bn)
        >>> scale.tolist(), shift.tolist()
        ([0.5, 0.5], [-0.5, -0.5])
        """
        import torch

        var = module.running_var.detach().to(torch.float64)
        scale = 1.0 / torch.sqrt(var + float(module.eps))
        shift = -module.running_mean.detach().to(torch.float64) * scale
        if module.weight is not None:
            scale = scale * module.weight.detach().to(torch.float64)
            shift = shift * module.weight.detach().to(torch.float64)
        if module.bias is not None:
            shift = shift + module.bias.detach().to(torch.float64)
        return scale, shift

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
        keep = getattr(module, STAT_MASK, None)
        if keep is not None and self.masks_statistics:  # a masked norm-width model
            state[STAT_MASK] = keep.detach().cpu().numpy().astype(bool)
        weight = self.gain(module)
        bias = getattr(module, "bias", None)
        return builder.add_norm_block(
            module=path,
            sources=src,
            scale=weight,
            shift=bias,
            state=state,
            stat_groups=self.statistic_groups(self.config(module), n),
        )

    def export_per_group(self, module, path, ids: np.ndarray, builder) -> np.ndarray | None:
        """Export the norm applied to every group of a value whose units span several axes,
        the last one the norm's width (Qwen3's ``q_norm`` over each head's dimensions of a
        ``(heads, head_dim)`` value): one ``kind="norm"`` block whose gain repeats per group
        and whose statistics run over each group (``layout["group_width"]``). Returns the
        output ids in the shape of ``ids``, or None where this norm does not normalise the
        last axis alone (batch and group norms, norms over the channel axis)."""
        if self.batch or self.name == "GroupNorm" or self.feature_axis != -1:
            return None
        n = self._n(module)
        if ids.shape[-1] != n or getattr(module, STAT_MASK, None) is not None:
            return None
        src = builder.resolve_features(ids.reshape(-1), ids.size, path)
        out = builder.add_norm_block(
            module=path,
            sources=src,
            scale=self.gain(module),
            shift=getattr(module, "bias", None),
            shared_width=n,
        )
        return out.reshape(ids.shape)

    def gain(self, module) -> Any:
        """The per-unit factor the norm multiplies its normalised input by (its ``weight``;
        None without affine parameters): the diagonal of its graph block. A norm that
        parametrises it otherwise (Gemma's ``1 + weight``) overrides this and maps the
        block's diagonal back in ``build``."""
        return getattr(module, "weight", None)

    def statistic_groups(self, config: dict[str, Any], n: int) -> int | None:
        """Number of equal, contiguous groups of the ``n`` units whose statistics are apart.

        A batch norm normalises each unit with its own statistics (``n`` groups), a
        ``GroupNorm`` each of its ``num_groups`` groups of ``n // num_groups`` channels;
        ``LayerNorm``/``RMSNorm`` normalise over the whole width (None). Removing a whole
        statistics group leaves the others' outputs unchanged, which is what makes such units
        prunable (:mod:`netstruct.graphs.coupling` ties the channels of one group).

        Examples
        --------
        >>> NormHandler("GroupNorm").statistic_groups({"num_groups": 4}, 8)
        4
        >>> NormHandler("BatchNorm2d").statistic_groups({}, 8), NormHandler("LayerNorm").statistic_groups({}, 8)
        (8, None)
        """
        if self.batch:
            return int(n)
        if self.name == "GroupNorm":
            return int(config["num_groups"])
        return None

    def config(self, module):
        # "width": for a norm without parameters or buffers (affine=False and no running
        # statistics), whose state_dict carries no size; tensors, when present, decide
        cfg: dict[str, Any]
        if self.batch:
            cfg = {
                "eps": module.eps,
                "momentum": module.momentum,
                "affine": module.affine,
                "track_running_stats": module.track_running_stats,
            }
        elif self.name == "GroupNorm":
            cfg = {
                "num_groups": module.num_groups,
                "eps": module.eps,
                "affine": module.affine,
                # what stays fixed when whole groups are pruned (num_groups follows the width)
                "channels_per_group": module.num_channels // module.num_groups,
            }
        else:
            cfg = {"eps": module.eps, "elementwise_affine": module.elementwise_affine}
            if self.name == "LayerNorm":
                cfg["bias"] = module.bias is not None
        cfg["width"] = self._n(module)
        return cfg

    def build(self, config, params):
        import torch

        cls = getattr(torch.nn, self.name)
        cfg = dict(config)
        width = cfg.pop("width", None)
        n = self._size(params, width)
        if self.masks_statistics:
            return build_feature_norm(self.name, n, cfg, params)
        if self.name == "GroupNorm":
            groups = cfg.pop("num_groups")
            per_group = cfg.pop("channels_per_group", None)  # absent in specs before 2026-12
            if per_group is not None:
                groups = n // int(per_group)  # whole groups pruned: num_groups follows
            m = _quiet_build(cls, groups, n, numel=2 * n, **cfg)
        else:
            m = _quiet_build(cls, n, numel=2 * n, **cfg)
        if self.batch and m.running_mean is not None and not _RUNNING_STATS <= params.keys():
            m.reset_running_stats()  # skip_init leaves buffers uninitialised; load_state fills given ones
        load_state(m, params)
        return m

    def _size(self, params, width: int | None) -> int:
        """The norm's width: from its tensors, else the graph's block, else the config."""
        for key in ("weight", "running_mean", "bias"):
            if key in params:
                return int(np.shape(params[key])[0])
        if "__n__" in params:
            return int(params["__n__"])
        if width is None:
            raise GraphError(
                f"A {self.name} without parameters or buffers needs its width: the spec's "
                "config has no 'width' (a spec written before 2026-12); export the model again."
            )
        return int(width)


_MASKABLE_NORMS = ("LayerNorm", "RMSNorm")

#: a batch norm's buffers: when the graph holds all three, load_state sets every one of them
_RUNNING_STATS = frozenset({"running_mean", "running_var", "num_batches_tracked"})


def build_feature_norm(
    type_name: str,
    n: int,
    config: dict[str, Any],
    params: dict[str, Any],
    prefix: str = "",
    classes: tuple[Any, Any] | None = None,
) -> Any:
    """A ``LayerNorm``/``RMSNorm`` of width ``n`` from ``{prefix}weight``, ``{prefix}bias`` and
    ``{prefix}stat_mask``: the masked norm when the mask drops an entry, else the torch layer.

    The one place that decides what a norm-width removal means for a norm (also for the norms
    inside ``nn.TransformerEncoderLayer``, whose handler calls this). ``classes``: the
    ``(plain, masked)`` module classes of a LayerNorm variant (ConvNeXt's
    ``ConvNextLayerNorm`` and :class:`~netstruct.convert._norm_module.MaskedConvNextLayerNorm`);
    default: ``torch.nn.<type_name>`` and the masked norm of that type.
    """
    import torch

    from ._norm_module import MaskedLayerNorm, MaskedRMSNorm

    if classes is None:
        masked_cls = MaskedLayerNorm if type_name == "LayerNorm" else MaskedRMSNorm
        classes = (getattr(torch.nn, type_name), masked_cls)
    own = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
    own = {k: v for k, v in own.items() if "." not in k}
    keep = own.pop(STAT_MASK, None)
    if keep is not None and not np.asarray(keep, dtype=bool).all():
        mask = torch.from_numpy(np.array(keep, dtype=bool))
        m = _quiet_build(classes[1], n, numel=2 * n, **config, stat_mask=mask)
        getattr(m, STAT_MASK).copy_(mask)
    else:
        m = _quiet_build(classes[0], n, numel=2 * n, **config)
    load_state(m, own)
    return m


def stat_norm_blocks(G: Any) -> list[int]:
    """Indices of the ``kind="norm"`` blocks whose statistics may drop entries (``stat_mask``).

    Plain ``LayerNorm``/``RMSNorm`` modules and the norms of composite layers whose handler
    declares ``masks_statistics`` (``nn.TransformerEncoderLayer``/``TransformerEncoder``).
    """
    from .handlers import handler_for_name

    modules = (G._spec or {}).get("modules", {})  # read only: no copy of the spec
    out = []
    for i, b in enumerate(G.blocks):
        if b.kind != "norm" or b.module not in modules:
            continue
        h = handler_for_name(modules[b.module]["handler"])
        if getattr(h, "masks_statistics", False) and not b.layout.get("shared"):
            out.append(i)  # (a per-head norm's statistics stay within each head)
    return out


def _stat_key(b: Any) -> str:
    """State name of a norm block's ``stat_mask`` (``norm1.stat_mask`` inside a composite)."""
    prefix = b.param[: -len("weight")] if b.param.endswith("weight") else ""
    if not b.param and b.bias_param and b.bias_param.endswith("bias"):
        prefix = b.bias_param[: -len("bias")]
    return f"{prefix}{STAT_MASK}"


def exclude_from_norm_statistics(G: Any, gone: np.ndarray) -> Any:
    """``G`` with the nodes ``gone`` (bool per node) taken out of every maskable norm's statistics.

    Each ``LayerNorm``/``RMSNorm`` block reading a gone node gets (or updates) a boolean
    ``stat_mask`` state, False at that entry; re-import then builds the masked norm
    (:class:`NormHandler`). Used by :meth:`netstruct.pruning.PruningPlan.apply` when a plan
    removes dimensions of a normalised width, so the masked model equals the shrunk one.
    """
    blocks = list(G.blocks)
    changed = False
    for i in stat_norm_blocks(G):
        b = blocks[i]
        hit = gone[b.sources]
        if not hit.any():
            continue
        key = _stat_key(b)
        old = b.state.get(key)
        keep = np.ones(b.shape[1], dtype=bool) if old is None else np.array(old, dtype=bool)
        keep &= ~hit
        state = dict(b.state)
        state[key] = keep
        blocks[i] = b.replace(state=state)
        changed = True
    return G._derive(blocks=blocks) if changed else G  # masks unchanged: edge attributes hold


class EmbeddingHandler(ModuleHandler):
    """``nn.Embedding``: a vocabulary -> dimension block (the table transposed)."""

    shrinkable = True

    name = "Embedding"

    def export(self, module, path, inputs, builder):
        V, D = module.weight.shape
        if isinstance(inputs, PendingInput):
            src = builder.resolve_input(inputs, V, path, label="token")
        else:
            src = builder._add([NameRange(f"{path}.index", V)], kind="input", group=0, module=path)
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
        label = self.output_label(module)
        if label:  # a map of the looked-up vectors: an activation of the output nodes
            builder.annotate(out, label)
        return out

    def output_label(self, module) -> str:
        """The element-wise map on the looked-up vectors ("" for none; a scaled embedding's
        ``ScalarAffine``)."""
        return ""

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

    def keeps_channels(self, module) -> bool:
        """Whether each output channel is computed from the same input channel alone, every
        output value being one of that channel's values or a mean of them (no zero padding in
        it). The channel's node then carries over, and the exporter needs no code-tensor run
        to follow the module (``_Exporter._move_channels``).

        Examples
        --------
        >>> import torch
        >>> h = ShapeHandler("AvgPool2d", _POOL_AVG)
        >>> h.keeps_channels(torch.nn.AvgPool2d(2)), h.keeps_channels(torch.nn.AvgPool2d(3, padding=1))
        (True, False)
        """
        name = self.name
        if name.startswith("AdaptiveAvgPool"):
            return True
        if name.startswith(("MaxPool", "AdaptiveMaxPool")):  # padding is -inf: never the max
            return not module.return_indices
        if name.startswith("AvgPool"):
            pad = module.padding if isinstance(module.padding, tuple) else (module.padding,)
            zero_padded = any(p != 0 for p in pad) and module.count_include_pad
            divisor = getattr(module, "divisor_override", None)
            return not zero_padded and divisor is None and not module.ceil_mode
        return False

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
    src = builder._add([NameRange(full, rows.shape[0])], kind="input", group=0, module=owner)
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
    from ._norm_module import MaskedLayerNorm, MaskedRMSNorm

    masked = {"LayerNorm": MaskedLayerNorm, "RMSNorm": MaskedRMSNorm}
    for name in ("LayerNorm", "GroupNorm", "RMSNorm"):
        if hasattr(torch.nn, name):
            h = NormHandler(name)
            yield getattr(torch.nn, name), h
            if name in masked:  # a masked norm-width model exports back with its stat_mask
                yield masked[name], h
    yield torch.nn.Embedding, EmbeddingHandler()
    for name, attrs in _SHAPE_TYPES.items():
        yield getattr(torch.nn, name), ShapeHandler(name, attrs)
