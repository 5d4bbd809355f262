"""Renamed parameters: old keyword names keep working for one release and warn.

The pruning API uses one vocabulary (``amount`` for how much to remove, ``blocks`` for which
blocks, ``seed=0``); :func:`renamed_parameters` maps the old names onto it.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import InvalidParameterError

__all__ = ["renamed_parameters"]

F = TypeVar("F", bound=Callable[..., Any])


def renamed_parameters(
    func_name: str, **renames: str | tuple[str, Callable[[Any], Any]]
) -> Callable[[F], F]:
    """Decorator: accept old keyword names as deprecated aliases of new ones.

    Parameters
    ----------
    func_name : str
        Public name used in the messages.
    **renames : str or (str, callable)
        ``old="new"``, or ``old=("new", convert)`` when the old value must be converted
        (e.g. a kept fraction into a removed one).

    Returns
    -------
    callable
        The decorator. Passing an old name emits a :class:`FutureWarning` naming the new one;
        passing both raises :class:`~netstruct.exceptions.InvalidParameterError`.

    Examples
    --------
    >>> import warnings
    >>> @renamed_parameters("f", sparsity="amount")
    ... def f(*, amount=0.0):
    ...     return amount
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f(sparsity=0.5), str(w[0].message).split(';')[0]
    (0.5, "The 'sparsity' parameter of f is deprecated")
    """

    def decorate(fn: F) -> F:
        positional = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, spec in renames.items():
                if old not in kwargs:
                    continue
                new, convert = (spec, None) if isinstance(spec, str) else spec
                if new in kwargs or new in positional[: len(args)]:
                    raise InvalidParameterError(
                        f"{func_name} got both '{old}' (deprecated) and '{new}'; pass only '{new}'."
                    )
                value = kwargs.pop(old)
                how = "" if convert is None else f" (note: '{new}' = {_describe(convert)})"
                warnings.warn(
                    f"The '{old}' parameter of {func_name} is deprecated; use '{new}'{how}. "
                    "The old name will be removed in the next release.",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[new] = value if convert is None or value is None else convert(value)
            return fn(*args, **kwargs)

        wrapper.__renamed_parameters__ = dict(renames)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _describe(convert: Callable[[Any], Any]) -> str:
    return (convert.__doc__ or "converted").strip()
