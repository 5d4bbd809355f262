"""Save a torch model as its ``state_dict`` plus a JSON architecture spec (never pickle)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..exceptions import FileFormatError, InvalidParameterError, param_error
from ._atomic import check_in_path, check_out_path
from ._container import read_container, write_container

__all__ = ["save_model", "load_model", "load_user_model"]

FORMAT = "netstruct-model"
VERSION = 2


def save_model(
    model: Any, path: str | os.PathLike, *, compress: bool = False, example_input: Any = None
) -> None:
    """Save ``model`` (any module :func:`netstruct.from_torch` can export) to ``path``.

    The file holds the architecture spec as JSON and every ``state_dict`` tensor as a
    ``.npy`` entry, checksummed; it is written atomically.

    Parameters
    ----------
    model : torch.nn.Module
    path : str or path-like
    compress : bool, default=False
        Deflate the tensors (level 1; slower, small gain for float weights).
    example_input : Tensor, optional
        One batch of input, for models whose export needs shapes (convolutions, reshapes).

    Examples
    --------
    >>> import tempfile, os, torch, netstruct as ns
    >>> m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    >>> p = os.path.join(tempfile.mkdtemp(), "m.nsm")
    >>> ns.save_model(m, p)
    >>> x = torch.randn(4, 3)
    >>> bool(torch.equal(ns.load_model(p)(x), m(x)))
    True
    """
    import torch

    from ..convert.builder import spec_only_export
    from ..convert.from_torch import from_torch

    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(
            f"The 'model' parameter of save_model must be a torch.nn.Module. Got {type(model).__name__} instead."
        )
    if not isinstance(compress, bool):
        raise param_error("compress", "save_model", "a bool", compress)
    p = check_out_path(path, "save_model")
    with spec_only_export():  # only the spec is kept: the graph borrows the tensors
        spec = from_torch(model, example_input, check=False).spec
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    meta = {
        "spec": spec,
        "state_keys": list(state),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
    }
    write_container(
        p,
        FORMAT,
        VERSION,
        meta,
        {f"state/{i}": v for i, v in enumerate(state.values())},
        compress=compress,
    )


def load_model(path: str | os.PathLike) -> Any:
    """Load a model saved with :func:`save_model` (in eval mode).

    Raises
    ------
    FileFormatError
        Truncated, altered or foreign file, or parameters that do not fit the architecture.
    """
    from ..convert.handlers import handler_for_name
    from ..convert.to_torch import _assemble, retie

    p = check_in_path(path, "load_model")
    meta, arrays = read_container(p, FORMAT, VERSION)
    try:
        spec = meta["spec"]
        state = {k: arrays.pop(f"state/{i}") for i, k in enumerate(meta["state_keys"])}
        kinds = {k: (v.shape, v.dtype) for k, v in state.items()}
        tied = spec.get("tied", {})
        ties = {v: state[v] for pair in tied.items() for v in pair if v in state}
        paths = sorted(spec["modules"], key=len, reverse=True)

        def owner(key: str) -> str:  # the deepest module holding the tensor (a ViT's
            # directly read "embeddings" parameters do not own "embeddings.patch_embeddings.*")
            return next((q for q in paths if not q or key.startswith(f"{q}.")), "")

        owned: dict[str, list[str]] = {}
        for k in state:
            owned.setdefault(owner(k), []).append(k)
        modules = {}
        for mpath, m in spec["modules"].items():
            prefix = f"{mpath}." if mpath else ""
            # each module's arrays are dropped once it holds its copy, so the next module's
            # tensors reuse their memory: the load's peak is the model plus one module
            params = {k[len(prefix) :]: np.asarray(state.pop(k)) for k in owned.get(mpath, ())}
            modules[mpath] = handler_for_name(m["handler"]).build(m.get("config", {}), params)
            del params
        model = _assemble(spec, modules, {})
        if state:  # held by the model itself (a buffer its forward reads): copied in
            _load_rest(model, state)
        retie(model, tied, ties.get)
        _check_built_state(model, kinds)
    except MemoryError:
        raise
    except Exception as exc:  # a checksummed file that does not rebuild: foreign or forged
        raise FileFormatError(
            f"{str(p)!r} does not hold a consistent netstruct model ({type(exc).__name__}: {exc})."
        ) from None
    model.eval()
    return model


def _load_rest(model: Any, state: dict[str, np.ndarray]) -> None:
    """Copy the tensors no rebuilt submodule owns (buffers the model's forward reads itself)."""
    import torch

    from ..convert.layers import _copy_buffer

    own = model.state_dict(keep_vars=True)
    missing = sorted(set(state) - set(own))
    if missing:
        raise ValueError(f"tensors {missing[:5]} belong to no module of the rebuilt model")
    with torch.no_grad():
        for k, arr in state.items():
            _copy_buffer(own[k], np.reshape(arr, tuple(own[k].shape)))


def _check_built_state(model: Any, kinds: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """The rebuilt ``model`` holds exactly the file's state: ``kinds`` gives each tensor's
    name, shape and dtype in the file.

    Each handler's ``build`` copied its module's tensors in (the one copy of the load); a
    ``load_state_dict`` after it would copy every byte a second time. What it would also
    check is checked here: the same names, none missing or extra, and each tensor's shape
    and dtype.
    """
    built = model.state_dict(keep_vars=True)
    if set(built) != set(kinds):
        missing, extra = sorted(set(kinds) - set(built)), sorted(set(built) - set(kinds))
        raise ValueError(f"state names differ: missing {missing}, unexpected {extra}")
    for k, (shape, dtype) in kinds.items():
        t = built[k]
        size = int(np.prod(shape))
        scalar = size == 1 and t.dim() == 0  # as load_state: a scalar may be kept as (1,)
        shape_ok = scalar or tuple(t.shape) == tuple(shape)
        if not shape_ok or str(t.dtype).replace("torch.", "") != dtype.name:
            raise ValueError(
                f"{k!r} is {tuple(t.shape)} {t.dtype} in the rebuilt model but {tuple(shape)} "
                f"{dtype} in the file"
            )


def _factory(spec: str, func: str) -> Any:
    """Resolve ``"package.module:function"`` to the callable (the current folder is importable)."""
    import importlib
    import sys

    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise param_error(
            "factory", func, "a 'module:function' string such as 'mypkg.models:make_net'", spec
        )
    mod_name, attr = spec.split(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InvalidParameterError(
            f"The 'factory' parameter of {func} names module {mod_name!r}, which cannot be imported "
            f"({exc}); run from the folder that holds it or install it."
        ) from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise InvalidParameterError(
            f"The 'factory' parameter of {func}: module {mod_name!r} has no callable {attr!r}."
        )
    return fn


def load_user_model(path: str | os.PathLike, factory: str | None = None) -> Any:
    """Load a user's model: a netstruct ``.nsm`` file, or a ``torch.save``d state_dict plus a factory.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_model`, or a state_dict written by ``torch.save`` (read
        with ``weights_only=True``: no code from the file runs).
    factory : str, optional
        ``"module:function"`` returning the untrained ``torch.nn.Module`` the state_dict
        belongs to (needed for a state_dict; the module is imported from the current folder
        or the installed packages).

    Returns
    -------
    torch.nn.Module
        In eval mode.

    Raises
    ------
    FileFormatError
        A damaged file, or a state_dict that does not fit the factory's model.
    InvalidParameterError
        A state_dict without ``factory``, or a factory that cannot be imported or called.

    Examples
    --------
    >>> import tempfile, os, torch, netstruct as ns
    >>> from netstruct.io.model import load_user_model
    >>> p = os.path.join(tempfile.mkdtemp(), "m.nsm")
    >>> ns.save_model(torch.nn.Linear(3, 2), p)
    >>> type(load_user_model(p)).__name__
    'Linear'
    """
    import torch

    func = "load_user_model"
    p = check_in_path(path, func)
    with open(p, "rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if is_zip and factory is None:
        import zipfile

        with zipfile.ZipFile(p) as zf:
            if "manifest.json" in zf.namelist():
                return load_model(p)
    if factory is None:
        raise InvalidParameterError(
            f"{str(p)!r} was not written by netstruct (it is not a .nsm model file); for a "
            "torch.save'd state_dict also give the model factory as 'module:function' (--factory "
            "on the command line)."
        )
    fn = _factory(factory, func)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise FileFormatError(
            f"{str(p)!r} is not a readable torch state_dict ({type(exc).__name__}: {exc})."
        ) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FileFormatError(f"{str(p)!r} does not hold a state_dict (a mapping name -> tensor).")
    try:
        model = fn()
    except Exception as exc:
        raise InvalidParameterError(
            f"The model factory {factory!r} failed when called without arguments "
            f"({type(exc).__name__}: {exc})."
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(
            f"The model factory {factory!r} must return a torch.nn.Module. Got {type(model).__name__} instead."
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise FileFormatError(
            f"The state_dict in {str(p)!r} does not fit the model from {factory!r}: {exc}"
        ) from None
    return model.eval()
