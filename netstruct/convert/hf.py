"""Handlers of Hugging Face ``transformers`` layers that are not plain torch layers.

They are registered by qualified class name, so netstruct never imports ``transformers``
(it is no dependency of the package); re-importing a graph that holds one of these layers
imports it then.

* ``transformers.pytorch_utils.Conv1D`` (GPT-2's projections): ``y = x W + b`` with ``W``
  stored ``(in, out)``. It is a Linear: one block ``weight`` of shape ``(out, in)`` (the
  parameter transposed; ``block.parameter()`` gives the ``(in, out)`` tensor back), so
  :func:`netstruct.shrink` slices it like a Linear.
* ``transformers.activations.NewGELUActivation`` (``"gelu_new"``): the tanh form of GELU,
  labelled ``gelu{"approximate": "tanh"}`` on its nodes; it is rebuilt as itself, so
  re-import is exact.
* ``transformers.models.convnext.modeling_convnext.ConvNextLayerNorm``: a LayerNorm over the
  channel axis (``channels_first``) or the last axis; a masked graph whose plan removed
  channels of its width rebuilds it as
  :class:`~netstruct.convert._norm_module.MaskedConvNextLayerNorm`.
* The RMS norms of decoder LLMs (``LlamaRMSNorm`` and the classes of Mistral, Mixtral, Qwen2,
  Qwen3, Phi-3, Granite, OLMo-2, and T5's ``T5LayerNorm``): ``weight * x / sqrt(mean(x^2) + eps)``
  over the last axis, like ``nn.RMSNorm``; rebuilt as their own class, or, when a plan removed
  entries of their width, as :class:`~netstruct.convert._norm_module.MaskedRMSNorm`.
* Gemma's RMS norms (``GemmaRMSNorm``, Gemma-2/3, VaultGemma): ``(1 + weight) * x / rms(x)``.
  The graph block's diagonal is the gain ``1 + weight`` (what the norm multiplies by); the
  rebuilt norm gets ``weight = diagonal - 1`` back.
* The scaled word embeddings (``GemmaTextScaledWordEmbedding`` and its Gemma-2/3 and
  VaultGemma copies, BART's and mBART's ``ScaledWordEmbedding``): an ``nn.Embedding`` whose
  vectors are multiplied by ``embed_scale`` (``sqrt(hidden_size)``). The block holds the
  table itself (so a table tied to an LM head stays one parameter), its output nodes the
  label ``ScalarAffine{scale}``; rebuilt as their own class with the same scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..exceptions import GraphError
from .builder import to_numpy
from .elementwise import ElementwiseHandler, label_for
from .handlers import ModuleHandler
from .layers import STAT_MASK, EmbeddingHandler, NormHandler, build_feature_norm, load_state

__all__ = [
    "Conv1DHandler",
    "NewGELUHandler",
    "ReLUSquaredHandler",
    "ConvNextLayerNormHandler",
    "RMSNormHandler",
    "GemmaRMSNormHandler",
    "LayerNormCopyHandler",
    "ScaledEmbeddingHandler",
    "PositionEmbeddingHandler",
    "builtin_handlers",
    "discover",
]


def _transformers(module: str, what: str) -> Any:
    """``transformers.<module>``, or a clear error when transformers is not installed."""
    import importlib

    try:
        return importlib.import_module(f"transformers.{module}")
    except ImportError:
        raise GraphError(
            f"The graph holds a Hugging Face {what} layer; install transformers to re-import it "
            "(pip install transformers)."
        ) from None


class _OwnClass:
    """A handler of one transformers class, named ``transformers.<model>.<Class>``, that
    rebuilds that class (imported only then)."""

    _where: tuple[str, str]

    def _bind(self, module: str, cls: str) -> None:
        self.name = f"transformers.{module.split('.')[1]}.{cls}"
        self._where = (module, cls)

    def own_class(self) -> Any:
        module, cls = self._where
        return getattr(_transformers(module, cls), cls)


class Conv1DHandler(ModuleHandler):
    """GPT-2's ``Conv1D``: a Linear whose weight is stored ``(in_features, out_features)``."""

    name = "transformers.Conv1D"
    #: rows and columns slice like a Linear's in the graph's ``(out, in)`` layout; the rebuilt
    #: layer reads its sizes off the (transposed back) parameter
    shrinkable = True

    def export(self, module, path, inputs, builder):
        n_in, n_out = module.weight.shape
        src = builder.resolve_features(inputs, n_in, path)
        out = builder.add_units(n_out, module=path)
        builder._append(
            name=f"{path}.weight" if path else "weight",
            weight=to_numpy(module.weight).T,
            sources=src,
            targets=out,
            bias=to_numpy(module.bias),
            module=path,
            param="weight",
            bias_param="bias",
            layout={"type": "transpose", "linear": True},  # a product, not a lookup table
        )
        return out

    def build(self, config, params):
        Conv1D = _transformers("pytorch_utils", "Conv1D").Conv1D
        n_in, n_out = params["weight"].shape
        m = Conv1D(n_out, n_in)
        load_state(m, params)
        return m


