"""Dropout: spec, kernels and twin together; the twin draws the kernel's masks."""

import numpy as np
import pytest
from kind_checks import check_finite_differences, check_twin

import fastbp as fb


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_twin_agrees_in_training_mode_p_dtype(p, dtype):
    net = fb.Network([fb.Dense(4, 6, activation="relu"), fb.Dropout(p), fb.Dense(6, 3)],
                     dtype=dtype, seed=3)
    check_twin(net, n=5)


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_finite_differences_through_one_mask_position(position):
    layers = {"first": [fb.Dropout(0.4), fb.Dense(4, 3)],
              "middle": [fb.Dense(4, 5, activation="tanh"), fb.Dropout(0.4), fb.Dense(5, 3)],
              "last": [fb.Dense(4, 3), fb.Dropout(0.4)]}[position]
    net = fb.Network(layers, input_shape=(4,), loss="mse", dtype="float64", seed=4)
    check_finite_differences(net, n=4)


def test_keeps_any_shape_and_is_identity_in_evaluation_mode():
    net = fb.Network([fb.Dropout(0.5), fb.Dropout(0.1)], input_shape=(2, 3), loss="mse",
                     dtype="float64")
    assert net.layers[0].output_shape == (2, 3)
    X = np.random.default_rng(0).normal(size=(3, 2, 3))
    assert np.array_equal(net.forward(X), X.reshape(3, 6))  # evaluation mode: the identity
    assert net.layers[0].scratch_per_sample() == 6  # the mask


@pytest.mark.parametrize("p,exc", [(1.0, ValueError), (-0.1, ValueError), ("0.5", TypeError)])
def test_refuses_bad_p(p, exc):
    with pytest.raises(exc, match="p must be"):
        fb.Dropout(p)
