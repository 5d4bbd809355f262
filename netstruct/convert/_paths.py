"""Submodules by dotted path, read off the modules' own tables."""

from __future__ import annotations

from typing import Any

__all__ = ["submodule"]


def submodule(root: Any, path: str) -> Any:
    """``root.get_submodule(path)``, walking the ``_modules`` tables directly.

    torch's ``get_submodule`` asks ``hasattr`` and ``getattr`` at every level, two
    ``Module.__getattr__`` misses per level before it finds the submodule table; a rebuilt
    model's forward and the exporter look a module up for every call they replay. Anything
    the tables do not hold (a submodule behind a property, a root that is not a module, such
    as an overlay of replaced layers, a wrong path) goes to ``root.get_submodule`` itself,
    with its answer or its error.

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    >>> submodule(m, "0.0") is m[0][0], submodule(m, "") is m
    (True, True)
    """
    if not path:
        return root
    mod = root
    for name in path.split("."):
        # a module's own table only (a wrapper that forwards attributes to a model it
        # overlays, such as the batch-norm folding's, answers through its get_submodule)
        table = getattr(mod, "__dict__", {}).get("_modules")
        child = table.get(name) if isinstance(table, dict) else None
        if child is None:
            return root.get_submodule(path)
        mod = child
    return mod