class NewGELUHandler(ElementwiseHandler):
    """``NewGELUActivation``: GELU in its tanh form (labelled like ``nn.GELU("tanh")``)."""

    def __init__(self) -> None:
        super().__init__("GELU")
        self.name = "transformers.NewGELUActivation"

    def config(self, module):
        return {"approximate": "tanh"}

    def label(self, config):
        return label_for("GELU", {"approximate": "tanh"})

    def build(self, config, params):
        return _transformers("activations", "NewGELUActivation").NewGELUActivation()


class ReLUSquaredHandler(ElementwiseHandler):
    """``ReLUSquaredActivation`` (``"relu2"``): ``relu(x) ** 2``, labelled ``relusquared``."""

    def __init__(self) -> None:
        super().__init__("ReLUSquared")
        self.name = "transformers.ReLUSquaredActivation"

    def build(self, config, params):
        return _transformers("activations", "ReLUSquaredActivation").ReLUSquaredActivation()


class ConvNextLayerNormHandler(NormHandler):
    """``ConvNextLayerNorm``: a LayerNorm over channels (``channels_first``) or the last axis.

    Its ``data_format`` decides the axis, so the handler follows whatever axis its input
    carries the units on. Its statistics may drop channels (``masks_statistics``): when a plan
    removes channels of the width it normalises (a ConvNeXt stage's channels, tied by the
    residual sums, norm-width groups), the masked graph's block carries a ``stat_mask`` state
    and the norm is rebuilt as
    :class:`~netstruct.convert._norm_module.MaskedConvNextLayerNorm` (statistics over the kept
    channels on the same axis, removed channels output 0), which equals the shrunk
    ``ConvNextLayerNorm(n_kept)``.
    """

    feature_axis = None

    def __init__(self) -> None:
        super().__init__("LayerNorm")
        self.name = "transformers.ConvNextLayerNorm"
        self.feature_axis = None
        self.masks_statistics = True

    def config(self, module):
        return {
            "eps": module.eps,
            "data_format": module.data_format,
            "elementwise_affine": module.elementwise_affine,
            "bias": module.bias is not None,
            "width": self._n(module),
        }

    def build(self, config, params):
        from ._norm_module import MaskedConvNextLayerNorm

        cfg = dict(config)
        n = self._size(params, cfg.pop("width", None))  # no "width" in specs before 2026-12
        plain = _transformers(
            "models.convnext.modeling_convnext", "ConvNextLayerNorm"
        ).ConvNextLayerNorm
        return build_feature_norm(
            "LayerNorm", n, cfg, params, classes=(plain, MaskedConvNextLayerNorm)
        )


#: ``(module, class)`` of the Hugging Face RMS norms computing ``weight * x * rsqrt(mean(x^2) + eps)``
#: (their forwards were read: the same map, statistics in float32); Gemma's ``1 + weight`` is not
RMS_NORMS = (
    ("models.llama.modeling_llama", "LlamaRMSNorm"),
    ("models.mistral.modeling_mistral", "MistralRMSNorm"),
    ("models.mixtral.modeling_mixtral", "MixtralRMSNorm"),
    ("models.qwen2.modeling_qwen2", "Qwen2RMSNorm"),
    ("models.qwen3.modeling_qwen3", "Qwen3RMSNorm"),
    ("models.phi3.modeling_phi3", "Phi3RMSNorm"),
    ("models.granite.modeling_granite", "GraniteRMSNorm"),
    ("models.olmo2.modeling_olmo2", "Olmo2RMSNorm"),
    ("models.helium.modeling_helium", "HeliumRMSNorm"),
    ("models.t5.modeling_t5", "T5LayerNorm"),
)


