"""netstruct vs Torch-Pruning (1.6.1) on the same models: which prune, parameters, outputs, time.

Both tools remove 30 % and 50 % of the coupled channel groups (units) of every hidden layer,
ranked by weight magnitude (Torch-Pruning: ``MagnitudeImportance(p=2)`` over each dependency
group; netstruct: ``structured_prune(G, amount=ratio, norm_width=True)``, whose groups couple
a residual stream's channels across every conv and norm on it, attention's heads and a
recurrent unit's gate rows), the classifier's outputs kept. At 50 % both keep the same
parameter counts on every small model both prune (at 30 % they round a layer's share
differently; on HF ResNet Torch-Pruning also cuts the model's output channels). (An earlier version ranked each layer's units on their own;
on the residual CNN that removed the union of two layers' choices from the shared stream,
372 parameters left instead of Torch-Pruning's 1,386.) For each model and tool the table gives

* ``status``: ``ok`` or the error (type and first words), so what fails is on record;
* ``params``: parameters after physical pruning (and the ratio to the dense model);
* ``masked_vs_pruned``: max |masked model - physically pruned model| on a test batch, where
  the masked model zeroes the removed rows and columns in the dense model (netstruct:
  ``to_torch(plan.apply(G))``; Torch-Pruning: every item of each recorded group zeroed);
* ``time_min`` / ``time_med``: seconds over alternated rounds (netstruct: ``from_torch`` +
  plan + ``ns.prune(G, plan, shrink=True)`` + ``to_torch``; Torch-Pruning: dependency graph,
  importance and pruning of a fresh copy, the copy made before the clock starts), and the
  ratio netstruct / Torch-Pruning. Torch-Pruning prunes in place, netstruct returns a new model
  and leaves the original as it was; the ``tp + deepcopy`` row times Torch-Pruning with the
  ``copy.deepcopy`` that gives it the same end state (for reference: the ratios are taken
  against Torch-Pruning's pruning alone). The ``netstruct`` rows export the same
  model every round, so from the second round on the export replays the fx trace it kept
  (checked against the model; see ``docs/concepts/layers.md``); the ``netstruct, 1st`` rows drop
  that trace before each round, as a model's first export. Both tools are timed with one torch
  thread (``TIMING_THREADS``): on these tiny models intra-op threads only add wake-up waits,
  which on a loaded machine cost 10-100 ms per operation and hit the tool that runs more
  small operations (netstruct's export runs the model and checks the rebuilt module), so
  ratios at the default thread count measure the machine's load, not the tools.

A second table: the CNN+BN's shrunk inference time at batch 64 on CPU against the MAC ratio
(``bench_shrunk_inference.py``, which has the other architectures and deployment forms).

Run: ``python benchmarks/bench_torch_pruning.py`` (about a minute). Torch-Pruning is a benchmark
oracle only (the ``dev`` extra); netstruct never imports it.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

RATIOS = (0.3, 0.5)
#: netstruct timed as a model's first export: the fx trace an earlier export kept is dropped
#: before each round (the ``netstruct`` rows re-export the same model, which replays it)
FIRST = "netstruct, 1st"
#: the Torch-Pruning row timed with the ``copy.deepcopy`` that keeps the original model (its
#: pruning is in place; netstruct's leaves the model as it was and returns a new one)
TP_COPY = "tp + deepcopy"
ROUNDS = 5
#: torch threads while the pruning is timed (see the module docstring)
TIMING_THREADS = 1


# ---------------------------------------------------------------------- models
def _models() -> dict[str, tuple[Callable[[], Any], tuple[int, ...], list[tuple[str, ...]], str]]:
    """name -> (factory, input shape, [(module, coupled norm modules...) per hidden layer], head)."""
    import torch

    nn = torch.nn

    class ResCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 16, 3, padding=1)
            self.bn0 = nn.BatchNorm2d(16)
            self.conv1 = nn.Conv2d(16, 16, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(16)
            self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(16)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.bn0(self.stem(x)))
            y = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(x + self.bn2(self.conv2(y)))
            return self.fc(self.pool(x).flatten(1))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(16, 32)
            layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(self.encoder(self.embed(x)).mean(1))

    class Recurrent(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.rnn = cell(16, 32, batch_first=True)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    def mlp():
        return nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def cnn():
        return make_cnn(16)

    def res():
        m = ResCNN()
        _randomize_bn(m)
        return m

    return {
        "MLP": (mlp, (64,), [("0",), ("2",)], "4"),
        "CNN+BN": (cnn, (1, 28, 28), [("0", "1"), ("4", "5")], "9"),
        "ResCNN": (res, (1, 12, 12), [("stem", "bn0"), ("conv1", "bn1"), ("conv2", "bn2")], "fc"),
        "Transformer": (
            Transformer,
            (6, 16),
            [("embed",), ("encoder.layers.0.linear1",)],
            "fc",
        ),
        "LSTM": (lambda: Recurrent(nn.LSTM), (6, 16), [("rnn",)], "fc"),
        "GRU": (lambda: Recurrent(nn.GRU), (6, 16), [("rnn",)], "fc"),
    }


def make_cnn(width: int, side: int = 28, *, randomize_bn: bool = True) -> Any:
    """conv(width)-BN-ReLU-pool-conv(2 width)-BN-ReLU-pool-linear on side x side images.

    ``side`` is divisible by 4. ``randomize_bn`` gives the norms random statistics and affine
    parameters (an untrained model's are the identity, which would hide their slicing).
    """
    import torch

    nn = torch.nn
    m = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * width * (side // 4) ** 2, 10),
    )  # fmt: skip
    if randomize_bn:
        _randomize_bn(m)
    return m


def _randomize_bn(model: Any) -> None:
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------- netstruct side
def netstruct_plan(G: Any, layers: list[tuple[str, ...]], ratio: float) -> Any:
    """Remove ``ratio`` of each layer's units with the smallest incoming-parameter L2 norm.

    ``layers``: ``(root module, coupled norm modules...)``; the units are the root's weight
    rows (a recurrent unit's gate rows count together), each norm loses the same channels.
    """
    from netstruct.pruning import PruningPlan

    unit = G.node_column("unit")
    drop = np.zeros(G.n_nodes, dtype=bool)
    for root, *norms in layers:
        blocks = [b for b in G.blocks if b.name.rsplit(".", 1)[0] == root and b.kind == "weight"]
        units = np.unique(unit[blocks[0].targets])
        score = np.zeros(units.size)
        for b in blocks:
            P = b.parameter().reshape(b.shape[0], -1).astype(np.float64)
            np.add.at(score, np.searchsorted(units, unit[b.targets]), (P * P).sum(1))
        gone = units[np.argsort(score, kind="stable")[: int(round(ratio * units.size))]]
        drop[gone] = True
        for norm in norms:
            nb = G.block(f"{norm}.weight")
            drop[nb.targets[np.isin(nb.sources, gone)]] = True
    return PruningPlan.for_graph(G).remove_units(G, drop, reason=f"{ratio:.0%} by L2")


def run_structured(model: Any, x: Any, ratio: float) -> tuple[Any, Any]:
    """``((graph, plan), shrunk module)`` with netstruct's coupled groups (timed in the table).

    ``structured_prune(..., norm_width=True)`` removes ``ratio`` of every family of coupled
    groups (a residual stream's channels with every conv and norm on it, attention heads, a
    LayerNorm'd width), ranked by group magnitude: the parameter counts Torch-Pruning's
    dependency groups give on every model both prune.
    """
    import netstruct as ns

    G = ns.from_torch(model, x[:2])
    plan = ns.structured_prune(G, amount=ratio, norm_width=True)
    return (G, plan), ns.to_torch(ns.prune(G, plan, shrink=True))


def run_netstruct(
    model: Any, x: Any, layers: list[tuple[str, ...]], ratio: float
) -> tuple[Any, Any]:
    """``((graph, plan), shrunk module)``: export, plan, prune with shrink, rebuild (timed)."""
    import netstruct as ns

    G = ns.from_torch(model, x[:2])
    plan = netstruct_plan(G, layers, ratio)
    return (G, plan), ns.to_torch(ns.prune(G, plan, shrink=True))


# ---------------------------------------------------------------------- Torch-Pruning side
def run_tp(model: Any, x: Any, head: str, ratio: float) -> Any:
    """The Torch-Pruning pruner after one step on ``model`` (pruned in place)."""
    import torch_pruning as tp

    imp = tp.importance.MagnitudeImportance(p=2)
    pruner = tp.pruner.MetaPruner(
        model,
        x[:2],
        importance=imp,
        pruning_ratio=ratio,
        ignored_layers=[model.get_submodule(head)],
    )
    pruner.step()
    return pruner


def tp_masked(original: Any, x: Any, history: list) -> Any:
    """The dense model with every item of each recorded Torch-Pruning group zeroed."""
    import torch
    import torch_pruning as tp

    masked = copy.deepcopy(original)
    DG = tp.DependencyGraph().build_dependency(masked, example_inputs=x[:2])
    with torch.no_grad():
        for name, is_out, idxs in history:
            mod = masked.get_submodule(name)
            pruner = DG.get_pruner_of_module(mod)
            fn = pruner.prune_out_channels if is_out else pruner.prune_in_channels
            group = DG.get_pruning_group(mod, fn, idxs)
            for dep, ids in group:
                layer = dep.target.module
                out = DG.is_out_channel_pruning_fn(dep.handler)
                if not isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.BatchNorm2d)):
                    if isinstance(layer, (torch.nn.ReLU, torch.nn.MaxPool2d, torch.nn.Flatten)):
                        continue
                    if not list(layer.parameters(recurse=False)):
                        continue
                    raise TypeError(
                        f"tp_masked zeroes Linear/Conv2d/BatchNorm2d items only; group member "
                        f"{type(layer).__name__} has parameters it cannot mask"
                    )
                ids = list(ids)
                if out or isinstance(layer, torch.nn.BatchNorm2d):
                    layer.weight[ids] = 0
                    if layer.bias is not None:
                        layer.bias[ids] = 0
                else:
                    layer.weight[:, ids] = 0
    return masked


# ---------------------------------------------------------------------- comparison
def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:60] if str(exc) else ''}"


def compare(name: str, ratio: float, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    import torch

    import netstruct as ns

    factory, shape, layers, head = _models()[name]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(32, *shape)
    rows = []
    with torch.no_grad():
        y_dense = model(x)
    times: dict[str, list[float]] = {"netstruct": [], FIRST: [], "torch-pruning": []}
    with_copy: list[float] = []  # Torch-Pruning's rounds with their deepcopy
    results: dict[str, Any] = {}
    for _ in range(rounds):  # alternate the tools so load changes hit both alike
        for tool in times:
            try:
                if tool == FIRST:  # as if exported for the first time: nothing kept
                    from netstruct.convert.from_torch import forget_traces

                    forget_traces(model)
                t = time.perf_counter()
                if tool in ("netstruct", FIRST):
                    (G, plan), small = run_structured(model, x, ratio)
                    times[tool].append(time.perf_counter() - t)
                    results[tool] = (ns.to_torch(plan.apply(G)), small)  # masked: not timed
                else:
                    victim = copy.deepcopy(model)
                    t_copied = time.perf_counter()
                    pruner = run_tp(victim, x, head, ratio)
                    end = time.perf_counter()
                    times[tool].append(end - t_copied)  # the pruning alone
                    with_copy.append(end - t)
                    results[tool] = (pruner.DG.pruning_history(), victim.eval())
            except Exception as exc:  # noqa: BLE001 - the table records what fails
                results[tool] = exc
    for tool, res in results.items():
        row = {"model": name, "ratio": ratio, "tool": tool, "dense": n_params(model)}
        if isinstance(res, BaseException):
            row.update(status=_err(res))
            rows.append(row)
            continue
        first, small = res
        try:
            masked = first if tool in ("netstruct", FIRST) else tp_masked(model, x, first)
        except Exception as exc:  # noqa: BLE001
            masked = exc
        with torch.no_grad():
            try:
                y_small = small(x)
            except Exception as exc:  # noqa: BLE001
                row.update(status=f"pruned model fails: {_err(exc)}", params=n_params(small))
                row.update(time_min=min(times[tool]), time_med=statistics.median(times[tool]))
                rows.append(row)
                continue
            try:
                if isinstance(masked, BaseException):
                    raise masked
                diff = float((masked(x) - y_small).abs().max())
            except Exception as exc:  # noqa: BLE001
                diff = _err(exc)
        shrunk = n_params(small) < n_params(model)
        row.update(
            status="ok" if shrunk else "ok (nothing removed physically)",
            params=n_params(small),
            masked_vs_pruned=diff,
            vs_dense=float((y_small - y_dense).abs().max()),
            time_min=min(times[tool]),
            time_med=statistics.median(times[tool]),
        )
        rows.append(row)
    _add_ratios(rows, with_copy)
    return rows


def _add_ratios(rows: list[dict[str, Any]], with_copy: list[float]) -> None:
    """netstruct / Torch-Pruning time ratios on the netstruct rows, against Torch-Pruning's
    pruning alone, and a ``tp + deepcopy`` row with its times including the copy."""
    tp_row = next(r for r in rows if r["tool"] == "torch-pruning")
    for ns_row in rows:
        if ns_row is not tp_row and "time_min" in ns_row and "time_min" in tp_row:
            ns_row["ratio_min"] = ns_row["time_min"] / tp_row["time_min"]
            ns_row["ratio_med"] = ns_row["time_med"] / tp_row["time_med"]
    if with_copy and "time_min" in tp_row:
        rows.append({
            **tp_row, "tool": TP_COPY,
            "time_min": min(with_copy), "time_med": statistics.median(with_copy),
        })  # fmt: skip


# ---------------------------------------------------------------------- Hugging Face models
def _hf_models() -> dict[str, Any]:
    """name -> factory of (model, example input): the tiny configs of the HF test corpus."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tests" / "integration" / "test_hf_models.py"
    spec = importlib.util.spec_from_file_location("_hf_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return {
        "HF ResNet": mod._resnet,
        "HF ViT": mod._vit,
        "HF BERT": mod._bert,
        "HF GPT-2": mod._gpt2,
        "HF Llama (MHA)": lambda: (
            mod.tf.LlamaForCausalLM(mod.tf.LlamaConfig(**dict(mod._LLM, num_key_value_heads=4))),
            mod._ids(40),
        ),
        "HF Llama (GQA)": mod.MORE["llama"],
    }


TP_PROBE_S = 30.0  # how long Torch-Pruning may take to group a tiny LLM before it counts as hung
_TP_FINISHES: dict[tuple[str, int, int], bool] = {}


def _tp_llm_child(model: Any, x: Any, ratio: float) -> None:
    _run_tp_llm(model, x, ratio)


def _tp_llm_finishes(model: Any, x: Any, ratio: float) -> bool:
    """Whether Torch-Pruning's LLM recipe ends on this architecture, tried once in a forked
    process so an endless loop costs ``TP_PROBE_S`` seconds instead of the whole benchmark."""
    import multiprocessing as mp

    cfg = model.config
    key = (type(model).__name__, cfg.num_attention_heads, cfg.num_key_value_heads)
    if key not in _TP_FINISHES:
        child = mp.get_context("fork").Process(
            target=_tp_llm_child, args=(copy.deepcopy(model), x, ratio)
        )
        child.start()
        child.join(TP_PROBE_S)
        finished = not child.is_alive()
        if not finished:
            child.kill()
            child.join()
        _TP_FINISHES[key] = finished
    return _TP_FINISHES[key]


def _first(out: Any) -> Any:
    import torch

    return out if isinstance(out, torch.Tensor) else out[0]


def run_tp_llm(model: Any, x: Any, ratio: float) -> Any:
    """Torch-Pruning's recipe for decoder LLMs (its examples/LLMs/prune_llm.py): query heads
    and key/value heads by ``num_heads``, head dims kept (RoPE), ``lm_head`` ignored, then the
    attention modules' head counts patched. Its ``pruning_ratio`` also cuts the RMSNorm'd
    hidden width (so the function changes; netstruct's comparable row is ``norm_width``).

    With grouped-query attention (fewer key/value heads than query heads) Torch-Pruning 1.6's
    dependency graph never finishes grouping (an endless loop in
    ``_fix_dependency_graph_non_recursive``, reported upstream as VainF/Torch-Pruning#527); a
    forked probe detects it and the row records the failure instead of hanging.
    """
    cfg = model.config
    if cfg.num_key_value_heads < cfg.num_attention_heads and not _tp_llm_finishes(model, x, ratio):
        raise TimeoutError(
            f"no groups after {TP_PROBE_S:.0f} s on GQA (loops, VainF/Torch-Pruning#527)"
        )
    return _run_tp_llm(model, x, ratio)


def _run_tp_llm(model: Any, x: Any, ratio: float) -> Any:
    import torch_pruning as tp

    cfg = model.config
    att = [m for n, m in model.named_modules() if n.endswith("self_attn")]
    num_heads = {}
    for m in att:
        num_heads[m.q_proj] = cfg.num_attention_heads
        num_heads[m.k_proj] = num_heads[m.v_proj] = cfg.num_key_value_heads
    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean"),
        pruning_ratio=ratio,
        ignored_layers=[model.lm_head],
        num_heads=num_heads,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=ratio,
        output_transform=lambda out: out.logits,
    )
    pruner.step()
    for m in att:
        heads = m.q_proj.out_features // m.head_dim
        m.num_key_value_groups = heads // (m.k_proj.out_features // m.head_dim)
    return pruner


def run_tp_hf(model: Any, x: Any, ratio: float) -> Any:
    """Torch-Pruning's own recipe for HF transformers (examples/transformers/prune_hf_bert.py):
    heads grouped by ``num_heads``, pooler ignored, attention sizes patched after pruning."""
    import torch_pruning as tp

    if hasattr(getattr(model, "config", None), "num_key_value_heads"):
        return run_tp_llm(model, x, ratio)

    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    att = [m for m in model.modules() if hasattr(m, "query") and hasattr(m, "attention_head_size")]
    num_heads = {lin: heads for m in att for lin in (m.query, m.key, m.value)}
    ignored = [  # the pooler / LM head outputs stay whole (ResNet's pooler has no weights)
        m
        for n, m in model.named_modules()
        if n in ("pooler", "lm_head") and any(True for _ in m.parameters())
    ]
    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        num_heads=num_heads,
        prune_num_heads=bool(num_heads),
        prune_head_dims=False,
        head_pruning_ratio=ratio,
        ignored_layers=ignored,
        output_transform=_first,
    )
    pruner.step()
    for m in att:
        if hasattr(m, "num_attention_heads"):
            m.num_attention_heads = pruner.num_heads[m.query]
        m.attention_head_size = m.query.out_features // pruner.num_heads[m.query]
        m.all_head_size = m.query.out_features
    return pruner


def compare_hf(name: str, factory: Any, ratio: float, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    """netstruct's structured_prune vs Torch-Pruning on one HF model (each with its own ranking)."""
    import torch

    import netstruct as ns

    torch.manual_seed(0)
    model, x = factory()
    model.eval()
    times: dict[str, list[float]] = {"netstruct": [], FIRST: [], "torch-pruning": []}
    with_copy: list[float] = []  # Torch-Pruning's rounds with their deepcopy
    results: dict[str, Any] = {}
    for _ in range(rounds):
        for tool in times:
            try:
                if tool == FIRST:  # as if exported for the first time: fx fails, then the tape
                    from netstruct.convert.from_torch import forget_traces

                    forget_traces(model)
                t = time.perf_counter()
                if tool in ("netstruct", FIRST):
                    G = ns.from_torch(model, x)
                    plan = ns.structured_prune(G, amount=ratio)
                    small = ns.to_torch(ns.prune(G, plan, shrink=True))
                    times[tool].append(time.perf_counter() - t)
                    results[tool] = (ns.to_torch(plan.apply(G)), small)
                else:
                    victim = copy.deepcopy(model)
                    t_copied = time.perf_counter()
                    run_tp_hf(victim, x, ratio)
                    end = time.perf_counter()
                    times[tool].append(end - t_copied)  # the pruning alone
                    with_copy.append(end - t)
                    results[tool] = (None, victim.eval())
            except Exception as exc:  # noqa: BLE001 - the table records what fails
                results[tool] = exc
    rows = []
    for tool, res in results.items():
        row: dict[str, Any] = {"model": name, "ratio": ratio, "tool": tool}
        row["dense"] = n_params(model)
        if isinstance(res, BaseException):
            row.update(status=_err(res))
            rows.append(row)
            continue
        masked, small = res
        with torch.no_grad():
            try:
                y_small = _first(small(x))
            except Exception as exc:  # noqa: BLE001
                row.update(status=f"pruned model fails: {_err(exc)}", params=n_params(small))
                rows.append(row)
                continue
            diff = float((_first(masked(x)) - y_small).abs().max()) if masked is not None else None
        shrunk = n_params(small) < n_params(model)
        row.update(
            status="ok" if shrunk else "ok (nothing removed physically)",
            params=n_params(small),
            masked_vs_pruned=diff,
            time_min=min(times[tool]),
            time_med=statistics.median(times[tool]),
        )
        rows.append(row)
    _add_ratios(rows, with_copy)
    return rows


def compare_hf_norm_width(
    name: str, factory: Any, ratio: float, rounds: int = ROUNDS
) -> list[dict[str, Any]]:
    """netstruct with ``norm_width=True``: heads, FFN units and the hidden width at ``ratio``.

    The hidden width is what Torch-Pruning's HF recipe also prunes; compare the params with its
    row of the same model and ratio. Masked vs pruned: outputs of the hidden width (BERT's and
    ViT's last hidden state) are compared on the kept features (the masked model outputs 0 on
    the removed ones).
    """
    import torch

    import netstruct as ns

    torch.manual_seed(0)
    model, x = factory()
    model.eval()
    row: dict[str, Any] = {"model": name, "ratio": ratio, "tool": "netstruct+width"}
    row["dense"] = n_params(model)
    times = []
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            G = ns.from_torch(model, x)
            plan = ns.structured_prune(G, amount=ratio, norm_width=True)
            small = ns.to_torch(ns.prune(G, plan, shrink=True))
            times.append(time.perf_counter() - t)
        masked = ns.to_torch(plan.apply(G))
        with torch.no_grad():
            a, b = _first(masked(x)), _first(small(x))
        if a.shape != b.shape:  # the hidden width: compare the kept features
            a = a[..., a.abs().amax(dim=tuple(range(a.dim() - 1))) > 0]
        diff = float((a - b).abs().max()) if a.shape == b.shape else float("nan")
    except Exception as exc:  # noqa: BLE001 - the table records what fails
        row.update(status=_err(exc))
        return [row]
    row.update(
        status="ok",
        params=n_params(small),
        masked_vs_pruned=diff,
        time_min=min(times),
        time_med=statistics.median(times),
    )
    return [row]


def _fmt(v: Any, spec: str) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, str):
        return v
    return format(v, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'model':<12}{'ratio':>6}  {'tool':<14}{'params':>8}{'of dense':>9}{'masked-pruned':>15}"
        f"{'t_min s':>9}{'t_med s':>9}{'ns/tp min':>10}{'ns/tp med':>10}  status"
    )
    for r in rows:
        frac = r["params"] / r["dense"] if "params" in r else None
        diff, status = r.get("masked_vs_pruned"), r["status"]
        if isinstance(diff, str) and diff:  # no masked reference: say why after the status
            diff, status = "n/a", f"{status}; no masked reference ({r['masked_vs_pruned']})"
        print(
            f"{r['model']:<12}{r['ratio']:>6.0%}  {r['tool']:<14}{_fmt(r.get('params'), 'd'):>8}"
            f"{_fmt(frac, '.1%'):>9}{_fmt(diff, '.1e'):>15}"
            f"{_fmt(r.get('time_min'), '.4f'):>9}{_fmt(r.get('time_med'), '.4f'):>9}"
            f"{_fmt(r.get('ratio_min'), '.2f'):>10}{_fmt(r.get('ratio_med'), '.2f'):>10}  {status}"
        )


@contextlib.contextmanager
def _timing_threads(n: int = TIMING_THREADS) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` for the timed comparisons, then restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def main() -> None:
    with _timing_threads():
        rows = _side_by_side_rows()
    print_table(rows)
    import bench_shrunk_inference  # imports this module: not at the top

    bench_shrunk_inference.main((16, 64), ("pool",))


def _side_by_side_rows() -> list[dict[str, Any]]:
    rows = []
    for name in _models():
        for ratio in RATIOS:
            rows.extend(compare(name, ratio))
    try:
        import transformers  # noqa: F401

        for name, factory in _hf_models().items():
            for ratio in RATIOS:
                rows.extend(compare_hf(name, factory, ratio))
                if name != "HF ResNet":  # the residual stream's width (LayerNorm'd)
                    rows.extend(compare_hf_norm_width(name, factory, ratio))
    except ImportError:
        print("transformers is not installed: the Hugging Face rows are left out")
    return rows


def test_side_by_side_table():
    import pytest

    pytest.importorskip("torch_pruning")
    main()


if __name__ == "__main__":
    main()
