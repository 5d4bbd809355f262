"""The module :func:`netstruct.to_torch` returns: submodules at the original paths, a replayed forward."""

from __future__ import annotations

import functools
from typing import Any

import torch

from ._paths import submodule

__all__ = ["RebuiltModel", "set_eval", "set_submodule"]


def set_submodule(root: Any, path: str, module: Any, container_factory: Any) -> None:
    """Add ``module`` at dotted ``path`` under ``root``, creating containers on the way."""
    parts = path.split(".")
    parent = root
    for p in parts[:-1]:
        child = parent._modules.get(p)  # submodules live there (no Module.__getattr__ walk)
        if child is None:
            if _has_attribute(parent, p) and getattr(parent, p) is not None:
                child = getattr(parent, p)  # not a submodule (e.g. a parameter): as before
            else:
                child = _container(container_factory)
                _add(parent, p, child)
        parent = child
    _add(parent, parts[-1], module)


def _has_attribute(m: Any, name: str) -> bool:
    """``hasattr(m, name)`` for a module, without the ``AttributeError`` torch's
    ``__getattr__`` formats for a missing name (most of a rebuild's container walk)."""
    if name in m.__dict__ or name in m._parameters or name in m._buffers or name in m._modules:
        return True
    return hasattr(type(m), name)


def _add(parent: Any, name: str, module: Any) -> None:
    """``parent.add_module(name, module)``; torch's own checks only where they can fail."""
    mm = torch.nn.modules.module
    if (
        not name
        or "." in name
        or mm._global_module_registration_hooks
        or (name not in parent._modules and _has_attribute(parent, name))
        or not isinstance(module, torch.nn.Module)
        or type(parent).add_module is not torch.nn.Module.add_module
    ):
        parent.add_module(name, module)  # its error, its hooks, or the class's own rule
        return
    parent._modules[name] = module


@functools.lru_cache(maxsize=8)
def _container_prototype(factory: Any) -> Any:
    return factory()


def _container(factory: Any) -> Any:
    """A new empty container as ``factory()`` builds it, cloned from one built once (a
    module's ``__init__`` costs more than the rest of placing a rebuilt layer), as the
    handlers clone their layers (:func:`~.layers._clone_empty`: own tables, no tensors here)."""
    if factory not in (torch.nn.Module, torch.nn.Sequential):
        return factory()
    from .layers import _clone_empty

    return _clone_empty(_container_prototype(factory))


def set_eval(model: Any) -> None:
    """``model.eval()``, with the flag set directly on every module that keeps torch's own
    ``train`` (its recursion through ``Module.__setattr__`` costs more than the flags)."""
    stock = torch.nn.Module.train
    for m in model.modules():
        if type(m).train is stock:
            m.__dict__["training"] = False
        else:
            m.train(False)  # the class's own rule (it may recurse: harmless)