class RMSNormHandler(_OwnClass, NormHandler):
    """A Hugging Face RMS norm (``LlamaRMSNorm`` and its copies): ``nn.RMSNorm`` semantics.

    One handler per class (its ``name`` is the class's qualified name without the
    ``transformers.models.`` prefix), so re-import rebuilds the model's own class. Its
    ``variance_epsilon`` is the norm's ``eps``; the statistics run over the last axis and may
    drop entries (``stat_mask``, a norm-width removal), then the rebuilt norm is
    :class:`~netstruct.convert._norm_module.MaskedRMSNorm`, which equals the shrunk norm.

    Examples
    --------
    >>> h = RMSNormHandler("models.llama.modeling_llama", "LlamaRMSNorm")
    >>> h.name
    'transformers.llama.LlamaRMSNorm'
    """

    def __init__(self, module: str, cls: str) -> None:
        super().__init__("RMSNorm")
        self._bind(module, cls)

    def _n(self, module) -> int:
        return int(module.weight.shape[0])

    def config(self, module):
        return {"eps": float(module.variance_epsilon), "width": self._n(module)}

    def weight_of(self, gain: np.ndarray) -> np.ndarray:
        """The class's own ``weight`` for the block's gain (the same array here)."""
        return gain

    def build(self, config, params):
        import torch

        from ._norm_module import MaskedRMSNorm

        n = self._size(params, config.get("width"))
        eps = float(config["eps"])
        own = dict(params)
        keep = own.pop(STAT_MASK, None)
        if keep is not None and not np.asarray(keep, dtype=bool).all():
            mask = torch.from_numpy(np.array(keep, dtype=bool))
            m = MaskedRMSNorm(n, eps=eps, stat_mask=mask)  # weight: the gain itself
        else:
            m = self.own_class()(n, eps=eps)
            if "weight" in own:
                own["weight"] = self.weight_of(np.asarray(own["weight"], dtype=np.float64))
        load_state(m, own)
        return m


class LayerNormCopyHandler(_OwnClass, NormHandler):
    """A transformers LayerNorm written in Python: Cohere's ``CohereLayerNorm`` (a weight, no
    bias, ``variance_epsilon``) and OLMo's ``OlmoLayerNorm`` (no parameters, ``eps = 1e-5``):
    ``nn.LayerNorm`` semantics over the last axis, rebuilt as their own class (or, after a
    norm-width removal, as :class:`~netstruct.convert._norm_module.MaskedLayerNorm`).

    Examples
    --------
    >>> LayerNormCopyHandler("models.olmo.modeling_olmo", "OlmoLayerNorm").name
    'transformers.olmo.OlmoLayerNorm'
    """

    def __init__(self, module: str, cls: str) -> None:
        super().__init__("LayerNorm")
        self._bind(module, cls)

    def _n(self, module) -> int:
        w = getattr(module, "weight", None)
        if w is not None:
            if w.dim() != 1:
                raise GraphError(
                    f"{type(module).__name__} over {tuple(w.shape)} (per-head weights); netstruct "
                    "exports norms over the feature axis only"
                )
            return int(w.shape[0])
        return int(tuple(module.normalized_shape)[0])

    def config(self, module):
        eps = getattr(module, "variance_epsilon", 1e-5)
        return {"eps": float(eps), "width": self._n(module)}

    def build(self, config, params):
        n = self._size(params, config.get("width"))
        own = dict(params)
        keep = own.get(STAT_MASK)
        affine = "weight" in own
        if keep is not None and not np.asarray(keep, dtype=bool).all():
            cfg = {"eps": float(config["eps"]), "elementwise_affine": affine, "bias": False}
            return build_feature_norm("LayerNorm", n, cfg, own)
        own.pop(STAT_MASK, None)
        made = self.own_class()
        m = made(n, eps=float(config["eps"])) if affine else made(n)
        load_state(m, own)
        return m


#: LayerNorms written in Python (see :class:`LayerNormCopyHandler`)
LAYER_NORM_COPIES = (
    ("models.cohere.modeling_cohere", "CohereLayerNorm"),
    ("models.olmo.modeling_olmo", "OlmoLayerNorm"),
)


#: Gemma's RMS norms: ``x / rms(x) * (1 + weight)``, ``eps`` as ``module.eps``
GEMMA_NORMS = (
    ("models.gemma.modeling_gemma", "GemmaRMSNorm"),
    ("models.gemma2.modeling_gemma2", "Gemma2RMSNorm"),
    ("models.gemma3.modeling_gemma3", "Gemma3RMSNorm"),
    ("models.vaultgemma.modeling_vaultgemma", "VaultGemmaRMSNorm"),
)


class GemmaRMSNormHandler(RMSNormHandler):
    """Gemma's RMS norm, ``(1 + weight) * x / sqrt(mean(x^2) + eps)``: an RMS norm whose gain
    is ``1 + weight`` (the block's diagonal); ``build`` subtracts the 1 again.

    Examples
    --------
    >>> GemmaRMSNormHandler("models.gemma.modeling_gemma", "GemmaRMSNorm").name
    'transformers.gemma.GemmaRMSNorm'
    """

    def gain(self, module) -> Any:
        return 1.0 + module.weight.detach().double()

    def config(self, module):
        return {"eps": float(module.eps), "width": self._n(module)}

    def weight_of(self, gain: np.ndarray) -> np.ndarray:
        return gain - 1.0


