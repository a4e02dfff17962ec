"""Every loss (fastbp.losses) against central differences and its numpy twin, against
torch's loss modules with their settings (slow), and the settings' checks and round trip."""

from __future__ import annotations

import numpy as np
import pytest
from kind_checks import check_finite_differences, check_twin, data_for, rel_err

import fastbp as fb

CASES = {  # name: Network keyword arguments
    "huber_delta_0.5": {"loss": "huber", "huber_delta": 0.5},
    "huber_delta_2": {"loss": "huber", "huber_delta": 2.0},
    "l1": {"loss": "l1"},
    "cross_entropy_smoothing_0.1": {"loss": "cross_entropy", "label_smoothing": 0.1},
    "cross_entropy_smoothing_1": {"loss": "cross_entropy", "label_smoothing": 1.0},
}


def _net(kwargs, dtype="float64", seed=0):
    return fb.Network([fb.Dense(4, 6, "tanh"), fb.Dense(6, 3)], dtype=dtype, seed=seed, **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_finite_differences_loss(case):
    check_finite_differences(_net(CASES[case]), n=4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_twin_agrees_loss_dtype(case, dtype):
    check_twin(_net(CASES[case], dtype), n=6)


def test_settings_are_checked_and_name_the_argument():
    with pytest.raises(ValueError, match="label_smoothing applies to loss='cross_entropy'"):
        _net({"loss": "mse", "label_smoothing": 0.1})
    with pytest.raises(ValueError, match="huber_delta must be positive, got 0"):
        _net({"loss": "huber", "huber_delta": 0})
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        _net({"label_smoothing": 1.5})
    with pytest.raises(ValueError, match="loss must be one of .*'huber', 'l1'"):
        _net({"loss": "hinge"})


def test_settings_survive_save_and_load(tmp_path):
    net = _net({"loss": "huber", "huber_delta": 0.25})
    fb.save(net, tmp_path / "m.npz")
    back = fb.load(tmp_path / "m.npz")
    assert (back.loss, back.huber_delta) == ("huber", 0.25)
    X, y = data_for(net, 5)
    assert back.loss_and_grad(X, y)[0] == net.loss_and_grad(X, y)[0]


def test_regression_losses_report_regression_metrics():
    net = _net({"loss": "l1"})
    X, y = data_for(net, 20)
    scores = net.evaluate(X, y, metrics=["mae"])
    assert "accuracy" not in scores and scores["mae"] >= 0


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_loss(case):
    torch = pytest.importorskip("torch")
    kwargs = CASES[case]
    net = _net(kwargs)
    X, y = data_for(net, 7)
    module = net.to_torch().double()
    out = module(torch.from_numpy(X))
    target = torch.from_numpy(y)
    if kwargs["loss"] == "huber":
        loss = torch.nn.HuberLoss(delta=kwargs["huber_delta"])(out, target)
    elif kwargs["loss"] == "l1":
        loss = torch.nn.L1Loss()(out, target)
    else:
        loss = torch.nn.CrossEntropyLoss(label_smoothing=kwargs["label_smoothing"])(out, target)
    loss.backward()
    loss_k, grad_k = net.loss_and_grad(X, y)
    assert abs(loss_k - loss.item()) <= 1e-12 * abs(loss.item())
    grad_t = np.concatenate([np.concatenate([lin.weight.grad.numpy().T.ravel(),
                                             lin.bias.grad.numpy()])
                             for lin in module if isinstance(lin, torch.nn.Linear)])
    assert rel_err(grad_k, grad_t) <= 1e-10
