"""Conv1D / Conv2D: spec, kernels and twin together, against torch, and on digit images."""

import numpy as np
import pytest
from kind_checks import (
    check_finite_differences,
    check_flat_and_shaped_inputs_agree,
    check_twin,
    data_for,
    rel_err,
)

import fastbp as fb
from fastbp._codes import F_PART
from fastbp.kernels import conv as conv_kernels

# name -> (conv layers, input shape); a Flatten and a Dense follow. Awkward on purpose:
# stride, padding incl. "same" with an even kernel, dilation, 1x1, kernel = input size, one
# channel, two convolutions in a row (so dLoss/dinput goes through col2im).
CONFIGS = {
    "2d-k3-p1-tanh": ([fb.Conv2D(2, 3, 3, padding=1, activation="tanh")], (2, 5, 4)),
    "2d-k2-s2-valid": ([fb.Conv2D(1, 2, 2, stride=2, padding="valid")], (1, 6, 5)),
    "2d-same-even-kernel": ([fb.Conv2D(2, 2, (2, 4), padding="same", activation="sigmoid")],
                            (2, 4, 5)),
    "2d-dilation2-p1": ([fb.Conv2D(2, 3, 2, dilation=2, padding=1)], (2, 5, 5)),
    "2d-1x1": ([fb.Conv2D(3, 2, 1)], (3, 3, 3)),
    "2d-kernel-is-input": ([fb.Conv2D(2, 4, (3, 4))], (2, 3, 4)),
    "2d-two-convs-relu": ([fb.Conv2D(1, 3, 3, padding=1, activation="relu"),
                           fb.Conv2D(3, 2, 3, stride=(2, 1), padding=(1, 0), activation="tanh")],
                          (1, 5, 6)),
    "1d-k3-s2-p1": ([fb.Conv1D(2, 3, 3, stride=2, padding=1, activation="tanh")], (2, 9)),
    "1d-same-dilation": ([fb.Conv1D(1, 2, 4, padding="same", dilation=2)], (1, 7)),
    "1d-two-convs": ([fb.Conv1D(2, 3, 5, padding=2, activation="leaky_relu"),
                      fb.Conv1D(3, 2, 2, stride=2)], (2, 8)),
}


# The kernel's two column orders (kernels/conv.py); the layer picks one by output width, and
# every configuration above is narrow, so each test forces both.
LAYOUTS = ["sample_major", "batch_last"]


@pytest.fixture(params=LAYOUTS)
def layout(request, monkeypatch):
    monkeypatch.setattr(fb.layers.conv._Conv, "_batch_last",
                        lambda self: request.param == "batch_last")
    return request.param


def build(config, dtype="float64", seed=1, loss="mse"):
    convs, shape = CONFIGS[config]
    probe = fb.Network([*convs, fb.Flatten()], input_shape=shape, loss="mse")
    return fb.Network([*convs, fb.Flatten(), fb.Dense(probe.n_outputs, 3)], input_shape=shape,
                      loss=loss, dtype=dtype, seed=seed)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_finite_differences_config_batch_layout(config, batch, layout):
    check_finite_differences(build(config), n=batch)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_twin_agrees_config_dtype_layout(config, dtype, layout):
    net = build(config, dtype)
    check_twin(net, n=4)
    check_flat_and_shaped_inputs_agree(net)