#: embeddings whose forward is ``super().forward(ids) * self.embed_scale`` and whose
#: constructor is ``(num_embeddings, embedding_dim, padding_idx, embed_scale)``
SCALED_EMBEDDINGS = (
    ("models.gemma.modeling_gemma", "GemmaTextScaledWordEmbedding"),
    ("models.gemma2.modeling_gemma2", "Gemma2TextScaledWordEmbedding"),
    ("models.gemma3.modeling_gemma3", "Gemma3TextScaledWordEmbedding"),
    ("models.vaultgemma.modeling_vaultgemma", "VaultGemmaTextScaledWordEmbedding"),
    ("models.bart.modeling_bart", "BartScaledWordEmbedding"),
    ("models.mbart.modeling_mbart", "MBartScaledWordEmbedding"),
    ("models.plbart.modeling_plbart", "PLBartScaledWordEmbedding"),
    ("models.m2m_100.modeling_m2m_100", "M2M100ScaledWordEmbedding"),
    ("models.xglm.modeling_xglm", "XGLMScaledWordEmbedding"),
    ("models.biogpt.modeling_biogpt", "BioGptScaledWordEmbedding"),
)


class ScaledEmbeddingHandler(_OwnClass, EmbeddingHandler):
    """A Hugging Face scaled word embedding: ``nn.Embedding`` times ``embed_scale``.

    Examples
    --------
    >>> ScaledEmbeddingHandler("models.bart.modeling_bart", "BartScaledWordEmbedding").name
    'transformers.bart.BartScaledWordEmbedding'
    """

    def __init__(self, module: str, cls: str) -> None:
        self._bind(module, cls)

    @staticmethod
    def _scale(module) -> float:
        s = module.embed_scale
        return float(s.item() if hasattr(s, "item") else s)

    def output_label(self, module) -> str:
        return label_for("ScalarAffine", {"scale": self._scale(module), "shift": 0.0})

    def config(self, module):
        return {"padding_idx": module.padding_idx, "embed_scale": self._scale(module)}

    def build(self, config, params):
        import torch

        w = np.asarray(params["weight"])
        m = self.own_class()(
            w.shape[0], w.shape[1], config["padding_idx"], embed_scale=config["embed_scale"]
        )
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        load_state(m, {k: v for k, v in params.items() if k != "weight"})
        return m


#: learned position tables looked up at positions computed from the input's shape (BART) or
#: its attention mask (OPT), never from the tokens: ``embedding(positions + offset)``
POSITION_EMBEDDINGS = (
    ("models.bart.modeling_bart", "BartLearnedPositionalEmbedding"),
    ("models.mbart.modeling_mbart", "MBartLearnedPositionalEmbedding"),
    ("models.opt.modeling_opt", "OPTLearnedPositionalEmbedding"),
    ("models.biogpt.modeling_biogpt", "BioGptLearnedPositionalEmbedding"),
    ("models.plbart.modeling_plbart", "PLBartLearnedPositionalEmbedding"),
    # fixed sinusoidal tables (frozen), looked up at positions from the input's shape
    ("models.marian.modeling_marian", "MarianSinusoidalPositionalEmbedding"),
    ("models.pegasus.modeling_pegasus", "PegasusSinusoidalPositionalEmbedding"),
)


class PositionEmbeddingHandler(_OwnClass, EmbeddingHandler):
    """A learned position table (``BartLearnedPositionalEmbedding``, OPT's): an ``nn.Embedding``
    whose forward looks up positions, computed from its argument's shape or mask.

    Its argument carries no units (the token ids are read for their shape only), so its
    block reads the table's own ``index`` input nodes, as ``nn.Embedding`` does when called
    on position ids; the table keeps its ``offset`` rows (rebuilt with
    ``num_embeddings - offset``, as the class's constructor adds them).

    Examples
    --------
    >>> PositionEmbeddingHandler("models.opt.modeling_opt", "OPTLearnedPositionalEmbedding").name
    'transformers.opt.OPTLearnedPositionalEmbedding'
    """

    #: its argument is read for its shape (or mask) only (see the exporter's ``UnitSlice``)
    reads_units = False

    def __init__(self, module: str, cls: str) -> None:
        self._bind(module, cls)

    def export(self, module, path, inputs, builder):
        return super().export(module, path, None, builder)  # positions: no units read

    def config(self, module):
        return {"offset": int(getattr(module, "offset", 0))}

    def build(self, config, params):
        import torch

        w = np.asarray(params["weight"])
        m = self.own_class()(w.shape[0] - int(config["offset"]), w.shape[1])
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        return m


