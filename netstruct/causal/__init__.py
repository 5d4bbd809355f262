"""Causal influence of weights on training: Granger tests, Lyapunov exponents, FDR, recording.

Building blocks of LEGCNet pruning (Sahu et al., arXiv:2308.09955; spec
``chaos_causality.md``): record weight trajectories while training
(:class:`TrajectoryRecorder`), estimate a Lyapunov exponent per window (:func:`lyapunov`),
test whether each weight's exponent series Granger-causes the error series
(:func:`granger`), control the false discovery rate (:func:`fdr_control`), and prune
(:func:`legcnet_prune`, in the authors' replication mode or the calibrated recommended mode;
:func:`null_calibration` shows how each rule behaves when there is nothing to find).
:func:`path_influence` gives the signed influence of units and edges on the outputs.

torch is imported only by the recorder and the pipeline, when they are used.
"""

from ..exceptions import InfeasibleTestError
from .fdr import fdr_control
from .granger import GRANGER_STATUS, GrangerResult, granger, max_granger_lag
from .influence import path_influence
from .legcnet import CausalScores, LEGCNetConfig, causal_scores, decide, null_calibration
from .lyapunov import (
    LYAPUNOV_STATUS,
    LyapunovResult,
    lyapunov,
    lyapunov_windows,
    sliding_windows,
    window_bounds,
)
from .pipeline import (
    LEGCNetResult,
    RetrainResult,
    legcnet_prune,
    magnitude_mask,
    random_mask,
    retrain,
)
from .recorder import TrajectoryReader, TrajectoryRecorder

__all__ = [
    "granger",
    "GrangerResult",
    "GRANGER_STATUS",
    "InfeasibleTestError",
    "max_granger_lag",
    "lyapunov",
    "LyapunovResult",
    "LYAPUNOV_STATUS",
    "lyapunov_windows",
    "sliding_windows",
    "window_bounds",
    "fdr_control",
    "TrajectoryRecorder",
    "TrajectoryReader",
    "LEGCNetConfig",
    "CausalScores",
    "causal_scores",
    "decide",
    "null_calibration",
    "legcnet_prune",
    "LEGCNetResult",
    "retrain",
    "RetrainResult",
    "magnitude_mask",
    "random_mask",
    "path_influence",
]
