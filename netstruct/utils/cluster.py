"""Scale-out through Dask distributed: a local cluster by default, a scheduler address for a real one.

Heavy sweeps (probe x level x run, null-model ensembles, training runs) are lists of
independent tasks. :func:`run_tasks` submits them to a Dask client (arguments shared by several
tasks, such as the test set, are scattered once):

* ``scheduler=None`` -- the Dask client already active in this process (``distributed.Client``
  created by the user), otherwise a local cluster started on first use and reused afterwards
  (threads in this process, one per core: no pickling of graphs, sub-second start);
* ``scheduler="tcp://host:8786"`` -- a running cluster at that address;
* ``scheduler="serial"`` (or ``n_jobs=1``) -- in this process, no Dask (debugging, profiling).

Results never depend on the scheduler: every task derives its own seed from its keys.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..exceptions import BackendUnavailableError, TasksLostError, param_error

__all__ = ["run_tasks", "get_client", "close_local_cluster", "check_scheduler", "TasksLostError"]

_LOCK = threading.Lock()
_LOCAL: dict[str, Any] = {}


def _distributed(func: str) -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise BackendUnavailableError(
            f"{func} runs its tasks on Dask, but 'distributed' is not installed. Install it with "
            "'pip install \"dask[distributed]\"', or pass scheduler='serial'."
        ) from None
    return distributed


def check_scheduler(scheduler: Any, func: str) -> None:
    """Raise a clear error unless ``scheduler`` is None, ``'serial'`` or a scheduler address."""
    if scheduler is None or scheduler == "serial":
        return
    if not isinstance(scheduler, str) or ":" not in scheduler:
        raise param_error(
            "scheduler",
            func,
            "None (active client or local cluster), 'serial', or a scheduler address such as "
            "'tcp://10.0.0.5:8786'",
            scheduler,
        )


def get_client(
    scheduler: str | None = None, *, n_workers: int | None = None, func: str = "get_client"
) -> Any:
    """The Dask client for ``scheduler`` (see the module docstring).

    Parameters
    ----------
    scheduler : str or None
        None for the active client or the shared local cluster, or a scheduler address.
    n_workers : int, optional
        Workers of the local cluster when it is started (default: the number of cores).

    Returns
    -------
    distributed.Client

    Examples
    --------
    >>> from netstruct.utils.cluster import get_client
    >>> client = get_client()
    >>> get_client() is client      # the local cluster is started once and reused
    True
    """
    check_scheduler(scheduler, func)
    if scheduler == "serial":
        raise param_error(
            "scheduler", func, "None or an address (no client for 'serial')", scheduler
        )
    distributed = _distributed(func)
    if scheduler is not None:
        _probe_scheduler(scheduler, func)
        try:
            return distributed.Client(scheduler, timeout="10s", set_as_default=False)
        except OSError as exc:
            raise BackendUnavailableError(
                f"{func} could not reach the Dask scheduler at {scheduler!r} ({exc}). Start it with "
                "'dask scheduler' (and workers with 'dask worker <address>'), or pass scheduler=None "
                "for a local cluster."
            ) from None
    with _LOCK:
        client = _LOCAL.get("client")
        if client is not None and client.status in ("running", "connecting"):
            return client
        try:
            return distributed.default_client()
        except ValueError:
            pass
        n = n_workers or os.cpu_count() or 1
        # dask's logging config sets 'distributed' to INFO: a library's helper cluster stays quiet
        dlog = logging.getLogger("distributed")
        if dlog.level < logging.WARNING:
            dlog.setLevel(logging.WARNING)
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = distributed.Client(cluster, set_as_default=False)
        _LOCAL.update(cluster=cluster, client=client)
        # registered after distributed's own exit hooks, so it runs before them (LIFO)
        atexit.register(close_local_cluster)
        return client


def _probe_scheduler(address: str, func: str, timeout: float = 10.0) -> None:
    """Check that a Dask scheduler answers at a ``tcp://`` address before handing it to Dask.

    A Dask peer sends its handshake (an 8-byte length, then a small message) as soon as the
    connection opens. A server that stays silent (HTTP) would hang Dask's handshake, and one
    that sends other bytes (SSH, SMTP) would be read as a huge message length; both are
    refused here with a clear error. Other protocols (``tls://``, ``inproc://``) go to Dask as
    given.
    """
    import socket
    import struct
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        return
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise param_error(
            "scheduler",
            func,
            "an address with host and port such as 'tcp://10.0.0.5:8786'",
            address,
        )
    hint = (
        "Start a scheduler with 'dask scheduler' (and workers with 'dask worker <address>'), or pass "
        "scheduler=None for a local cluster."
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            head = b""
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError:
        raise BackendUnavailableError(
            f"{func}: the server at {address!r} accepted the connection but sent no Dask handshake "
            f"within {timeout:g} s; it is not a Dask scheduler. {hint}"
        ) from None
    except OSError as exc:
        raise BackendUnavailableError(
            f"{func} could not reach the Dask scheduler at {address!r} ({exc}). {hint}"
        ) from None
    n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
    if not 0 < n < 2**20:
        raise BackendUnavailableError(
            f"{func}: the server at {address!r} does not speak Dask's protocol (it sent "
            f"{head[:8]!r}); it is not a Dask scheduler. {hint}"
        )


def close_local_cluster() -> None:
    """Shut down the local cluster started by :func:`get_client` (also done at exit)."""
    with _LOCK:
        client, cluster = _LOCAL.pop("client", None), _LOCAL.pop("cluster", None)
    # closing in-process workers logs closed connections (with tracebacks) at INFO level
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    finally:
        log.setLevel(level)


def run_tasks(
    func: Callable[..., Any],
    args: Iterable[Sequence[Any]],
    *,
    scheduler: str | None = None,
    n_jobs: int | None = None,
    caller: str = "run_tasks",
) -> list[Any]:
    """``[func(*a) for a in args]`` on Dask (or serially), in order.

    Parameters
    ----------
    func : callable
        A module-level function (tasks may be sent to other machines).
    args : iterable of tuples
        Positional arguments of each task.
    scheduler : str or None, default=None
        See the module docstring.
    n_jobs : int, optional
        ``1`` runs serially in this process; otherwise the number of workers of the local
        cluster when it is started.
    caller : str
        Name used in error messages.

    Returns
    -------
    list
        One result per task, in the order of ``args``.

    Examples
    --------
    >>> from netstruct.utils.cluster import run_tasks
    >>> run_tasks(pow, [(2, 3), (3, 2)])
    [8, 9]
    >>> run_tasks(pow, [(2, 3)], scheduler="serial")
    [8]
    """
    check_scheduler(scheduler, caller)
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1
    ):
        raise param_error("n_jobs", caller, "an int >= 1 or None", n_jobs)
    tasks = [tuple(a) for a in args]
    if scheduler == "serial" or n_jobs == 1 or len(tasks) <= 1:
        return [func(*a) for a in tasks]
    client = get_client(scheduler, n_workers=n_jobs, func=caller)
    try:
        futures = [
            client.submit(func, *a, pure=False, retries=2) for a in _scatter_shared(client, tasks)
        ]
        return _gather(client, futures, caller)
    finally:
        if scheduler is not None:
            client.close()


def _gather(client: Any, futures: list[Any], caller: str) -> list[Any]:
    """Results in order; a task lost with its workers raises :class:`TasksLostError` with the rest."""
    distributed = _distributed(caller)
    results: list[Any] = [None] * len(futures)
    failed: dict[int, BaseException] = {}
    lost = (distributed.client.FutureCancelledError, distributed.scheduler.KilledWorker, OSError)
    for i, fut in enumerate(futures):
        try:
            results[i] = fut.result()
        except lost as exc:
            failed[i] = exc
        except Exception:
            for f in futures:
                f.cancel()
            raise  # the task's own error (a bug or a bad input): not a lost worker
    if failed:
        first = next(iter(failed.values()))
        raise TasksLostError(
            f"{caller}: {len(failed)} of {len(futures)} tasks were lost with their Dask workers "
            f"(first: {type(first).__name__}: {first}); the other results are kept in this error's "
            f"'results' (tasks {sorted(failed)} are None). Run again, or pass scheduler='serial'.",
            results,
            sorted(failed),
        )
    return results


def _scatter_shared(client: Any, tasks: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Send arguments shared by several tasks (the test set, a graph) to the cluster once."""
    seen: dict[int, int] = {}
    for a in tasks:
        for v in a:
            if not isinstance(v, (int, float, str, bool, type(None))):
                seen[id(v)] = seen.get(id(v), 0) + 1
    shared = {i for i, n in seen.items() if n > 1}
    if not shared:
        return tasks
    objs = {id(v): v for a in tasks for v in a if id(v) in shared}
    # every worker gets a copy: losing one worker loses no shared argument
    futs = dict(zip(objs, client.scatter(list(objs.values()), hash=False, broadcast=True)))
    return [tuple(futs.get(id(v), v) for v in a) for a in tasks]