def _source(fn: Any) -> str | None:
    import inspect

    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return None


def discover(cls: type) -> ModuleHandler | None:
    """A handler for a transformers RMS norm class not in the tables, by its code.

    transformers copies ``LlamaRMSNorm`` into well over a hundred models (``GlmRMSNorm``,
    ``Ernie4_5RMSNorm``, ``Qwen2MoeRMSNorm``, ...) and Gemma's norm into a few: a class named
    ``*RMSNorm`` in ``transformers.models`` whose ``forward`` (and ``_norm``) source is
    character for character that of ``LlamaRMSNorm`` (of ``GemmaRMSNorm``) computes the same
    map, so it gets that handler under its own name. None for anything else.

    Examples
    --------
    >>> import transformers.models.glm.modeling_glm as glm  # doctest: +SKIP
    >>> discover(glm.GlmRMSNorm).name  # doctest: +SKIP
    'transformers.glm.GlmRMSNorm'
    """
    where = getattr(cls, "__module__", "") or ""
    if not where.startswith("transformers.models.") or not cls.__name__.endswith("RMSNorm"):
        return None
    module = where[len("transformers.") :]
    try:
        # the forwards of the tabled RMS norms (Llama's, and OLMo-2's and Helium's, which
        # multiply in float32 first: the same map at float32)
        plain = [
            getattr(_transformers(m, c), c)
            for m, c in (
                ("models.llama.modeling_llama", "LlamaRMSNorm"),
                ("models.olmo2.modeling_olmo2", "Olmo2RMSNorm"),
                ("models.helium.modeling_helium", "HeliumRMSNorm"),
            )
        ]
        gemma = _transformers("models.gemma.modeling_gemma", "Gemma").GemmaRMSNorm
    except (GraphError, AttributeError, ImportError):
        return None
    own = _source(getattr(cls, "forward", None))
    if own is not None and any(own == _source(ref.forward) for ref in plain):
        return RMSNormHandler(module, cls.__name__)
    norm = getattr(cls, "_norm", None)
    if (
        own is not None
        and norm is not None
        and own == _source(gemma.forward)
        and _source(norm) == _source(gemma._norm)
    ):
        return GemmaRMSNormHandler(module, cls.__name__)
    return None


def discover_name(name: str) -> ModuleHandler | None:
    """:func:`discover` for a handler name ``transformers.<model>.<Class>`` (re-import in a
    session that has not exported such a model): the class from
    ``transformers.models.<model>.modeling_<model>``."""
    import importlib

    parts = name.split(".")
    if len(parts) != 3 or parts[0] != "transformers" or not parts[2].endswith("RMSNorm"):
        return None
    try:
        mod = importlib.import_module(f"transformers.models.{parts[1]}.modeling_{parts[1]}")
    except ImportError:
        return None
    cls = getattr(mod, parts[2], None)
    return discover(cls) if isinstance(cls, type) else None


def builtin_handlers() -> Iterator[tuple[str, ModuleHandler]]:
    """``(qualified class name, handler)`` pairs."""
    yield "transformers.pytorch_utils.Conv1D", Conv1DHandler()
    yield "transformers.activations.NewGELUActivation", NewGELUHandler()
    yield "transformers.activations.ReLUSquaredActivation", ReLUSquaredHandler()
    convnext_ln = ConvNextLayerNormHandler()
    yield "transformers.models.convnext.modeling_convnext.ConvNextLayerNorm", convnext_ln
    # its masked counterpart (a netstruct class): a masked model exports back with its stat_mask
    yield "netstruct.convert._norm_module.MaskedConvNextLayerNorm", convnext_ln
    for module, cls in RMS_NORMS:
        yield f"transformers.{module}.{cls}", RMSNormHandler(module, cls)
    for module, cls in GEMMA_NORMS:
        yield f"transformers.{module}.{cls}", GemmaRMSNormHandler(module, cls)
    for module, cls in LAYER_NORM_COPIES:
        yield f"transformers.{module}.{cls}", LayerNormCopyHandler(module, cls)
    for module, cls in SCALED_EMBEDDINGS:
        yield f"transformers.{module}.{cls}", ScaledEmbeddingHandler(module, cls)
    for module, cls in POSITION_EMBEDDINGS:
        yield f"transformers.{module}.{cls}", PositionEmbeddingHandler(module, cls)
