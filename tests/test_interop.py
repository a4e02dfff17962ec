"""Interop: fastbp -> torch -> fastbp round trips, torch's and ONNX Runtime's outputs against
``net.forward``, ONNX files that pass the checker, and the errors users meet.

Tolerances: outputs agree to 1e-5 of the output's largest magnitude in float32 (what the issue
asks; the measured gap is ~5e-7, a few roundings of different summation orders) and 1e-12 in
float64 (rounding only). Round trips copy tensors bit for bit, so they compare exactly.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from conftest import rel_err

import fastbp as fb

pytestmark = pytest.mark.slow  # torch / ONNX Runtime oracles (CI installs both and runs them)

TOL = {"float32": 1e-5, "float64": 1e-12}
# ONNX Runtime folds BatchNormalization into one multiply-add with precomputed factors, which
# rounds differently from (x - mean) / sqrt(var + eps): ~1e-12 of the output in float64.
ORT_TOL = {"float32": 1e-5, "float64": 1e-10}


def _mlp(dtype):
    return fb.Network([fb.Dense(6, 16, "relu"), fb.Dropout(0.2), fb.Dense(16, 8, "tanh"),
                       fb.BatchNorm1D(8), fb.Dense(8, 8, "leaky_relu"), fb.Activation("sigmoid"),
                       fb.Dense(8, 3)], dtype=dtype, seed=1)


# Small networks covering every kind the exporters map (each kind's kernels compile once per
# dtype, shared with the layer tests: fastbp._dispatch).
def _cnn1d(dtype):
    return fb.Network([fb.Conv1D(2, 4, 3, padding="same", activation="relu"), fb.BatchNorm1D(4),
                       fb.MaxPool1D(2), fb.Conv1D(4, 5, 2, stride=2, dilation=2, padding=1),
                       fb.AvgPool1D(2, padding=1), fb.Activation("tanh"), fb.GlobalAvgPool(),
                       fb.Flatten(), fb.Dense(5, 3)], input_shape=(2, 12), dtype=dtype, seed=2)


def _cnn2d(dtype):
    return fb.Network([fb.Conv2D(1, 4, 3, padding=1), fb.BatchNorm2D(4, momentum=None),
                       fb.Activation("relu"), fb.MaxPool2D(2, padding=1),
                       fb.Conv2D(4, 6, (2, 3), stride=(1, 2), dilation=(2, 1)),
                       fb.AvgPool2D(2, stride=1), fb.Flatten(), fb.Dense(12, 3)],
                      input_shape=(1, 9, 8), dtype=dtype, seed=3)


def _layernorm(dtype):
    return fb.Network([fb.LayerNorm((3, 8)), fb.Flatten(), fb.Dense(24, 8, "tanh"),
                       fb.LayerNorm(8, elementwise_affine=False), fb.Dense(8, 2)],
                      input_shape=(3, 8), loss="mse", dtype=dtype, seed=4)


def _gru_lstm(dtype):  # stacked, bidirectional, sequences into the last state
    return fb.Network([fb.GRU(4, 6, return_sequences=True, bidirectional=True),
                       fb.LSTM(12, 5, bidirectional=True), fb.Dense(10, 3)],
                      input_shape=(5, 4), dtype=dtype, seed=5)


def _rnn(dtype):
    return fb.Network([fb.RNN(4, 6, activation="relu", return_sequences=True),
                       fb.RNN(6, 3, bidirectional=True, return_sequences=True),
                       fb.Flatten(), fb.Dense(30, 3)], input_shape=(5, 4), dtype=dtype, seed=6)


def _lstm_gru(dtype):
    return fb.Network([fb.LSTM(4, 6, return_sequences=True), fb.GRU(6, 3)],
                      input_shape=(5, 4), dtype=dtype, seed=7)


def _new_activations(dtype):  # the row-kernel activations, fused and alone, and Softmax
    return fb.Network([fb.Dense(6, 8, "gelu"), fb.Activation("silu"), fb.Dense(8, 8, "elu"),
                       fb.Dense(8, 4, "softplus"), fb.Softmax()], loss="mse", dtype=dtype,
                      seed=8)


def _embedding_gru(dtype):  # token ids in, a Dense on each step
    return fb.Network([fb.Embedding(13, 4), fb.GRU(4, 5, return_sequences=True),
                       fb.Dense(5, 3, "tanh"), fb.Flatten(), fb.Dense(18, 3)],
                      input_shape=(6,), dtype=dtype, seed=9)


def _blocks(dtype):  # a residual block with a projection shortcut, a concatenation
    return fb.Network([fb.Conv2D(1, 3, 3, padding=1),
                       fb.Residual([fb.Conv2D(3, 4, 3, padding=1), fb.BatchNorm2D(4)],
                                   shortcut=[fb.Conv2D(3, 4, 1)], activation="relu"),
                       fb.Concat([[fb.Conv2D(4, 2, 1)], []]), fb.GlobalAvgPool(),
                       fb.Residual([fb.Dense(6, 6, "tanh")]), fb.Dense(6, 3)],
                      input_shape=(1, 5, 5), dtype=dtype, seed=10)


NETWORKS = {"new_activations": _new_activations, "blocks": _blocks, "mlp_bn": _mlp,
            "cnn1d_bn_pool_gap": _cnn1d,
            "cnn2d_bn_pool": _cnn2d,
            "layernorm": _layernorm, "gru_bi_lstm_bi": _gru_lstm, "rnn_relu_rnn_bi": _rnn,
            "lstm_gru": _lstm_gru, "embedding_gru": _embedding_gru}
DTYPES = ["float32", "float64"]


def test_networks_cover_every_layer_kind():
    # A new layer kind needs its torch module and ONNX nodes in fastbp.interop, and a place here.
    used = {type(layer).__name__ for build in NETWORKS.values() for layer in build("float32").layers}
    # (fastbp's own kinds: other test modules register made-up layers when collected).
    # Masking marks padding for recurrent layers, which torch and ONNX express only with
    # explicit lengths: its exports are refused with a message (tests/test_masking.py).
    assert used | {"Masking"} == {name for name, cls in fb.layers.LAYER_TYPES.items()
                                  if cls.__module__.startswith("fastbp.")}


def make(name: str, dtype: str, n: int = 7):
    """The network with non-default running statistics, and inputs for it."""
    net = NETWORKS[name](dtype)
    rng = np.random.default_rng(len(name))
    for layer in net.layers:
        if isinstance(layer, (fb.BatchNorm1D, fb.BatchNorm2D)):
            C = layer.num_features
            layer.running_mean = rng.normal(size=C)
            layer.running_var = rng.uniform(0.5, 2.0, size=C)
            layer.num_batches_tracked = 3.0
            if layer.affine:
                layer.weight = rng.uniform(0.5, 1.5, size=C)
                layer.bias = rng.normal(size=C)
        if isinstance(layer, fb.LayerNorm) and layer.elementwise_affine:
            layer.weight = rng.uniform(0.5, 1.5, size=layer.normalized_shape)
            layer.bias = rng.normal(size=layer.normalized_shape)
    X = net.layers[0].random_input(rng, (n, *net.input_shape))
    return net, X.astype(dtype) if X.dtype.kind == "f" else X


def _torch_forward(module, X):
    import torch

    with torch.no_grad():
        return module.eval()(torch.from_numpy(X)).numpy()


# -- torch ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NETWORKS)
def test_to_torch_outputs_match_forward(name, dtype):
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    net, X = make(name, dtype)
    module = net.to_torch()
    assert {p.dtype for p in module.parameters()} == {getattr(torch, dtype)}
    out = _torch_forward(module, X)
    assert out.dtype == np.dtype(dtype)
    assert rel_err(out, net.forward(X)) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NETWORKS)
def test_round_trip_through_torch_is_exact(name, dtype):
    pytest.importorskip("torch", reason="needs fastbp[torch]")
    net, X = make(name, dtype)
    back = fb.Network.from_torch(net.to_torch(), input_shape=net.input_shape, loss=net.loss)
    assert back.dtype == net.dtype
    assert back.get_config()["layers"] == net.get_config()["layers"]
    np.testing.assert_array_equal(back.params, net.params)
    np.testing.assert_array_equal(back.buffers, net.buffers)
    np.testing.assert_array_equal(back.forward(X), net.forward(X))


def test_from_torch_fuses_an_activation_into_the_layer_before():
    # Linear + ReLU is one Dense(activation="relu") (one pass over the outputs, not two), so
    # a standalone Activation right after an identity Dense comes back fused: same function,
    # same parameters. (The NETWORKS above avoid that pattern, so their configs round-trip.)
    pytest.importorskip("torch", reason="needs fastbp[torch]")
    net = fb.Network([fb.Dense(3, 4), fb.Activation("relu"), fb.Activation("tanh"), fb.Dense(4, 2)])
    back = fb.Network.from_torch(net.to_torch())
    assert [repr(la) for la in back.layers] == [
        "Dense(3, 4, activation='relu')", "Activation('tanh')", "Dense(4, 2, activation='identity')"]
    np.testing.assert_array_equal(back.params, net.params)


def test_to_torch_layouts_are_torchs():
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    net, _ = make("mlp_bn", "float32")
    module = net.to_torch()
    assert isinstance(module, torch.nn.Sequential)
    linear = module[0]
    assert isinstance(linear, torch.nn.Linear) and isinstance(module[1], torch.nn.ReLU)
    np.testing.assert_array_equal(linear.weight.detach().numpy(), net.layers[0].W.T)
    bn = next(m for m in module if isinstance(m, torch.nn.BatchNorm1d))
    assert bn.num_batches_tracked.dtype == torch.int64 and int(bn.num_batches_tracked) == 3
    net, _ = make("gru_bi_lstm_bi", "float32")
    gru = net.to_torch()[0].rnn
    assert isinstance(gru, torch.nn.GRU) and gru.batch_first and gru.bidirectional
    np.testing.assert_array_equal(gru.weight_hh_l0_reverse.detach().numpy(),
                                  net.layers[0].weight_hh_reverse)


def test_to_torch_module_trains_like_fastbp():
    # The torch module is the same function: one SGD step on the same batch moves the
    # weights identically (fastbp's mse is torch's MSELoss, mean reduction).
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    net, X = make("layernorm", "float64")
    y = np.random.default_rng(0).normal(size=(len(X), 2))
    module = net.to_torch()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = torch.nn.functional.mse_loss(module.train()(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    net.train_step(X, y, fb.SGD(lr=0.1))
    back = fb.Network.from_torch(module, input_shape=net.input_shape)
    assert rel_err(back.params, net.params) < 1e-12


def _stacked_torch(torch, kind, bidirectional, return_sequences):
    nn = torch.nn
    from fastbp.torch_modules import Recurrent

    rnn = kind(3, 4, num_layers=2, dropout=0.25, batch_first=True, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    head = [nn.Flatten(), nn.Linear(6 * D * 4, 2)] if return_sequences else [nn.Linear(D * 4, 2)]
    return nn.Sequential(Recurrent(rnn, return_sequences=return_sequences), nn.Sequential(*head))


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_from_torch_stacked_recurrent(kind, bidirectional, return_sequences):
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    torch.manual_seed(0)
    module = _stacked_torch(torch, getattr(torch.nn, kind), bidirectional, return_sequences)
    net = fb.Network.from_torch(module, input_shape=(6, 3))
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds[:3] == [kind, "Dropout", kind]  # one fastbp layer per torch layer
    assert net.layers[0].return_sequences and net.layers[2].return_sequences == return_sequences
    X = np.random.default_rng(0).normal(size=(5, 6, 3)).astype(np.float32)
    assert rel_err(_torch_forward(module, X), net.forward(X)) < TOL["float32"]


def test_from_torch_handwritten_cnn():
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same"), nn.BatchNorm2d(4), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.LeakyReLU(),
                           nn.Flatten(), nn.Dropout(0.3), nn.Linear(128, 10)).double()
    module.train()(torch.randn(16, 1, 8, 8, dtype=torch.float64))  # move the running stats
    net = fb.Network.from_torch(module, input_shape=(1, 8, 8))
    assert net.dtype == np.float64
    assert [type(la).__name__ for la in net.layers] == [
        "Conv2D", "BatchNorm2D", "Activation", "MaxPool2D", "Conv2D", "Flatten", "Dropout",
        "Dense"]
    assert net.layers[4].activation == "leaky_relu"
    assert net.layers[1].num_batches_tracked == 1.0
    X = np.random.default_rng(1).normal(size=(4, 1, 8, 8))
    assert rel_err(_torch_forward(module, X), net.forward(X)) < TOL["float64"]


def test_from_torch_dtype_argument_casts():
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    module = torch.nn.Sequential(torch.nn.Linear(3, 2)).double()
    net = fb.Network.from_torch(module, dtype="float32", loss="mse")
    assert net.dtype == np.float32 and net.input_shape == (3,)
    np.testing.assert_array_equal(net.layers[0].W, module[0].weight.detach().numpy().T
                                  .astype(np.float32))


def _unsupported_cases(nn):
    from fastbp.torch_modules import Recurrent

    return [
        (nn.Sequential(nn.Linear(3, 4), nn.Hardswish()), TypeError,
         r"module 1 \(Hardswish\) has no fastbp"),
        (nn.Sequential(nn.Linear(3, 4), nn.GELU(approximate="tanh")), ValueError,
         "approximate='none'"),
        (nn.Sequential(nn.GRU(3, 4, batch_first=True)), TypeError, "wrap it as"),
        (nn.Sequential(nn.Linear(3, 4, bias=False)), ValueError, r"module 0 \(Linear\).*bias"),
        (nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2)), ValueError, "negative_slope=0.2"),
        (nn.Sequential(nn.Conv1d(2, 4, 3, groups=2)), ValueError, "groups=1"),
        (nn.Sequential(nn.MaxPool1d(2, ceil_mode=True)), ValueError, "ceil_mode=False"),
        (nn.Sequential(nn.AvgPool2d(2, count_include_pad=False)), ValueError, "count_include_pad"),
        (nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), ValueError, "output_size 1"),
        (nn.Sequential(nn.Flatten(0)), ValueError, "start_dim=1"),
        (nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False)), ValueError,
         "track_running_stats"),
        (nn.Sequential(Recurrent(nn.LSTM(3, 4, batch_first=True, proj_size=2))), ValueError,
         "proj_size=0"),
        (nn.Sequential(nn.Dropout2d(0.1)), TypeError, "Dropout2d"),
        (nn.Sequential(), ValueError, "no layers"),
        ("not a module", TypeError, "must be a torch.nn.Module"),
    ]


@pytest.mark.parametrize("case", range(15))
def test_from_torch_unsupported_raises_naming_it(case):
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    module, error, match = _unsupported_cases(torch.nn)[case]
    with pytest.raises(error, match=match):
        fb.Network.from_torch(module, input_shape=(2, 6))


def test_recurrent_wrapper_checks_its_rnn():
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    from fastbp.torch_modules import Recurrent

    with pytest.raises(ValueError, match="batch_first=True"):
        Recurrent(torch.nn.GRU(3, 4))
    with pytest.raises(TypeError, match="nn.RNN, nn.GRU or nn.LSTM"):
        Recurrent(torch.nn.Linear(3, 4))


def test_torch_file_round_trip(tmp_path):
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    from fastbp.interop import load_torch, save_torch

    net, X = make("cnn2d_bn_pool", "float32")
    save_torch(net, tmp_path / "m.pt")
    saved = torch.load(tmp_path / "m.pt", weights_only=True)  # no pickled classes inside
    assert saved["config"] == net.get_config()
    module = load_torch(tmp_path / "m.pt")
    assert rel_err(_torch_forward(module, X), net.forward(X)) < TOL["float32"]
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a fastbp torch export"):
        load_torch(tmp_path / "x.pt")


# -- ONNX -------------------------------------------------------------------------------------
def _onnx_run(path, X):
    ort = pytest.importorskip("onnxruntime", reason="needs fastbp[onnx]")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    elem = session.get_inputs()[0].type  # token ids go in as the export's float type
    return session.run(None, {"input": X if X.dtype.kind == "f" else
                              X.astype(np.float64 if elem == "tensor(double)" else np.float32)})[0]


# ONNX Runtime 1.32's CPU provider has no double Conv, RNN, GRU, LSTM, Erf, Elu or Softplus
# kernel: those networks are checked in float64 by the ONNX checker only, and run exported as
# float32.
ORT_RUNS_FLOAT64 = {"mlp_bn"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NETWORKS)
def test_onnx_runtime_outputs_match_forward(name, dtype, tmp_path):
    onnx = pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    pytest.importorskip("onnxruntime", reason="needs fastbp[onnx]")
    net, X = make(name, dtype)
    model = net.to_onnx(tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"), full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == (1 if dtype == "float32" else 11)
    if dtype == "float64" and name not in ORT_RUNS_FLOAT64:
        net.to_onnx(tmp_path / "m.onnx", dtype="float32")
        X, dtype = X.astype(np.float32) if X.dtype.kind == "f" else X, "float32"
    for rows in (X, X[:1], np.concatenate([X, X])):  # the batch axis is dynamic
        out = _onnx_run(tmp_path / "m.onnx", rows)
        assert out.dtype == np.dtype(dtype)
        assert rel_err(out, net.forward(rows)) < ORT_TOL[dtype]


@pytest.mark.parametrize("opset", [13, 17, 21])
@pytest.mark.parametrize("name", ["layernorm", "rnn_relu_rnn_bi", "cnn2d_bn_pool"])
def test_onnx_opsets(name, opset, tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, X = make(name, "float32")
    model = net.to_onnx(tmp_path / "m.onnx", opset=opset)
    assert model.opset_import[0].version == opset
    ops = {node.op_type for node in model.graph.node}
    if name == "layernorm":
        assert ("LayerNormalization" in ops) == (opset >= 17)
    assert rel_err(_onnx_run(tmp_path / "m.onnx", X), net.forward(X)) < TOL["float32"]


def test_onnx_recurrent_uses_onnx_operators(tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, _ = make("gru_bi_lstm_bi", "float32")
    model = net.to_onnx(tmp_path / "m.onnx")
    nodes = {node.op_type: node for node in model.graph.node}
    assert {"GRU", "LSTM"} <= set(nodes)
    attrs = {a.name: a for a in nodes["GRU"].attribute}
    assert attrs["linear_before_reset"].i == 1 and attrs["direction"].s == b"bidirectional"


@pytest.mark.parametrize("opset", [12, 10**6, 17.0, True])
def test_onnx_bad_opset_names_it(opset, tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, _ = make("mlp_bn", "float32")
    with pytest.raises(ValueError, match="opset must be an int from 13"):
        net.to_onnx(tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_bad_dtype_names_it(tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, _ = make("mlp_bn", "float32")
    with pytest.raises(ValueError, match="dtype must be 'float32', 'float64' or None"):
        net.to_onnx(tmp_path / "m.onnx", dtype="float16")


# -- missing extras -----------------------------------------------------------------------------
@pytest.mark.parametrize("call, extra", [
    (lambda net, p: net.to_torch(), "fastbp[torch]"),
    (lambda net, p: fb.Network.from_torch(None), "fastbp[torch]"),
    (lambda net, p: net.to_onnx(p), "fastbp[onnx]")], ids=["to_torch", "from_torch", "to_onnx"])
def test_missing_extra_says_which_to_install(call, extra, monkeypatch, tmp_path):
    for module in ("torch", "onnx"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    net = fb.Network([fb.Dense(2, 2)])
    with pytest.raises(ImportError, match=re.escape(f"pip install '{extra}'")):
        call(net, tmp_path / "m.onnx")


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_export_writes_onnx_and_torch(tmp_path, capsys):
    pytest.importorskip("torch", reason="needs fastbp[torch]")
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    from fastbp.cli import main
    from fastbp.interop import load_torch

    net, X = make("cnn1d_bn_pool_gap", "float32")
    net.save(tmp_path / "m.npz")
    onnx_path, torch_path = tmp_path / "m.onnx", tmp_path / "m.pt"
    assert main(["export", str(tmp_path / "m.npz"), "--onnx", str(onnx_path), "--raw-network",
                 "--torch", str(torch_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert rel_err(_onnx_run(onnx_path, X), net.forward(X)) < TOL["float32"]
    assert rel_err(_torch_forward(load_torch(torch_path), X), net.forward(X)) < TOL["float32"]


def test_cli_export_needs_a_target(tmp_path, capsys):
    from fastbp.cli import main

    fb.Network([fb.Dense(2, 2)]).save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz")]) == 2
    assert "export needs --onnx PATH, --torch PATH or both" in capsys.readouterr().err
