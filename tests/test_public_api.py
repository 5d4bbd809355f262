"""The public surface: light import, flat names, error template, backends registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

import netstruct as ns


def test_import_is_light():
    code = (
        "import sys, netstruct\n"
        "heavy = [m for m in ('torch', 'networkx', 'igraph', 'numba.cuda', 'matplotlib') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_lazy_names_resolve():
    for name in ns.__all__:
        assert getattr(ns, name) is not None, name
    for name in (
        "from_torch",
        "to_torch",
        "unroll",
        "save",
        "load",
        "write_graphml",
        "shrink",
        "prune",
        "odf2nna",
        "learn_mask",
        "imp",
        "magnitude_prune",
        "sweep",
        "path_influence",
        "PruningPlan",
    ):
        assert callable(getattr(ns, name)), name
    with pytest.raises(AttributeError):
        ns.does_not_exist  # noqa: B018


def test_error_template():
    from netstruct.exceptions import param_error

    e = param_error("n_steps", "randomize", "an int >= 0", -3)
    assert str(e) == "The 'n_steps' parameter of randomize must be an int >= 0. Got -3 instead."
    assert (
        isinstance(e, ValueError) and isinstance(e, TypeError) and isinstance(e, ns.NetstructError)
    )


def test_backends_registry():
    from netstruct.backends import available_backends, dispatch, resolve_backend

    assert "numba" in available_backends()
    assert resolve_backend(None) == "numba"
    with pytest.raises(ns.InvalidParameterError, match="'backend'"):
        resolve_backend("opencl")
    with pytest.raises(ns.NotImplementedForBackend, match="no 'numba' implementation"):
        dispatch("nothing.here")
    with ns.config_context(backend="numba"):
        assert resolve_backend(None) == "numba"
    with pytest.raises(ns.InvalidParameterError, match="unknown setting"):
        with ns.config_context(colour="red"):
            pass
