"""Save a torch model as its ``state_dict`` plus a JSON architecture spec (never pickle)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..exceptions import FileFormatError, InvalidParameterError, param_error
from ._atomic import check_in_path, check_out_path
from ._container import read_container, write_container

__all__ = ["save_model", "load_model"]

FORMAT = "netstruct-model"
VERSION = 2


def save_model(model: Any, path: str | os.PathLike, *, compress: bool = False) -> None:
    """Save ``model`` (any module :func:`netstruct.from_torch` can export) to ``path``.

    The file holds the architecture spec as JSON and every ``state_dict`` tensor as a
    ``.npy`` entry, checksummed; it is written atomically.

    Parameters
    ----------
    model : torch.nn.Module
    path : str or path-like
    compress : bool, default=False
        Deflate the tensors (level 1; slower, small gain for float weights).

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

    from ..convert.from_torch import from_torch

    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(
            f"The 'model' parameter of save_model must be a torch.nn.Module. Got {type(model).__name__} instead."
        )
    if not isinstance(compress, bool):
        raise param_error("compress", "save_model", "a bool", compress)
    p = check_out_path(path, "save_model")
    spec = from_torch(model).spec
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    meta = {"spec": spec, "state_keys": list(state), "model_class": f"{type(model).__module__}.{type(model).__qualname__}"}
    write_container(p, FORMAT, VERSION, meta, {f"state/{i}": v for i, v in enumerate(state.values())},
                    compress=compress)


def load_model(path: str | os.PathLike) -> Any:
    """Load a model saved with :func:`save_model` (in eval mode).

    Raises
    ------
    FileFormatError
        Truncated, altered or foreign file, or parameters that do not fit the architecture.
    """
    from ..convert.handlers import handler_for_name
    from ..convert.to_torch import _assemble

    p = check_in_path(path, "load_model")
    meta, arrays = read_container(p, FORMAT, VERSION)
    try:
        spec = meta["spec"]
        state = {k: arrays[f"state/{i}"] for i, k in enumerate(meta["state_keys"])}
        modules = {}
        for mpath, m in spec["modules"].items():
            prefix = f"{mpath}." if mpath else ""
            params = {k[len(prefix):]: np.asarray(v) for k, v in state.items() if k.startswith(prefix) and (mpath or "." not in k)}
            modules[mpath] = handler_for_name(m["handler"]).build(m.get("config", {}), params)
        model = _assemble(spec, modules)
        import torch

        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    except MemoryError:
        raise
    except Exception as exc:  # a checksummed file that does not rebuild: foreign or forged
        raise FileFormatError(f"{str(p)!r} does not hold a consistent netstruct model ({type(exc).__name__}: {exc}).") from None
    model.eval()
    return model
