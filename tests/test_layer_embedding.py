"""Embedding: spec, kernels and twin together, torch.nn.Embedding, and the ids it refuses."""

import numpy as np
import pytest
from kind_checks import check_finite_differences, check_torch, check_twin, rel_err

import fastbp as fb

CONFIGS = {  # name -> (layers, input_shape)
    "then-flatten-dense": (lambda **kw: [fb.Embedding(11, 4, **kw), fb.Flatten(),
                                         fb.Dense(20, 3)], (5,)),
    "then-lstm": (lambda **kw: [fb.Embedding(11, 4, **kw), fb.LSTM(4, 6), fb.Dense(6, 3)], (5,)),
    "then-layernorm": (lambda **kw: [fb.Embedding(11, 4, **kw), fb.LayerNorm(4), fb.Flatten(),
                                     fb.Dense(20, 3)], (5,)),
}
OPTIONS = {"default": {}, "padding": {"padding_idx": 0}, "padding-from-end": {"padding_idx": -1}}


def build(config, options="default", dtype="float64", loss="mse"):
    make, shape = CONFIGS[config]
    return fb.Network(make(**OPTIONS[options]), input_shape=shape, loss=loss, dtype=dtype, seed=1)


# (with padding_idx the padding row's gradient is zero by definition, as torch's, though the
# output depends on that row: test_padding_row_is_zero_and_never_updated and torch cover it)
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_finite_differences(config):
    check_finite_differences(build(config), n=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_twin_agrees(config, dtype):
    check_twin(build(config, "padding", dtype=dtype), n=4)


@pytest.mark.parametrize("options", sorted(OPTIONS))
def test_padding_row_is_zero_and_never_updated(options):
    net = build("then-flatten-dense", options, loss="cross_entropy")
    emb = net.layers[0]
    X = np.random.default_rng(0).integers(0, 11, (16, 5))
    X[:, 0] = 0
    X[:, 1] = 10
    opt = fb.Adam(lr=0.1, weight_decay=0.1)
    for _ in range(3):
        net.train_step(X, np.arange(16) % 3, opt)
    padding = emb.padding_idx
    if padding is None:
        assert np.abs(emb.weight[[0, 10]]).min() > 0
    else:
        assert padding == (0 if options == "padding" else 10)
        np.testing.assert_array_equal(emb.weight[padding], 0.0)
        _, grad = net.loss_and_grad(X, np.zeros((16, 3)) if net.loss == "mse" else np.arange(16) % 3)
        np.testing.assert_array_equal(grad[: emb.weight.size].reshape(11, 4)[padding], 0.0)


def test_rows_not_in_the_batch_get_no_gradient():
    net = build("then-flatten-dense")
    X = np.array([[1, 2, 2, 3, 1]] * 2)
    _, grad = net.loss_and_grad(X, np.ones((2, 3)))
    table = grad[:44].reshape(11, 4)
    assert np.abs(table[[1, 2, 3]]).min() > 0
    np.testing.assert_array_equal(np.delete(table, [1, 2, 3], axis=0), 0.0)


def test_any_integer_dtype_gives_the_same_output():
    net = build("then-lstm")
    X = np.random.default_rng(2).integers(0, 11, (4, 5))
    out = net.forward(X)
    for dtype in (np.int8, np.uint16, np.int32):
        np.testing.assert_array_equal(net.forward(X.astype(dtype)), out)


@pytest.mark.parametrize("X,exc,text", [
    (np.full((2, 5), 1.0), TypeError,
     r"X must hold integer token ids for Embedding \(layers\[0\]\), got dtype float64"),
    (np.array([[1, 2, 3, 4, 5], [1, 2, 11, 4, 5]]), ValueError, r"X row 1 holds id 11, outside 0..10"),
    (np.array([[1, 2, 3, 4, -1], [1, 2, 3, 4, 5]]), ValueError, r"X row 0 holds id -1"),
], ids=["float-ids", "id-too-large", "negative-id"])
def test_bad_ids_are_named_and_change_nothing(X, exc, text):
    net = build("then-flatten-dense")
    before = net.params.copy()
    for call in (lambda: net.train_step(X, np.zeros((2, 3)), fb.SGD(lr=0.1)),
                 lambda: net.predict(X),
                 lambda: net.fit(X, np.zeros((2, 3)), epochs=1, verbose=0)):
        with pytest.raises(exc, match=text):
            call()
    with pytest.raises(exc, match="validation_data: " + text):
        net.fit(np.ones((2, 5), np.int64), np.zeros((2, 3)), epochs=1, verbose=0,
                validation_data=(X, np.zeros((2, 3))))
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("make,exc,text", [
    (lambda: fb.Embedding(0, 4), ValueError, "num_embeddings"),
    (lambda: fb.Embedding(5, 4, padding_idx=5), ValueError, r"padding_idx must be an int in \[-5, 5\)"),
    (lambda: fb.Network([fb.Embedding(5, 4), fb.Flatten(), fb.Dense(8, 2)], input_shape=(2, 1)),
     ValueError, r"Embedding takes T ids per sample"),
], ids=["size", "padding", "shape"])
def test_bad_specs(make, exc, text):
    with pytest.raises(exc, match=text):
        make()


def test_initialised_as_torch_and_saved_with_its_padding(tmp_path):
    net = fb.Network([fb.Embedding(300, 50, padding_idx=3), fb.Flatten(), fb.Dense(100, 2)],
                     input_shape=(2,), seed=0)
    weight = net.layers[0].weight
    assert abs(weight.mean()) < 0.01 and abs(weight.std() - 1.0) < 0.01  # N(0, 1)
    fb.save(net, tmp_path / "m.npz")
    loaded = fb.load(tmp_path / "m.npz")
    assert loaded.layers[0].padding_idx == 3
    np.testing.assert_array_equal(loaded.params, net.params)


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("options", ["default", "padding"])
def test_torch_embedding(options):
    torch = pytest.importorskip("torch")
    net = build("then-flatten-dense", options)
    emb, dense = net.layers[0], net.layers[2]
    t_emb = torch.nn.Embedding(11, 4, padding_idx=emb.padding_idx).double()
    lin = torch.nn.Linear(20, 3).double()
    with torch.no_grad():
        t_emb.weight.copy_(torch.from_numpy(emb.weight.copy()))
        lin.weight.copy_(torch.from_numpy(dense.W.T.copy()))
        lin.bias.copy_(torch.from_numpy(dense.b.copy()))
    grad_k, grad_t = check_torch(net, torch.nn.Sequential(t_emb, torch.nn.Flatten(), lin))
    assert rel_err(grad_k[:44], grad_t[:44]) <= 1e-10


@pytest.mark.slow  # imports torch
def test_to_and_from_torch_round_trip():
    pytest.importorskip("torch")
    net = build("then-flatten-dense", "padding")
    module = net.to_torch()
    back = fb.Network.from_torch(module, input_shape=(5,), loss="mse", dtype="float64")
    assert back.layers[0].padding_idx == 0
    X = np.random.default_rng(4).integers(0, 11, (3, 5))
    np.testing.assert_allclose(back.forward(X), net.forward(X), rtol=1e-12)


@pytest.mark.slow  # imports onnxruntime
def test_onnx_gather_matches_forward(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = build("then-layernorm", dtype="float32")
    net.to_onnx(tmp_path / "m.onnx")
    X = np.random.default_rng(5).integers(0, 11, (3, 5))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": X.astype(np.float32)})
    np.testing.assert_allclose(out, net.forward(X), rtol=1e-5, atol=1e-6)
