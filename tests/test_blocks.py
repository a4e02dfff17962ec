"""Skip connections: fb.Residual and fb.Concat blocks, nested, around every kind of layer.
Gradients against finite differences, the numpy twin and torch autograd (its weights copied
through to_torch, its gradients read back through from_torch); save/load; a split step
equals the whole one; interop round trips and ONNX Runtime; the errors; and why users want
them (a deep tanh MLP trains only with residual blocks)."""

import copy
import pickle

import numpy as np
import pytest
from kind_checks import check_twin, rel_err

import fastbp as fb
from fastbp import reference


def conv_block(c_in, c, stride):
    """torchvision's BasicBlock."""
    return fb.Residual(
        [fb.Conv2D(c_in, c, 3, stride=stride, padding=1), fb.BatchNorm2D(c),
         fb.Activation("relu"), fb.Conv2D(c, c, 3, padding=1), fb.BatchNorm2D(c)],
        shortcut=None if (c_in, stride) == (c, 1) else [fb.Conv2D(c_in, c, 1, stride=stride),
                                                        fb.BatchNorm2D(c)],
        activation="relu")


# name -> (layers, input_shape, X maker, n classes or targets)
NETWORKS = {
    "mlp_identity_and_projection": lambda: (
        [fb.Dense(4, 6, activation="tanh"),
         fb.Residual([fb.Dense(6, 6, activation="relu"), fb.Dense(6, 6)], activation="relu"),
         fb.Residual([fb.Dense(6, 5)], shortcut=[fb.Dense(6, 5)]), fb.Dense(5, 3)], (4,)),
    "nested_blocks": lambda: (
        [fb.Dense(4, 6),
         fb.Residual([fb.Residual([fb.LayerNorm(6), fb.Dense(6, 6, activation="gelu")]),
                      fb.Concat([[fb.Dense(6, 2)], [fb.Dense(6, 4, activation="tanh")]])]),
         fb.Concat([[], [fb.Dense(6, 3)], []]), fb.Dense(15, 3)], (4,)),
    "block_first_reads_the_input": lambda: (
        [fb.Residual([fb.Dense(4, 4, activation="tanh")]),
         fb.Concat([[fb.Dense(4, 2)], []]), fb.Dense(6, 3)], (4,)),
    "resnet_conv_batchnorm": lambda: (
        [fb.Conv2D(2, 3, 3, padding=1), fb.BatchNorm2D(3), fb.Activation("relu"),
         conv_block(3, 3, 1), conv_block(3, 4, 2),
         fb.Concat([[fb.Conv2D(4, 2, 1)], [fb.MaxPool2D(1)]]), fb.GlobalAvgPool(),
         fb.Dense(6, 3)], (2, 6, 6)),
    "recurrent_and_flatten": lambda: (
        [fb.Embedding(9, 4),
         fb.Concat([[fb.LSTM(4, 3, return_sequences=True)],
                    [fb.GRU(4, 2, return_sequences=True, bidirectional=True)]], axis=-1),
         fb.Residual([fb.Dense(7, 7, activation="tanh")]),
         fb.Concat([[fb.Flatten()], [fb.GRU(7, 3)]]), fb.Dense(5 * 7 + 3, 3)], (5,)),
}


def build(name, dtype="float64", seed=0):
    layers, shape = NETWORKS[name]()
    return fb.Network(layers, input_shape=shape, dtype=dtype, seed=seed)


def batch(net, n=6, seed=0):
    rng = np.random.default_rng(seed)
    X = net.layers[0].random_input(rng, (n, *net.input_shape)) if \
        isinstance(net.layers[0], fb.Embedding) else rng.normal(size=(n, *net.input_shape))
    return X, rng.integers(0, 3, n)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_finite_differences(name):
    net = build(name)
    fb.testing.jitter_parameters(net, 1)
    X, y = batch(net, 4)
    _, grad = net.loss_and_grad(X, y)
    # float64 central differences: ~1e-8 relative on these small networks
    assert rel_err(grad, fb.testing.numerical_grad(net, X, y)) <= 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_twin_agrees(name, dtype):
    check_twin(build(name, dtype), n=5)


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("name", sorted(set(NETWORKS) - {"recurrent_and_flatten"}))
def test_matches_torch_autograd(name):
    """The loss and every gradient of torch's modules (fastbp.torch_modules.Residual and
    Concat) in training mode, float64, to 1e-9."""
    torch = pytest.importorskip("torch")
    net = build(name)
    fb.testing.jitter_parameters(net, 2)
    X, y = batch(net, 6)
    module = net.to_torch().train()
    loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    ours_loss, ours = net.loss_and_grad(X, y)
    grads = copy.deepcopy(module)
    for p, g in zip(module.parameters(), grads.parameters()):
        g.data = p.grad.clone()
    theirs = fb.Network.from_torch(grads, input_shape=net.input_shape, dtype="float64").params
    assert abs(ours_loss - loss.item()) <= 1e-12 * abs(loss.item())
    assert rel_err(ours, theirs) <= 1e-9


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_save_load_pickle_and_config_round_trips(name, tmp_path):
    net = build(name)
    X, y = batch(net)
    net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=2, batch_size=3, verbose=0)
    net.save(tmp_path / "m.npz")
    for again in (fb.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(net)),
                  copy.deepcopy(net)):
        np.testing.assert_array_equal(again.forward(X), net.forward(X))
        assert again.get_config() == net.get_config()


