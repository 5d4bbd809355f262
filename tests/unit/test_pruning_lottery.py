"""Concave-regularised masks and IMP: the spec's known-answer tests T1-T10."""

from __future__ import annotations

import numpy as np
import pytest

from netstruct.exceptions import InvalidParameterError
from netstruct.pruning import projected_step, regularizer, topk_mask

REGS = [
    regularizer("l1"),
    regularizer("log", eps=0.1),
    regularizer("lq", q=0.5, delta=0.01),
    regularizer("exp", sigma=0.25),
]


# ---------------------------------------------------------------- T1 regularisers
@pytest.mark.parametrize(
    "reg,values",
    [
        (
            regularizer("log", eps=0.1),
            {"scale": 0.4170324, "g0": 4.170324, "g1": 0.3791204, "r05": 0.7472217},
        ),
        (regularizer("log", eps=0.01), {"scale": 0.216679, "g0": 21.66791, "g1": 0.214534}),
        (regularizer("log", eps=1.0), {"scale": 1.442695, "g0": 1.442695, "g1": 0.721348}),
        (
            regularizer("lq", q=0.5, delta=0.01),
            {"scale": 1.1049876, "g0": 5.524938, "g1": 0.549752, "g025": 1.083529},
        ),
    ],
)
def test_t1_reference_values(reg, values):
    assert reg.scale == pytest.approx(values["scale"], abs=1e-6)
    assert reg.grad(0.0) == pytest.approx(values["g0"], abs=1e-5)
    assert reg.grad(1.0) == pytest.approx(values["g1"], abs=1e-6)
    if "r05" in values:
        assert reg.value(0.5) == pytest.approx(values["r05"], abs=1e-6)
    if "g025" in values:
        assert reg.grad(0.25) == pytest.approx(values["g025"], abs=1e-6)


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
def test_t1_normalised_and_concave(reg):
    m = np.linspace(0, 1, 201)
    assert reg.value(0.0) == pytest.approx(0.0, abs=1e-12) and reg.value(1.0) == pytest.approx(
        1.0, abs=1e-12
    )
    assert np.all(np.diff(reg.grad(m)) <= 1e-12)
    h = 1e-6  # the derivative is the derivative
    np.testing.assert_allclose(
        (reg.value(m[1:-1] + h) - reg.value(m[1:-1] - h)) / (2 * h), reg.grad(m[1:-1]), rtol=1e-5
    )


def test_t1_log_with_huge_eps_is_l1():
    m = np.linspace(0, 1, 11)
    log = regularizer("log", eps=1e6)
    np.testing.assert_allclose(log.value(m), m, atol=1e-5)
    np.testing.assert_allclose(log.grad(m), 1.0, atol=1e-5)


def test_regularizer_rejects_bad_parameters():
    with pytest.raises(InvalidParameterError, match="'eps' parameter of regularizer"):
        regularizer("log", eps=0.0)
    with pytest.raises(InvalidParameterError, match="'name'"):
        regularizer("l0")


# ---------------------------------------------------------------- T2 projection
@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
def test_t2_projection_keeps_gates_in_box(reg, rng):
    m = rng.uniform(size=500)
    m[:50] = 1.0
    alive = (rng.uniform(size=500) > 0.2).astype(float)
    g = rng.choice([-1e3, 1e3], size=500)
    g[:50] = -1e3
    out = projected_step(m, g, reg=reg, lam=0.1, eta=1.0, alive=alive)
    assert out.min() >= 0 and out.max() <= 1
    assert np.all(out[alive == 0] == 0)
    assert np.all(out[:50][alive[:50] == 1] == 1.0)


@pytest.mark.torch
def test_t2_torch_step_is_in_place():
    torch = pytest.importorskip("torch")
    m = torch.ones(4)
    out = projected_step(
        m,
        torch.tensor([5.0, -5.0, 0.0, 1e3]),
        reg=regularizer("log"),
        lam=0.1,
        eta=1.0,
        alive=torch.tensor([1.0, 1.0, 0.0, 1.0]),
    )
    assert out is m and m.tolist() == [0.0, 1.0, 0.0, 0.0]


