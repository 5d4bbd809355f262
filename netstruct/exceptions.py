"""Exceptions and warnings raised by netstruct.

Every user-facing error derives from :class:`NetstructError`, so callers can catch the
whole family with one ``except`` clause. Messages name the parameter or object at fault,
what was found, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "NetstructError",
    "InvalidParameterError",
    "GraphError",
    "BackendUnavailableError",
    "NotImplementedForBackend",
    "UnsupportedModuleError",
    "FileFormatError",
    "DatasetNotFoundError",
    "InfeasibleTestError",
    "TasksLostError",
    "NetstructWarning",
    "EmptySelectionWarning",
    "UnfoldedBatchNormWarning",
    "UncheckedExportWarning",
]


class NetstructError(Exception):
    """Base class of every error raised deliberately by netstruct."""


class InvalidParameterError(NetstructError, ValueError, TypeError):
    """A parameter of a public function has the wrong type or value."""


class GraphError(NetstructError, ValueError):
    """A graph is not of the kind an operation needs (shapes, cycles, NaN weights...)."""


class BackendUnavailableError(NetstructError, ImportError):
    """A named compute backend cannot be used on this machine."""


class NotImplementedForBackend(NetstructError, NotImplementedError):
    """The selected backend has no implementation of the requested operation."""


class UnsupportedModuleError(NetstructError, TypeError):
    """A torch module (or traced operation) has no registered export handler."""


class FileFormatError(NetstructError, ValueError):
    """A saved file is truncated, altered, or not a netstruct file."""


class DatasetNotFoundError(NetstructError, FileNotFoundError):
    """The files of a dataset are missing; the message says how to get them."""


class InfeasibleTestError(NetstructError, ValueError):
    """A Granger test cannot be computed for a series (constant column, NaN, perfect fit).

    Raised by :func:`netstruct.causal.granger` with ``errors="raise"``; the name matches
    statsmodels' exception for the same cases.
    """


class TasksLostError(NetstructError, RuntimeError):
    """Tasks sent to Dask were lost with their workers; the computed results are kept.

    Attributes
    ----------
    results : list
        One entry per task, in order; None for a lost task.
    failed : list of int
        Indices of the lost tasks.
    """

    def __init__(
        self, message: str, results: list | None = None, failed: list | None = None
    ) -> None:
        super().__init__(message)
        self.results = list(results or [])
        self.failed = list(failed or [])


class NetstructWarning(UserWarning):
    """Base class of netstruct's warnings."""


class EmptySelectionWarning(NetstructWarning):
    """A pruning query or selector matched nothing, so nothing was removed."""


class UnfoldedBatchNormWarning(NetstructWarning):
    """``from_torch(..., fold_batchnorm=True)`` left some batch norms unfolded (it says why).

    Turn it into an error with ``warnings.simplefilter("error", UnfoldedBatchNormWarning)``
    when every batch norm must be folded.
    """


def param_error(name: str, func: str, expected: str, got: object) -> InvalidParameterError:
    """Build an :class:`InvalidParameterError` with the standard message template.

    Examples
    --------
    >>> str(param_error("n_steps", "randomize", "an int >= 0", -3))
    "The 'n_steps' parameter of randomize must be an int >= 0. Got -3 instead."
    """
    return InvalidParameterError(
        f"The {name!r} parameter of {func} must be {expected}. Got {got!r} instead."
    )


class UncheckedExportWarning(NetstructWarning):
    """``from_torch(model)`` without ``example_input`` traced a forward that asks what its
    values are (``isinstance``, ``hasattr``, ``type``, ``torch.fx``'s tracing flag).

    torch.fx answers such a question for its proxy, not for a tensor, so the graph may hold
    the branch a real run does not take, and without an example input nothing checks it.
    Pass ``example_input``: the export is then checked against the model's own forward (and
    recorded by one run where the trace differs from it).
    """
