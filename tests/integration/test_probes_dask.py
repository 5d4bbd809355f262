"""A probe sweep on a local Dask cluster gives the same numbers as the serial run."""

from __future__ import annotations

import pandas as pd
import pytest

import netstruct as ns
from netstruct.probes import sweep, train_protocol, train_runs

pytestmark = pytest.mark.torch

distributed = pytest.importorskip("distributed")


def test_sweep_on_dask_cluster_matches_serial():
    ds = ns.datasets.class_pair(ns.datasets.load_digits(), 7, 9)
    graphs = [train_protocol(ds, seed=s, hidden=8, epochs=2).graph for s in (0, 1)]
    probes = {"prune": [0.0, 0.6], "noise": [0.1, 0.3], "flip-random": [0.2], "null-E": [0.0, 0.3]}
    serial = sweep(graphs, ds.X_test, ds.y_test, probes, n_repeats=3, seed=11, n_jobs=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        # a scheduler address, as for a real cluster: worker processes receive pickled graphs
        on_dask = sweep(
            graphs,
            ds.X_test,
            ds.y_test,
            probes,
            n_repeats=3,
            seed=11,
            scheduler=cluster.scheduler_address,
        )
        assert any("run_cell" in prefix for prefix in cluster.scheduler.task_prefixes)
    pd.testing.assert_frame_equal(on_dask, serial)


def test_default_sweep_runs_on_the_local_dask_cluster():
    from netstruct.utils.cluster import get_client

    ds = ns.datasets.class_pair(ns.datasets.load_digits(), 7, 9)
    graphs = [train_protocol(ds, seed=s, hidden=8, epochs=2).graph for s in (0, 1)]
    probes = {"prune": [0.0, 0.6], "null-B": [0.0]}
    serial = sweep(graphs, ds.X_test, ds.y_test, probes, n_repeats=2, seed=3, scheduler="serial")
    default = sweep(graphs, ds.X_test, ds.y_test, probes, n_repeats=2, seed=3)
    pd.testing.assert_frame_equal(default, serial)
    client = get_client()
    assert any("run_cell" in p for p in client.cluster.scheduler.task_prefixes)


def test_train_runs_reproducible_on_dask():
    ds = ns.datasets.class_pair(ns.datasets.load_digits(), 7, 9)
    a = train_runs(ds, 3, seed=5, hidden=6, epochs=1)
    b = train_runs(ds, 3, seed=5, hidden=6, epochs=1, scheduler="serial")
    for ra, rb in zip(a, b):
        for ba, bb in zip(ra.graph.blocks, rb.graph.blocks):
            assert (ba.weight == bb.weight).all()


def test_bad_scheduler_is_a_clear_error():
    ds = ns.datasets.class_pair(ns.datasets.load_digits(), 7, 9)
    G = train_protocol(ds, seed=0, hidden=4, epochs=1).graph
    with pytest.raises(ns.InvalidParameterError, match="scheduler"):
        sweep(G, ds.X_test, ds.y_test, {"prune": [0.5]}, scheduler="nowhere")
    with pytest.raises(ns.BackendUnavailableError, match="could not reach"):
        sweep([G, G], ds.X_test, ds.y_test, {"prune": [0.5]}, scheduler="tcp://127.0.0.1:1")