def test_blocks_hold_views_into_the_flat_parameters():
    net = build("mlp_identity_and_projection")
    inner = net.layers[2].shortcut[0]
    assert np.shares_memory(inner.W, net.params)
    inner.W = np.zeros_like(inner.W)
    names = [name for name, _ in net.named_parameters()]
    assert names[2:8] == ["layers.1.body.0.W", "layers.1.body.0.b", "layers.1.body.1.W",
                          "layers.1.body.1.b", "layers.2.body.0.W", "layers.2.body.0.b"]
    index = names.index("layers.2.shortcut.0.W")
    assert not np.any(net.named_parameters()[index][1])


def test_a_split_step_equals_the_whole_one(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    net = fb.Network([fb.Dense(32, 64), fb.Residual([fb.Dense(64, 64, activation="relu"),
                                                     fb.LayerNorm(64)]),
                      fb.Concat([[fb.Dense(64, 16)], []]), fb.Dense(80, 3)], dtype="float64")
    X = np.random.default_rng(0).normal(size=(256, 32))
    y = np.arange(256) % 3
    net.engine.reserve(256)
    monkeypatch.setattr(net.engine, "split_rows", range(2, 2**62))
    assert net.engine.parts(256) is not net.engine.no_parts
    loss, grad = net.loss_and_grad(X, y)
    monkeypatch.setattr(net.engine, "split_rows", range(0))
    whole_loss, whole_grad = net.loss_and_grad(X, y)
    assert loss == pytest.approx(whole_loss, rel=1e-12)
    np.testing.assert_allclose(grad, whole_grad, rtol=1e-10, atol=1e-14)


def test_step_by_step_equals_the_whole_sequence():
    net = fb.Network([fb.Embedding(9, 4),
                      fb.Concat([[fb.LSTM(4, 3, return_sequences=True)], [fb.Dense(4, 2)]],
                                axis=-1),
                      fb.Residual([fb.Dense(5, 5, activation="tanh")], activation="relu"),
                      fb.Dense(5, 9)], input_shape=(6,), dtype="float64")
    X = np.random.default_rng(0).integers(0, 9, (3, 6))
    state, steps = net.initial_state(3), []
    for t in range(6):
        out, state = net.step(X[:, t], state)
        steps.append(out)
    np.testing.assert_allclose(np.stack(steps, 1), net.forward(X).reshape(3, 6, 9), atol=1e-14)


def test_summary_indents_each_block():
    lines = []
    build("resnet_conv_batchnorm").summary(print_fn=lines.append)
    text = "\n".join(line.rstrip() for line in lines)
    assert "3: Residual (relu)        (n, 3, 6, 6)      180" in text
    assert "  body:\n    0: Conv2D" in text and "  shortcut: identity" in text


@pytest.mark.slow  # imports torch and onnxruntime
@pytest.mark.parametrize("name", sorted(set(NETWORKS) - {"recurrent_and_flatten"}))
def test_torch_round_trip_and_onnx_runtime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    net = build(name)
    X, _ = batch(net)
    again = fb.Network.from_torch(net.to_torch(), input_shape=net.input_shape, dtype="float64")
    np.testing.assert_array_equal(again.params, net.params)
    assert again.get_config() == net.get_config()
    net.to_onnx(tmp_path / "m.onnx", dtype="float32")  # ONNX Runtime's CPU Conv is float32
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    out = session.run(None, {"input": X.astype(np.float32)})[0]
    # float32 against float64: ~1e-7 relative per operation over a dozen layers
    np.testing.assert_allclose(out, net.forward(X), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layers, text", [
    ([fb.Dense(4, 5), fb.Residual([fb.Dense(5, 3)])],
     r"layers\[1\]: the body gives outputs of shape \(3,\) and the shortcut \(5,\); they must "
     r"match \(give a shortcut that projects"),
    ([fb.Dense(4, 5), fb.Residual([fb.Dense(5, 5), fb.Residual([fb.Dense(5, 2)])])],
     r"layers\[1\]\.body\[1\]: the body gives outputs of shape \(2,\) and the shortcut \(5,\)"),
    ([fb.Dense(4, 5), fb.Residual([fb.Dense(5, 5)], shortcut=[fb.Dense(4, 5)])],
     r"layers\[1\]\.shortcut\[0\]: "),
    ([fb.Conv2D(1, 2, 3), fb.Concat([[fb.Conv2D(2, 2, 3)], []])],
     r"layers\[1\]: the branches give outputs of shapes \(2, 2, 2\), \(2, 4, 4\); all but axis "
     r"1 must match"),
    ([fb.Dense(4, 5), fb.Concat([[fb.Dense(5, 3)], []], axis=2)],
     r"layers\[1\]: axis 2 is outside the branches' outputs of 1 axes"),
])
def test_shape_mismatches_name_the_block(layers, text):
    with pytest.raises(ValueError, match=text):
        fb.Network(layers, input_shape=(1, 6, 6) if isinstance(layers[0], fb.Conv2D) else None)