class RebuiltModel(torch.nn.Module):
    """A module rebuilt by :func:`netstruct.to_torch` from a traced architecture spec.

    Submodules sit at the original paths, so ``state_dict`` keys equal the original model's;
    ``forward`` replays the recorded operations (module calls, whitelisted functions and
    tensor methods). ``netstruct_spec`` holds the spec, so the module can be exported again.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        modules: dict[str, torch.nn.Module],
        scales: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        items = list(modules.items())
        if any(m.get("handler") == "Parameters" for m in spec.get("modules", {}).values()):
            # owners first: a module holding directly read parameters may also have children
            items.sort(key=lambda kv: kv[0].count("."))
        for path, m in items:
            if path == "":  # parameters the model's own forward reads directly
                for name, p in m.named_parameters(recurse=False):
                    self.register_parameter(name, p)
                continue
            set_submodule(self, path, m, torch.nn.Module)
        self.netstruct_spec = spec
        self._hold_constants(spec)
        # per-feature factors of pruned or edited skip/identity edges (not in the state_dict)
        self._scale_names: dict[str, str] = {}
        for k, (name, vec) in enumerate((scales or {}).items()):
            self.register_buffer(f"_ns_scale{k}", torch.as_tensor(vec), persistent=False)
            self._scale_names[name] = f"_ns_scale{k}"

    def _hold_constants(self, spec: dict[str, Any]) -> None:
        """Buffers and constants the model's forward read (``get_attr`` with a ``value``), as
        buffers at their own paths, persistent where the model's were (same state_dict keys)."""
        from . import _ops

        for rec in spec.get("ops", ()):
            if rec["op"] != "get_attr" or "value" not in rec:
                continue
            owner_path, _, name = rec["target"].rpartition(".")
            try:
                owner = self.get_submodule(owner_path) if owner_path else self
            except AttributeError:
                owner = torch.nn.Module()
                set_submodule(self, owner_path, owner, torch.nn.Module)
            if not hasattr(owner, name):
                value = _ops.decode_arg(rec["value"], [])
                owner.register_buffer(name, value, persistent=bool(rec.get("persistent")))

    def _read_parameter(self, target: str) -> Any:
        """A parameter the forward reads itself (``get_attr``), ``torch.nn.utils.prune``'s
        reparametrisation included.

        ``prune.custom_from_mask`` (``to_torch(prune_masks=True)``) replaces the parameter by
        ``<name>_orig`` and a ``<name>_mask`` buffer and recomputes ``orig * mask`` in a hook
        on its owner's forward, which never runs for a plain owner module (ConvNeXt's layer
        scale): the product is taken here instead, so gradients reach ``<name>_orig``.
        """
        owner_path, _, name = target.rpartition(".")
        owner = submodule(self, owner_path)
        p = owner._parameters.get(name)
        if p is not None:
            return p
        orig = owner._parameters.get(f"{name}_orig")
        if orig is not None:
            return orig * getattr(owner, f"{name}_mask")
        return self.get_parameter(target)  # its error: not a parameter

    def _scaled_inputs(self, rec: dict[str, Any], args: list[Any]) -> list[Any]:
        """Apply the factors of an op's skip (one per operand) or identity (its input) blocks."""
        blocks = rec.get("blocks", ())
        if not blocks or not self._scale_names:
            return args
        axes = rec.get("axes") or [rec.get("axis", -1)]
        for k, name in enumerate(blocks):
            args[k] = self._scale(name, args[k], axes)
        return args

    def _scale(self, name: str, value: Any, axes: list[int]) -> Any:
        """``value`` times the block's factors along its unit axes (``axes``: the axes the
        units' ids span, in their order; several for values split into heads)."""
        buf = self._scale_names.get(name)
        if buf is None:
            return value
        vec = getattr(self, buf)
        nd = value.dim()
        ax = [a % nd for a in axes]
        if len(ax) > 1:  # ids laid out over the axes in their order: to the tensor's order
            vec = vec.reshape([value.shape[a] for a in ax])
            vec = vec.permute(sorted(range(len(ax)), key=ax.__getitem__))
        shape = [1] * nd
        for a in ax:
            shape[a] = value.shape[a]
        return value * vec.reshape(shape).to(value.dtype)

    def _check_specialised(self, inputs: tuple) -> None:
        """A tape-traced model runs on inputs of the example's shapes only."""
        facts = self.netstruct_spec.get("specialised")
        if not facts:
            return
        want = facts.get("input_shapes", [])
        got = [list(x.shape) if hasattr(x, "shape") else None for x in inputs]
        if got != want:
            from ..exceptions import InvalidParameterError

            raise InvalidParameterError(
                f"This module was rebuilt from a graph recorded by running the model once (its "
                f"forward is not traceable with torch.fx), so it is specialised to input shapes "
                f"{want}; got {got}. Export the model again with an example_input of the shape "
                "you need."
            )

    def forward(self, *inputs: Any) -> Any:
        from ..exceptions import GraphError
        from . import _ops

        env: list[Any] = []
        table = _ops.function_table()
        n_in = 0
        #: ``observer(rec, args, value)`` after each recorded function or method (MAC counts)
        observer = self.__dict__.get("_ns_observer")
        self._check_specialised(inputs)
        for rec in self.netstruct_spec["ops"]:
            op = rec["op"]
            args = _ops.decode_arg(rec.get("args", []), env)
            kwargs = {k: _ops.decode_arg(v, env) for k, v in rec.get("kwargs", {}).items()}
            if op == "placeholder":
                # an argument left out takes its default (fx records it as the only arg)
                default = args[0] if args else kwargs.get("default")
                val = inputs[n_in] if n_in < len(inputs) else default
                n_in += 1
            elif op == "call_module":
                args = self._scaled_inputs(rec, list(args))
                val = submodule(self, rec["target"])(*args, **kwargs)
            elif op == "call_function":
                if rec["target"] == "F.dropout":
                    kwargs["training"] = self.training
                args = self._scaled_inputs(rec, list(args))
                val = table[rec["target"]](*args, **kwargs)
                if observer is not None:
                    observer(rec, args, val)
            elif op == "call_method":
                args = self._scaled_inputs(rec, list(args))
                val = getattr(args[0], rec["target"])(*args[1:], **kwargs)
                if observer is not None:
                    observer(rec, args, val)
            elif op == "get_attr":
                if "value" in rec:  # a buffer or constant (see _hold_constants)
                    owner, _, name = rec["target"].rpartition(".")
                    val = getattr(submodule(self, owner), name)
                else:
                    val = self._read_parameter(rec["target"])
            elif op == "output":
                return args[0]
            else:
                raise GraphError(f"Unknown operation {op!r} in architecture spec.")
            env.append(val)
        raise GraphError("Architecture spec has no output operation.")
