"""Learning-rate schedules: torch.optim.lr_scheduler semantics, checked against closed forms
and, where installed, torch itself."""

import math

import pytest

import fastbp as fb


def lrs(scheduler, epochs):
    out = []
    for _ in range(epochs):
        out.append(scheduler.optimizer.lr)
        scheduler.step()
    return out


def test_step_lr_closed_form():
    opt = fb.SGD(lr=0.1)
    got = lrs(fb.StepLR(opt, step_size=3, gamma=0.5), 10)
    assert got == pytest.approx([0.1 * 0.5 ** (e // 3) for e in range(10)], rel=1e-12)


def test_exponential_lr_closed_form():
    opt = fb.Adam(lr=0.01)
    got = lrs(fb.ExponentialLR(opt, gamma=0.9), 12)
    assert got == pytest.approx([0.01 * 0.9**e for e in range(12)], rel=1e-12)


def test_cosine_annealing_closed_form_over_two_periods():
    opt = fb.SGD(lr=0.2)
    T, eta = 5, 0.01
    got = lrs(fb.CosineAnnealingLR(opt, T_max=T, eta_min=eta), 2 * T + 1)
    expected = [eta + (0.2 - eta) * (1 + math.cos(math.pi * e / T)) / 2 for e in range(2 * T + 1)]
    # the recursive form accumulates rounding; 1e-9 is still far below any real deviation
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_reduce_on_plateau():
    opt = fb.SGD(lr=1.0)
    sched = fb.ReduceLROnPlateau(opt, factor=0.5, patience=2, min_lr=0.2)
    seen = []
    for metric in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]:
        sched.step(metric)
        seen.append(opt.lr)
    # the 3rd bad epoch after the best (0.9) halves the lr; again 3 later; then min_lr holds
    assert seen == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2]


def test_scheduler_validation():
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        fb.ReduceLROnPlateau(fb.SGD(), factor=1.5)
    with pytest.raises(TypeError, match="fastbp optimizer"):
        fb.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="step_size"):
        fb.StepLR(fb.SGD(), step_size=0)


@pytest.mark.parametrize("make", [
    lambda o, m: m.StepLR(o, step_size=2, gamma=0.3),
    lambda o, m: m.ExponentialLR(o, gamma=0.8),
    lambda o, m: m.CosineAnnealingLR(o, T_max=4, eta_min=0.001),
], ids=["StepLR", "ExponentialLR", "CosineAnnealingLR"])
def test_matches_torch(make):
    torch = pytest.importorskip("torch")
    t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    t_sched = make(t_opt, torch.optim.lr_scheduler)
    ours = make(fb.SGD(lr=0.1), fb)
    for _ in range(13):
        assert ours.optimizer.lr == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-12)
        t_opt.step()
        t_sched.step()
        ours.step()


def test_reduce_on_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    t_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, patience=1, factor=0.3,
                                                         cooldown=1, threshold=0.05)
    opt = fb.SGD(lr=0.1)
    ours = fb.ReduceLROnPlateau(opt, patience=1, factor=0.3, cooldown=1, threshold=0.05)
    for metric in [5, 4, 3.9, 3.95, 3.9, 2, 2, 2, 2, 1.99, 1.5, 1.5, 1.5]:
        t_sched.step(metric)
        ours.step(metric)
        assert opt.lr == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-12)
