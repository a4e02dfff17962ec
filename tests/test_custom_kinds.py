"""Layer kinds and losses defined outside fastbp (tests/custom_kinds.py, as a user writes
them): they pass fb.testing.check_layer / check_loss, train, save and load, split over
threads, sit in scikit-learn estimators and cross to torch and ONNX through their own hooks;
the package refuses incomplete or clashing kinds with messages that say what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import custom_kinds
import numpy as np
import pytest
from custom_kinds import Affine, WrongAffine, affine_mlp, torch_affine

import fastbp as fb
from fastbp import _engine as network_module
from fastbp.layers import LAYER_TYPES
from fastbp.testing import data_for, rel_err

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("input_shape", [(4,), (3, 4)], ids=["flat", "sequence"])
def test_check_layer_passes_an_out_of_tree_kind(input_shape):
    fb.testing.check_layer(Affine(4), input_shape)


def test_check_layer_catches_a_wrong_gradient():
    with pytest.raises(AssertionError, match="central differences"):
        fb.testing.check_layer(WrongAffine(4), (4,))


def test_the_kind_trains_and_its_loss_falls():
    net = affine_mlp(dtype="float32")
    X, _ = data_for(net, 64)
    y = X[:, :3].argmax(axis=1)  # a rule the network can learn
    history = net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_save_load_and_a_file_whose_kind_is_not_imported(tmp_path, monkeypatch):
    net = affine_mlp()
    fb.save(net, tmp_path / "m.npz")
    back = fb.load(tmp_path / "m.npz")
    X, _ = data_for(net, 5)
    assert np.array_equal(back.forward(X), net.forward(X))
    assert net.get_config()["layers"][0]["module"] == "custom_kinds"
    monkeypatch.delitem(LAYER_TYPES, "Affine")  # as in a process that never imported it
    with pytest.raises(ValueError, match="'Affine' is defined in module 'custom_kinds', which is "
                                         "not imported: import custom_kinds before loading"):
        fb.load(tmp_path / "m.npz")


def _split_matches_whole(make, X, y, monkeypatch) -> None:
    """``make()``'s gradient on (X, y) split over two threads equals the whole batch's, to
    float32 summation order."""
    monkeypatch.setattr(network_module, "SPLIT_MIN_WORK", 1)  # split any batch of 4 rows
    results = []
    for threads in (2, 1):
        fb.set_num_threads(threads)
        try:
            net = make()
            assert (net.engine.parts(X.shape[0]) is not net.engine.no_parts) == (threads == 2)
            results.append(net.loss_and_grad(X, y))
        finally:
            fb.set_num_threads(None)
    (loss, grad), (whole_loss, whole_grad) = results
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    np.testing.assert_allclose(grad, whole_grad, rtol=1e-5, atol=1e-6)


def test_a_batch_split_over_threads_matches_the_whole_batch(monkeypatch):
    X, y = data_for(affine_mlp(dtype="float32"), 21)
    _split_matches_whole(lambda: affine_mlp(dtype="float32"), X, y, monkeypatch)


def test_the_kind_in_a_scikit_learn_estimator():
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    from fastbp.sklearn import NeuralNetClassifier

    X, y = data_for(affine_mlp(), 60)
    model = NeuralNetClassifier(layers=[Affine(6), fb.Dense(6, 8, "relu"), fb.Dense(8, 3)],
                                input_shape=(6,), epochs=3, random_state=0)
    scores = cross_val_score(clone(model), X.astype(np.float32), y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_a_kind_without_a_compiled_pair_is_refused_when_defined():
    with pytest.raises(TypeError, match="Half.kernels must have a forward and a backward"):
        class Half(fb.Layer):
            kernels = fb.LayerKernels(lambda args: None, None)


def test_a_kind_may_not_take_a_name_another_module_uses():
    with pytest.raises(TypeError, match="a layer kind named 'Dense' exists in fastbp"):
        class Dense(Affine):
            pass
    assert LAYER_TYPES["Dense"] is fb.Dense
    namespace = {"__name__": "elsewhere"}
    with pytest.raises(TypeError, match="'Affine' exists in module custom_kinds"):
        exec("import fastbp as fb\nclass Affine(fb.Layer):\n    pass", namespace)
    assert LAYER_TYPES["Affine"] is Affine


def test_a_file_naming_another_module_for_a_known_name_is_refused(tmp_path, monkeypatch):
    net = affine_mlp()
    config = net.get_config()
    config["layers"][0]["module"] = "somewhere_else"
    with pytest.raises(ValueError, match="'Affine' is defined in module 'somewhere_else'"):
        fb.Network.from_config(config)
    config["layers"][0]["module"] = "__main__"
    with pytest.raises(ValueError, match="a script: define the kind in a module"):
        fb.Network.from_config(config)


def test_kernels_typed_at_a_prompt_compile_without_a_cache():
    namespace: dict = {}
    exec("import fastbp as fb\n@fb.kernel\ndef double(z):\n    return 2.0 * z", namespace)
    assert namespace["double"](1.5) == 3.0


@pytest.mark.slow
def test_torch_and_onnx_through_the_kinds_hooks(tmp_path):
    torch = pytest.importorskip("torch")
    net = affine_mlp()
    X, _ = data_for(net, 5)
    module = net.to_torch()
    assert isinstance(module[0], torch_affine())
    out = module(torch.from_numpy(X)).detach().numpy()
    assert rel_err(out, net.forward(X)) <= 1e-12
    back = fb.Network.from_torch(module, input_shape=(6,), dtype="float64")
    assert isinstance(back.layers[0], Affine) and np.array_equal(back.params, net.params)
    ort = pytest.importorskip("onnxruntime")
    net.to_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert rel_err(session.run(None, {"input": X})[0], net.forward(X)) <= 1e-12


def test_the_example_runs_from_outside_the_source_tree(tmp_path):
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_layer.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "trained, saved and loaded" in proc.stdout
    assert len((ROOT / "examples" / "custom_layer.py").read_text().splitlines()) < 80


# -- a loss registered outside fastbp (custom_kinds.py's log_cosh) ---------------------------
def test_check_loss_passes_an_out_of_tree_loss():
    fb.testing.check_loss("log_cosh")


def test_check_loss_catches_a_twin_that_disagrees(monkeypatch):
    from fastbp import losses

    good = losses.LOSSES["log_cosh"]
    monkeypatch.setitem(losses.LOSSES, "log_cosh", good._replace(
        twin=lambda o, t: (good.twin(o, t)[0], 2 * good.twin(o, t)[1])))
    with pytest.raises(AssertionError, match="gradient"):
        fb.testing.check_loss("log_cosh")


def test_the_loss_trains_saves_loads_and_splits(tmp_path, monkeypatch):
    net = fb.Network([fb.Dense(4, 8, activation="tanh"), fb.Dense(8, 2)], loss="log_cosh",
                     seed=0)
    X, _ = data_for(net, 64)
    y = np.stack([X[:, 0] - X[:, 1], X[:, 2]], axis=1)
    history = net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=20, batch_size=16, verbose=0,
                      metrics=["mae"])
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert "mae" in history.history  # a regression loss: the regression metrics apply
    fb.save(net, tmp_path / "m.npz")
    assert np.array_equal(fb.load(tmp_path / "m.npz").predict(X), net.predict(X))
    trained = net.params.copy()

    def make():
        again = fb.Network([fb.Dense(4, 8, activation="tanh"), fb.Dense(8, 2)], loss="log_cosh")
        again.params = trained
        return again

    _split_matches_whole(make, X, y, monkeypatch)


def test_a_file_whose_loss_is_not_registered_says_how_to_load_it(tmp_path, monkeypatch):
    from fastbp import losses

    net = fb.Network([fb.Dense(3, 2)], loss="log_cosh")
    fb.save(net, tmp_path / "m.npz")
    monkeypatch.delitem(losses.LOSSES, "log_cosh")  # as in a process that never registered it
    with pytest.raises(ValueError, match="must first be registered: fastbp.register_loss"):
        fb.load(tmp_path / "m.npz")


def test_the_loss_in_a_scikit_learn_regressor():
    from sklearn.model_selection import cross_val_score

    from fastbp.sklearn import NeuralNetRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = X[:, 0] - 2 * X[:, 1]
    scores = cross_val_score(NeuralNetRegressor(loss="log_cosh", epochs=3, random_state=0),
                             X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_a_loss_must_be_compiled_and_not_shadow_a_built_in():
    with pytest.raises(ValueError, match="built-in loss"):
        fb.register_loss("mse", custom_kinds.log_cosh_row, custom_kinds.log_cosh_twin)
    with pytest.raises(TypeError, match="row must be compiled with fastbp.kernel"):
        fb.register_loss("plain", lambda o, t, d: 0.0, custom_kinds.log_cosh_twin)


@pytest.mark.slow
def test_the_loss_equals_its_torch_definition_under_autograd():
    torch = pytest.importorskip("torch")
    net = fb.Network([fb.Dense(4, 3)], loss="log_cosh", dtype="float64", seed=0)
    X, y = data_for(net, 6)
    loss, grad = net.loss_and_grad(X, y)
    module = net.to_torch().double()
    out = module(torch.from_numpy(X))
    reference = custom_kinds.log_cosh_torch(out, torch.from_numpy(y))
    reference.backward()
    torch_grad = np.concatenate([module[0].weight.grad.numpy().T.ravel(),
                                 module[0].bias.grad.numpy()])
    assert loss == pytest.approx(float(reference), rel=1e-12)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-10, atol=1e-12)