@pytest.mark.parametrize("make, exc, text", [
    (lambda: fb.Residual([]), ValueError, r"Residual: body must hold at least one layer"),
    (lambda: fb.Residual(fb.Dense(2, 2)), TypeError, r"Residual: body must be a list"),
    (lambda: fb.Residual([fb.Dense(2, 2)], shortcut=[3]), TypeError,
     r"Residual: shortcut\[0\] must be a fastbp layer, got int"),
    (lambda: fb.Residual([fb.Dense(2, 2)], activation="nope"), ValueError, r"nope"),
    (lambda: fb.Concat([]), ValueError, r"Concat: branches must be a non-empty list"),
    (lambda: fb.Concat([[fb.Dense(2, 2)]], axis=0), ValueError,
     r"Concat: axis must be a nonzero int \(the batch axis is 0\), got 0"),
])
def test_bad_block_arguments_are_named(make, exc, text):
    with pytest.raises(exc, match=text):
        make()


@pytest.mark.slow  # two 30-layer fits (3 s compiled; minutes in the pure-Python pass)
def test_a_deep_tanh_mlp_trains_only_with_residual_blocks():
    """The README's demonstration: 30 tanh layers with PyTorch's default nn.Linear
    initialisation (U(+-1/sqrt(fan_in)), the same for both). Plain, the signal and the
    gradient vanish (first layer's gradient norm ~1e-6 of the last's) and the accuracy
    stays at chance; with residual blocks and LayerNorm it trains (0.98 here)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))  # the file is sorted by writer
    train, test = order[:1347], order[1347:]

    def torch_default(rng, n_in, n_out):
        return rng.uniform(-1, 1, (n_in, n_out)) / np.sqrt(n_in)

    def dense(n_in, n_out, activation="tanh"):
        return fb.Dense(n_in, n_out, activation=activation, init=torch_default)

    plain = fb.Network([dense(64, 64)] + [dense(64, 64) for _ in range(28)]
                       + [dense(64, 10, "identity")], seed=0)
    residual = fb.Network([dense(64, 64, "identity")]
                          + [fb.Residual([fb.LayerNorm(64), dense(64, 64)]) for _ in range(28)]
                          + [fb.LayerNorm(64), dense(64, 10, "identity")], seed=0)
    results = {}
    for name, net in (("plain", plain), ("residual", residual)):
        report = fb.diagnose(net, X[:256], y[:256], verbose=False)

        def layer_norm(prefix, gradients=report.gradients):
            return np.sqrt(sum(v ** 2 for k, v in gradients.items()
                               if k.startswith(prefix + ".")))

        ratio = layer_norm("layers.0") / layer_norm(f"layers.{len(net.layers) - 1}")
        net.fit(X[train], y[train], optimizer=fb.Adam(lr=1e-3), epochs=15, batch_size=32,
                verbose=0)
        results[name] = (ratio, net.evaluate(X[test], y[test])["accuracy"],
                         {kind for _, kind, _ in report.problems})
    assert results["plain"][0] < 1e-3 and results["plain"][1] < 0.2
    assert "vanishing" in results["plain"][2]
    assert results["residual"][0] > 0.1 and results["residual"][1] >= 0.95
    assert "vanishing" not in results["residual"][2]


@pytest.mark.slow  # a digits fit (minutes in the pure-Python pass)
def test_the_cli_trains_a_model_file_with_a_block(tmp_path, capsys):
    import json

    from fastbp.cli import main

    spec = {"layers": [
        {"type": "Dense", "n_in": 64, "n_out": 32},
        {"type": "Residual", "body": [{"type": "LayerNorm", "normalized_shape": [32]},
                                      {"type": "Dense", "n_in": 32, "n_out": 32,
                                       "activation": "relu"}]},
        {"type": "Dense", "n_in": 32, "n_out": 10}]}
    (tmp_path / "model.json").write_text(json.dumps(spec))
    assert main(["train", "--data", "digits", "--model", str(tmp_path / "model.json"),
                 "--epochs", "3", "--save", str(tmp_path / "m.npz")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert isinstance(fb.load(tmp_path / "m.npz").layers[1], fb.Residual)


def test_monitoring_names_the_layers_inside_blocks():
    net = build("nested_blocks", "float32")
    X, y = batch(net, 16)
    history = net.fit(X, y, epochs=1, batch_size=8, monitor=True, verbose=0)
    assert "grad_norm/layers.1.body.0.body.1.W" in history.history
    assert "output_std/layers.1.body.1.branches.1.0" in history.history
    assert "output_mean/layers.1.body.0.sum" in history.history


def test_a_first_block_checks_the_input_as_its_readers_do():
    """A Concat of two Embeddings as the first layer: each reader's check of the ids."""
    net = fb.Network([fb.Concat([[fb.Embedding(7, 3)], [fb.Embedding(5, 2)]], axis=-1),
                      fb.Flatten(), fb.Dense(25, 2)], input_shape=(5,), dtype="float64")
    with pytest.raises(ValueError, match=r"X row 0 holds id 6, outside 0..4"):
        net.forward(np.full((2, 5), 6))
    with pytest.raises(TypeError, match=r"X must hold integer token ids"):
        net.loss_and_grad(np.full((2, 5), 1.5), [0, 1])


