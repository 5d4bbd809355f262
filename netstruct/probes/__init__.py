"""Data-agnostic robustness probes of trained networks and the task-complexity gap.

The five probes of Jankowski et al., *Task complexity shapes internal representations and
robustness in neural networks* (arXiv:2508.05463), as transforms of a
:class:`~netstruct.SignedGraph` (each per layer, biases included where the study does so,
usable alone or followed by :func:`binarize`):

* :func:`prune`, :func:`binarize`, :func:`add_noise`, :func:`flip_signs`,
  :func:`shuffle_weights` (null models after pruning), with :func:`expected_flip_fraction`;
* :func:`perturb` and :func:`evaluate_batch`: stacks of perturbed copies evaluated at once;
* :func:`sweep` (probe x level x run through joblib, tidy table), :func:`summarize`,
  :func:`plot_sweep`, :func:`plot_violins`;
* :func:`task_complexity`: the binarization and randomization gaps with flip50 folding;
* :func:`train_protocol`, :data:`TASKS`, :data:`PAPER`: the study's protocol and numbers.

Importing this package does not import torch; the evaluation and training functions do.
"""

from .complexity import TaskComplexity, complexity_gap, task_complexity
from .evaluate import check_classifier, evaluate_batch, predict_batch
from .flip_fraction import expected_flip_fraction, flip_probability
from .plots import plot_sweep, plot_violins
from .protocol import (
    BIAS_POLICIES,
    COLLAPSE_CONTROLS,
    HEADLINE_RUNS,
    PAPER,
    TASKS,
    TrainedRun,
    set_biases,
    to_unit_interval,
    train_protocol,
    train_runs,
)
from .registry import PROBES, ProbeSpec, ProbeStack, perturb
from .sweep import METRICS, SWEEP_COLUMNS, cell_seed, fold50, summarize, sweep
from .transforms import (
    NOISE_DISTS,
    NOISE_MODES,
    PRUNE_RULES,
    add_noise,
    binarize,
    flip_signs,
    prune,
    prune_plan,
    shuffle_weights,
)

__all__ = [
    "HEADLINE_RUNS",
    "COLLAPSE_CONTROLS",
    "to_unit_interval",
    "prune",
    "prune_plan",
    "binarize",
    "add_noise",
    "flip_signs",
    "shuffle_weights",
    "flip_probability",
    "expected_flip_fraction",
    "PRUNE_RULES",
    "NOISE_DISTS",
    "NOISE_MODES",
    "PROBES",
    "ProbeSpec",
    "ProbeStack",
    "perturb",
    "evaluate_batch",
    "predict_batch",
    "check_classifier",
    "sweep",
    "summarize",
    "fold50",
    "cell_seed",
    "METRICS",
    "SWEEP_COLUMNS",
    "plot_sweep",
    "plot_violins",
    "task_complexity",
    "TaskComplexity",
    "complexity_gap",
    "train_protocol",
    "train_runs",
    "set_biases",
    "TrainedRun",
    "TASKS",
    "PAPER",
    "BIAS_POLICIES",
]
