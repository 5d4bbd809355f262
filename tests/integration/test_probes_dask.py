"""A probe sweep on a local Dask cluster gives the same numbers as the serial run."""

from __future__ import annotations

import pandas as pd
import pytest

import netstruct as ns
from netstruct.probes import sweep, train_protocol

pytestmark = pytest.mark.torch

distributed = pytest.importorskip("distributed")


def test_sweep_on_dask_cluster_matches_serial():
    from joblib import parallel_config

    ds = ns.datasets.class_pair(ns.datasets.load_digits(), 7, 9)
    graphs = [train_protocol(ds, seed=s, hidden=8, epochs=2).graph for s in (0, 1)]
    probes = {"prune": [0.0, 0.6], "noise": [0.1, 0.3], "flip-random": [0.2], "null-E": [0.0, 0.3]}
    serial = sweep(graphs, ds.X_test, ds.y_test, probes, n_repeats=3, seed=11, n_jobs=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        with parallel_config(backend="dask"):
            on_dask = sweep(graphs, ds.X_test, ds.y_test, probes, n_repeats=3, seed=11)
        assert len(client.scheduler_info()["workers"]) == 2
        assert any("_run_cell" in prefix for prefix in cluster.scheduler.task_prefixes)
    pd.testing.assert_frame_equal(on_dask, serial)