def test_joins_along_the_features_keep_the_padding_mask():
    """Padded steps are zero in every branch, so after a sum or a concatenation of the
    features the next recurrent layer still reads them as padding (and left padding is
    refused); a concatenation along the steps would move padding inside: no mask."""
    net = fb.Network([fb.Embedding(7, 3, padding_idx=0),
                      fb.Concat([[fb.LSTM(3, 2, return_sequences=True)],
                                 [fb.GRU(3, 2, return_sequences=True)]], axis=-1),
                      fb.Residual([fb.GRU(4, 4, return_sequences=True)]),
                      fb.LSTM(4, 3), fb.Dense(3, 2)], input_shape=(5,), dtype="float64")
    assert all(unit.masked for unit in net.engine.layers if hasattr(unit, "masked"))
    X, y = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 1, 0], [2, 0, 0, 0, 0]]), [0, 1, 1]
    fb.testing.jitter_parameters(net, 3)
    table = net.layers[0].weight.copy()
    table[0] = 0  # the padding row stays zero, or the padding is no longer padding
    net.layers[0].weight = table
    _, grad = net.loss_and_grad(X, y)
    twin = reference.Network.from_network(net)
    assert rel_err(grad, twin.loss_and_grad(X, y)[1]) <= 1e-12
    # padded steps are not steps: the same rows, padded further, give the same outputs
    longer = fb.Network([fb.layers.layer_from_config(c) for c in net.get_config()["layers"]],
                        input_shape=(7,), dtype="float64")
    longer.params = net.params
    np.testing.assert_allclose(longer.forward(np.pad(X, ((0, 0), (0, 2)))), net.forward(X),
                               atol=1e-14)
    with pytest.raises(ValueError, match=r"X row 0 has padding"):
        net.forward(np.array([[0, 1, 2, 3, 4]] * 3))
    steps = fb.Network([fb.Embedding(7, 3, padding_idx=0),
                        fb.Concat([[fb.Dense(3, 3)], []], axis=1), fb.GRU(3, 2)],
                       input_shape=(5,))
    assert not steps.layers[2].masked