def test_each_layer_picks_its_column_order_by_width_and_agrees_with_the_twin():
    # a wide stride-1 output (sample-major), then a strided one and a narrow one (batch-last)
    net = fb.Network([fb.Conv2D(1, 2, 3, padding=1, activation="relu"),
                      fb.Conv2D(2, 3, 3, stride=2, activation="tanh"),
                      fb.Conv2D(3, 2, 3, padding=1, activation="tanh"), fb.Flatten(),
                      fb.Dense(2 * 2 * 14, 3)],
                     input_shape=(1, 5, 30), loss="mse", dtype="float64", seed=1)
    assert [layer._batch_last() for layer in net.layers[:3]] == [False, True, True]
    check_twin(net, n=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_columns_built_a_chunk_of_samples_at_a_time_agree_with_the_twin_dtype(dtype):
    # samples whose im2col columns exceed the chunk size (kernels/conv.py): the sample-major
    # kernels build them a few samples at a time (and again in the backward pass); the
    # second convolution sends dLoss/dinput through col2im chunk by chunk
    # (wide rather than long: float32 sums over fewer positions, within the twin tolerance
    # also when the kernels run as plain Python)
    net = fb.Network([fb.Conv1D(64, 16, 5, padding=2, activation="tanh"),
                      fb.Conv1D(16, 2, 5, padding=2), fb.GlobalAvgPool(), fb.Dense(2, 3)],
                     input_shape=(64, 4096), loss="mse", dtype=dtype, seed=1)
    itemsize = np.dtype(dtype).itemsize
    for layer in net.layers[:2]:
        assert not layer._batch_last()
        for flags in (0, F_PART):  # both chunk sizes: unsplit steps and a split step's parts
            assert conv_kernels.samples_per_chunk(layer._K, 4096, 4, itemsize, flags) < 4
    check_twin(net, n=4, steps=2)


# Convolutions without padding or stride, whose output is narrower than the input: a single
# sample inferred runs through wide columns (kernels/conv.py), in either column order. The
# second pair's gelu is computed by address (its pre-activation kept after the columns).
VALID = {
    "2d-valid-k3-tanh": ([fb.Conv2D(2, 3, 3, activation="tanh")], (2, 5, 6)),
    "2d-valid-dilated-then-gelu": ([fb.Conv2D(1, 2, (2, 3), dilation=(1, 2), activation="relu"),
                                    fb.Conv2D(2, 3, 2, activation="gelu")], (1, 6, 8)),
    "1d-valid-k4": ([fb.Conv1D(2, 2, 4, activation="sigmoid")], (2, 9)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", sorted(VALID))
def test_a_single_sample_through_wide_columns_config_dtype_layout(config, dtype, layout):
    convs, shape = VALID[config]
    probe = fb.Network([*convs, fb.Flatten()], input_shape=shape)
    net = fb.Network([*convs, fb.Flatten(), fb.Dense(probe.n_outputs, 3)], input_shape=shape,
                     loss="mse", dtype=dtype, seed=1)
    for layer in net.layers[: len(convs)]:
        settings = layer.int_settings()
        assert conv_kernels.wide_positions(settings[:3] + settings[4:14]) > 0
    check_twin(net, n=1)
    # one row against the same row in a batch (the columns of the general path): the same
    # sums in another order, a few ulps apart
    X = data_for(net, 3, 0)[0]
    np.testing.assert_allclose(net.forward(X[:1]), net.forward(X)[:1],
                               rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


@pytest.mark.parametrize("make,shape", [
    (lambda: fb.Conv2D(3, 8, 3, stride=2, padding=1), (8, 4, 5)),
    (lambda: fb.Conv2D(3, 8, (3, 5), padding="same"), (8, 7, 9)),
    (lambda: fb.Conv2D(3, 8, 3, dilation=2), (8, 3, 5)),
    (lambda: fb.Conv1D(3, 4, 5, stride=3, padding=2), (4, 3)),
], ids=["stride", "same", "dilation", "1d"])
def test_output_shape_is_torchs(make, shape):
    # floor((L + 2p - d(k-1) - 1) / s) + 1
    in_shape = (3, 7, 9) if "1d" not in str(shape) and len(shape) == 3 else (3, 7)
    net = fb.Network([make()], input_shape=in_shape, loss="mse")
    assert net.layers[0].output_shape == shape


def test_weights_in_torchs_layout_and_fan_in_init():
    net = fb.Network([fb.Conv2D(4, 8, (3, 5), activation="relu")], input_shape=(4, 6, 6),
                     loss="mse", dtype="float64", seed=0)
    conv = net.layers[0]
    assert conv.weight.shape == (8, 4, 3, 5) and conv.bias.shape == (8,)
    assert conv.weight is conv.W and np.shares_memory(conv.W, net.params)
    assert abs(conv.W.std() - np.sqrt(2.0 / (4 * 15))) < 0.03  # He with fan-in C*kh*kw
    conv.weight = np.ones((8, 4, 3, 5))  # assignment copies into the view
    assert np.all(net.params[: 8 * 4 * 15] == 1)


@pytest.mark.parametrize("make,text", [
    (lambda: fb.Network([fb.Conv2D(2, 3, 5)], input_shape=(2, 4, 4)),
     r"layers\[0\]: Conv2D: kernel_size \(5, 5\) \(dilated span 5\) is larger than the padded"),
    (lambda: fb.Conv2D(2, 3, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: fb.Conv2D(2, 3, 0), "kernel_size must be an int or a pair of ints >= 1"),
    (lambda: fb.Conv1D(2, 3, 3, padding=-1), "padding must be an int >= 0"),
    (lambda: fb.Network([fb.Conv2D(3, 4, 3)], input_shape=(2, 5, 5)),
     r"layers\[0\]: Conv2D expects in_channels=3, the layer before outputs 2 channels"),
    (lambda: fb.Network([fb.Conv1D(2, 4, 3)], input_shape=(2, 5, 5)),
     r"Conv1D expects per-sample inputs of shape \(C, L\)"),
], ids=["kernel-too-big", "same-stride", "zero-kernel", "negative-padding", "channels", "rank"])
def test_bad_specs(make, text):
    with pytest.raises(ValueError, match=text):
        make()


def test_bad_X_shape_names_the_expected_shape_and_changes_nothing():
    net = build("2d-k3-p1-tanh")
    before = net.params.copy()
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, 2, 5, 4\) or \(n_samples, 40\)"):
        net.train_step(np.zeros((3, 2, 4, 5)), np.zeros((3, 3)), fb.SGD())
    assert np.array_equal(net.params, before)


def test_save_and_load_a_cnn(tmp_path):
    net = build("2d-two-convs-relu", dtype="float32")
    X, y = data_for(net, 6)
    net.fit(X, y, optimizer=fb.Adam(lr=0.01), epochs=2, batch_size=3, verbose=0)
    fb.save(net, tmp_path / "cnn.npz")
    back = fb.load(tmp_path / "cnn.npz")
    assert back.get_config() == net.get_config()
    assert np.array_equal(back.forward(X), net.forward(X))


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_torch_outputs_and_gradients_config_layout(config, layout):
    torch = pytest.importorskip("torch")
    net = build(config)
    modules = []
    for layer in net.layers:
        name = type(layer).__name__
        if name.startswith("Conv"):
            cls = torch.nn.Conv2d if name == "Conv2D" else torch.nn.Conv1d
            pad = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
            conv = cls(layer.in_channels, layer.out_channels, tuple(layer.kernel_size),
                       stride=tuple(layer.stride), padding=pad,
                       dilation=tuple(layer.dilation)).double()
            with torch.no_grad():  # torch's layout: the weight copies in unchanged
                conv.weight.copy_(torch.from_numpy(layer.W.copy()))
                conv.bias.copy_(torch.from_numpy(layer.b.copy()))
            modules.append(conv)
            if layer.activation != "identity":
                modules.append({"tanh": torch.nn.Tanh(), "relu": torch.nn.ReLU(),
                                "sigmoid": torch.nn.Sigmoid(),
                                "leaky_relu": torch.nn.LeakyReLU()}[layer.activation])
        elif name == "Flatten":
            modules.append(torch.nn.Flatten())
        else:
            lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                lin.bias.copy_(torch.from_numpy(layer.b.copy()))
            modules.append(lin)
    model = torch.nn.Sequential(*modules)
    X, y = data_for(net, 4)
    loss_t = torch.nn.functional.mse_loss(model(torch.from_numpy(X)), torch.from_numpy(y))
    loss_t.backward()
    loss_f, grad = net.loss_and_grad(X, y)
    assert abs(loss_f - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    assert rel_err(net.forward(X), model(torch.from_numpy(X)).detach().numpy()) <= 1e-10
    expected = []
    for m in modules:
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)):
            expected += [m.weight.grad.numpy().ravel(), m.bias.grad.numpy()]
        elif isinstance(m, torch.nn.Linear):
            expected += [m.weight.grad.numpy().T.ravel(), m.bias.grad.numpy()]
    assert rel_err(grad, np.concatenate(expected)) <= 1e-10