def _scalar(target, reg, steps=2000, m=1.0):
    for _ in range(steps):
        m = float(
            projected_step(np.array([m]), np.array([m - target]), reg=reg, lam=0.1, eta=0.5)[0]
        )
    return m


# ---------------------------------------------------------------- T3-T5 scalar examples
def test_t3_scalar_support_example():
    assert _scalar(1.0, regularizer("l1")) == pytest.approx(0.9, abs=1e-6)
    eps, lam = 0.1, 0.1
    c = regularizer("log", eps=eps).scale
    u = ((1 + eps) - np.sqrt((1 + eps) ** 2 - 4 * lam * c)) / 2
    assert 1 - u == pytest.approx(0.9606826, abs=1e-6)
    assert _scalar(1.0, regularizer("log", eps=eps)) == pytest.approx(0.9606826, abs=1e-6)


def test_t4_fractional_pull_binarises_under_log():
    assert _scalar(0.3, regularizer("l1")) == pytest.approx(0.2, abs=1e-6)
    assert _scalar(0.3, regularizer("log", eps=0.1)) == 0.0


def test_t5_sticky_zero():
    g = np.array([-0.2])
    assert projected_step(np.zeros(1), g, reg=regularizer("l1"), lam=0.1, eta=1.0)[0] > 0
    assert projected_step(np.zeros(1), g, reg=regularizer("log", eps=0.1), lam=0.1, eta=1.0)[0] == 0


# ---------------------------------------------------------------- T6 convex planted mask
def _planted(seed, sigma, lam, reg):
    r = np.random.default_rng(seed)
    n, d, k = 80, 200, 20
    A = r.normal(0, np.sqrt(1 / n), size=(n, d))
    theta = r.choice([-1, 1], size=d) * r.uniform(0.5, 1.5, size=d)
    B = A * theta
    truth = np.zeros(d)
    truth[r.choice(d, k, replace=False)] = 1.0
    y = B @ truth + sigma * r.normal(size=n)
    step = 1.0 / np.linalg.norm(B, 2) ** 2
    m = np.ones(d)
    for _ in range(3000):
        m = projected_step(m, B.T @ (B @ m - y), reg=reg, lam=lam, eta=step)
    return np.linalg.norm(m - truth), bool(np.array_equal(m > 0.5, truth > 0.5))


def test_t6_concave_penalty_recovers_planted_support_more_exactly():
    l1 = [_planted(s, 0.0, 0.01, regularizer("l1")) for s in range(10)]
    log = [_planted(s, 0.0, 0.01, regularizer("log", eps=0.1)) for s in range(10)]
    assert np.mean([e for e, _ in log]) < 0.5 * np.mean([e for e, _ in l1])
    assert sum(ok for _, ok in l1) >= 9 and sum(ok for _, ok in log) >= 9
    l1n = [_planted(s, 0.05, 0.01, regularizer("l1"))[1] for s in range(10)]
    logn = [_planted(s, 0.05, 0.01, regularizer("log", eps=0.1))[1] for s in range(10)]
    assert sum(logn) >= sum(l1n)


# ---------------------------------------------------------------- T7 budget
def test_t7_topk_is_exact_and_deterministic(rng):
    m = {"a": rng.uniform(size=(30, 20)), "b": rng.uniform(size=(10, 7))}
    m["a"][0, :5] = 0.5  # ties
    m["b"][0, :5] = 0.5
    keep = topk_mask(m, 0.37)
    d = 30 * 20 + 10 * 7
    assert sum(int(v.sum()) for v in keep.values()) == round(0.37 * d)
    kept = np.concatenate([m[k][keep[k]] for k in m])
    dropped = np.concatenate([m[k][~keep[k]] for k in m])
    assert kept.min() >= dropped.max()
    again = topk_mask(m, 0.37)
    assert all(np.array_equal(keep[k], again[k]) for k in m)
    per = topk_mask(m, 0.5, scope="layer")
    assert int(per["a"].sum()) == 300 and int(per["b"].sum()) == 35
    with pytest.raises(InvalidParameterError, match="'keep' parameter of topk_mask"):
        topk_mask(m, 1.2)
