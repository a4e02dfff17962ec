"""MaxPool1D/2D, AvgPool1D/2D and GlobalAvgPool: spec, kernels and twin together, torch."""

import numpy as np
import pytest
from kind_checks import check_finite_differences, check_twin, data_for, rel_err

import fastbp as fb
from fastbp import _codes as codes

CONFIGS = {  # name -> (a conv, the pool, input shape); a Flatten and a Dense follow
    "max2d-k2": (fb.Conv2D(1, 2, 3, padding=1, activation="tanh"), fb.MaxPool2D(2), (1, 6, 5)),
    "max2d-k3-s2-p1": (fb.Conv2D(2, 2, 2), fb.MaxPool2D(3, stride=2, padding=1), (2, 6, 7)),
    "max2d-rect": (fb.Conv2D(1, 2, 1), fb.MaxPool2D((2, 3), stride=(1, 2)), (1, 4, 7)),
    "avg2d-k2": (fb.Conv2D(1, 2, 3, padding=1), fb.AvgPool2D(2), (1, 6, 5)),
    "avg2d-k3-s2-p1": (fb.Conv2D(2, 2, 2), fb.AvgPool2D(3, stride=2, padding=1), (2, 6, 7)),
    "max1d-k3-s2-p1": (fb.Conv1D(2, 3, 3, padding=1), fb.MaxPool1D(3, stride=2, padding=1), (2, 7)),
    "max1d-k2": (fb.Conv1D(2, 3, 3, activation="relu"), fb.MaxPool1D(2), (2, 9)),
    "avg1d-k2": (fb.Conv1D(2, 3, 3), fb.AvgPool1D(2), (2, 7)),
    "global-2d": (fb.Conv2D(2, 3, 3, padding=1, activation="relu"), fb.GlobalAvgPool(), (2, 4, 5)),
    "global-1d": (fb.Conv1D(2, 3, 3), fb.GlobalAvgPool(), (2, 6)),
}


def build(config, dtype="float64"):
    conv, pool, shape = CONFIGS[config]
    probe = fb.Network([conv, pool, fb.Flatten()], input_shape=shape, loss="mse")
    return fb.Network([conv, pool, fb.Flatten(), fb.Dense(probe.n_outputs, 3)], input_shape=shape,
                      loss="mse", dtype=dtype, seed=2)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_finite_differences(config):
    # random inputs: no two values of a max window within the 1e-6 step (no kinks crossed)
    check_finite_differences(build(config), n=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_twin_agrees(config, dtype):
    check_twin(build(config, dtype), n=4)


def test_max_ties_send_the_gradient_to_the_first_maximum():
    net = fb.Network([fb.MaxPool2D(2), fb.Flatten()], input_shape=(1, 2, 2), loss="mse",
                     dtype="float64")
    X = np.ones((1, 1, 2, 2))
    net.train_step(X, np.zeros((1, 1)), fb.SGD())  # fills the argmax scratch
    assert net.forward(X)[0, 0] == 1.0
    start = net.engine.plan.table[0, codes.L_SCRATCH_OFFSET]  # batch of one: per-sample offsets
    assert net.engine.ws[start] == 0  # the argmax is the first position of the window


@pytest.mark.parametrize("pool,shape,X,expected", [
    # kernel and stride 2 (their own loop): the maximum repeats in a later row and column
    (fb.MaxPool2D(2), (1, 2, 4), [[0, 1, 3, 2], [1, 0, 3, 3]], [1, 2]),
    # other unpadded windows (overlapping here): the same rule in the generic loop
    (fb.MaxPool2D(2, stride=1), (1, 2, 3), [[0, 2, 1], [2, 2, 0]], [1, 1]),
    # padded windows (clipped): every value ties; each window's first inside element wins
    (fb.MaxPool2D(3, stride=1, padding=1), (1, 3, 3), np.ones((3, 3)),
     [0, 0, 1, 0, 0, 1, 3, 3, 4]),
    (fb.MaxPool1D(2), (1, 6), [[5, 5, 1, 7, 7, 7]], [0, 3, 4]),
], ids=["2d-halving", "2d-unpadded", "2d-padded", "1d-halving"])
def test_max_ties_go_to_the_first_maximum_in_row_major_order(pool, shape, X, expected):
    net = fb.Network([pool, fb.Flatten()], input_shape=shape, loss="mse", dtype="float64")
    X = np.asarray(X, dtype=np.float64).reshape(1, *shape)
    net.train_step(X, np.zeros((1, net.n_outputs)), fb.SGD())  # fills the argmax scratch
    start = net.engine.plan.table[0, codes.L_SCRATCH_OFFSET]  # batch of one: per-sample offsets
    np.testing.assert_array_equal(net.engine.ws[start : start + len(expected)], expected)


@pytest.mark.parametrize("make,text", [
    (lambda: fb.MaxPool2D(2, padding=2), r"padding \(2, 2\) must be at most half of kernel_size"),
    (lambda: fb.Network([fb.MaxPool2D(5)], input_shape=(1, 4, 4)), "kernel_size .* is larger"),
    (lambda: fb.Network([fb.MaxPool1D(2)], input_shape=(1, 4, 4)),
     r"expects per-sample inputs of shape \(C, L\)"),
    (lambda: fb.Network([fb.GlobalAvgPool()], input_shape=(4,)), "GlobalAvgPool expects"),
], ids=["padding", "kernel", "rank", "global-rank"])
def test_bad_specs(make, text):
    with pytest.raises(ValueError, match=text):
        make()


def test_stride_defaults_to_the_kernel_and_configs_round_trip():
    pool = fb.Network([fb.MaxPool2D((2, 3))], input_shape=(1, 6, 9), loss="mse").layers[0]
    assert pool.stride == (2, 3) and pool.output_shape == (1, 3, 3)
    assert fb.layers.layer_from_config(pool.get_config()).get_config() == pool.get_config()


@pytest.mark.slow  # 30 epochs of a CNN (and very long as plain Python)
def test_a_cnn_on_digit_images_reaches_98_percent():
    (X, y), (X_test, y_test) = fb.datasets.load_digits(images=True)
    net = fb.Network([fb.Conv2D(1, 32, 3, padding=1, activation="relu"),
                      fb.Conv2D(32, 32, 3, padding=1, activation="relu"), fb.MaxPool2D(2),
                      fb.Flatten(), fb.Dropout(0.3), fb.Dense(32 * 4 * 4, 10)],
                     input_shape=(1, 8, 8), seed=0)
    net.fit(X, y, optimizer=fb.Adam(lr=1e-3), epochs=30, batch_size=32, verbose=0)
    assert net.evaluate(X_test, y_test)["accuracy"] >= 0.98  # measured 0.994


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_torch_pooling(config):
    torch = pytest.importorskip("torch")
    net = build(config)
    conv, pool, dense = net.layers[0], net.layers[1], net.layers[3]
    two = type(conv).__name__ == "Conv2D"
    t_conv = (torch.nn.Conv2d if two else torch.nn.Conv1d)(
        conv.in_channels, conv.out_channels, tuple(conv.kernel_size), stride=tuple(conv.stride),
        padding=tuple(conv.padding), dilation=tuple(conv.dilation)).double()
    name = type(pool).__name__
    if name == "GlobalAvgPool":
        t_pool = torch.nn.AdaptiveAvgPool2d(1) if two else torch.nn.AdaptiveAvgPool1d(1)
    else:
        t_pool = getattr(torch.nn, name.replace("1D", "1d").replace("2D", "2d"))(
            tuple(pool.kernel_size), stride=tuple(pool.stride), padding=tuple(pool.padding))
    lin = torch.nn.Linear(dense.n_in, dense.n_out).double()
    with torch.no_grad():
        t_conv.weight.copy_(torch.from_numpy(conv.W.copy()))
        t_conv.bias.copy_(torch.from_numpy(conv.b.copy()))
        lin.weight.copy_(torch.from_numpy(dense.W.T.copy()))
        lin.bias.copy_(torch.from_numpy(dense.b.copy()))
    acts = {"tanh": [torch.nn.Tanh()], "relu": [torch.nn.ReLU()], "identity": []}
    model = torch.nn.Sequential(t_conv, *acts[conv.activation], t_pool, torch.nn.Flatten(), lin)
    X, y = data_for(net, 4)
    loss_t = torch.nn.functional.mse_loss(model(torch.from_numpy(X)), torch.from_numpy(y))
    loss_t.backward()
    loss_f, grad = net.loss_and_grad(X, y)
    assert abs(loss_f - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    expected = np.concatenate([t_conv.weight.grad.numpy().ravel(), t_conv.bias.grad.numpy(),
                               lin.weight.grad.numpy().T.ravel(), lin.bias.grad.numpy()])
    assert rel_err(grad, expected) <= 1e-10


@pytest.mark.parametrize("pool,shape,at", [
    (fb.MaxPool2D(2), (2, 2, 4), (0, 1)),                      # kernel and stride 2 loop
    (fb.MaxPool2D(2, stride=1), (2, 2, 4), (1, 1)),            # generic unpadded loop
    (fb.MaxPool2D(3, stride=1, padding=1), (2, 3, 5), (1, 1)),  # padded (clipped) windows
    (fb.MaxPool1D(2), (2, 6), (1,)),                            # one-row halving loop
], ids=["2d-halving", "2d-unpadded", "2d-padded", "1d-halving"])
def test_a_nan_anywhere_in_a_window_is_its_maximum_as_torch(pool, shape, at):
    # Inputs cannot be NaN (check_batch), so two 1x1 convolutions make one where both
    # input channels are 3e38: +inf and -inf channels (overflow), then their sum.
    conv = fb.Conv2D if len(shape) == 3 else fb.Conv1D
    net = fb.Network([conv(2, 2, 1), conv(2, 1, 1), pool, fb.Flatten()], input_shape=shape,
                     loss="mse", dtype="float32")
    first, second = net.layers[0], net.layers[1]
    first.W = np.array([[1.0, 1.0], [-1.0, -1.0]]).reshape(first.W.shape)
    second.W = np.ones(second.W.shape)
    first.b, second.b = np.zeros(2), np.zeros(1)
    X = np.zeros((1, *shape), dtype=np.float32)
    X[(0, slice(None), *at)] = 3e38
    with np.errstate(over="ignore", invalid="ignore"):
        out = net.forward(X)
    # the first window holds the NaN, not as its first element; some window does not
    assert np.isnan(out[0, 0]) and np.isfinite(out[0]).any()


def _first_maximum(windows):
    """The exact rule per window (rows of ``windows``): the first NaN, else the first
    maximum; its value and its position in the window."""
    values, places = [], []
    for w in windows:
        nan = np.flatnonzero(np.isnan(w))
        k = int(nan[0]) if nan.size else int(np.argmax(w))
        values.append(w[k])
        places.append(k)
    return np.array(values), np.array(places)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rows", [2, 1], ids=["2d", "1d"])
def test_halving_loops_keep_the_first_maximum_with_ties_nan_and_infinities(rows, seed):
    # The branch-free tournaments (kernels/pool.py) against the rule itself, on values drawn
    # from a few (ties everywhere, as after a ReLU) with NaN and +-inf sprinkled in.
    from fastbp.kernels import pool as kernels

    rng = np.random.default_rng(seed)
    C, H, W = 3, 2 * rows, 8
    x = rng.choice(np.array([0.0, 1.0, 2.0, -1.0], np.float32), size=(2, C * H * W))
    hits = rng.random(x.shape) < 0.1
    x[hits] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), size=hits.sum())
    HO, WO = H // rows, W // 2
    out = np.zeros((2, C * HO * WO), np.float32)
    where = np.zeros_like(out)
    if rows == 2:
        kernels._max_halving(x, out, where, C, H, W, HO, WO)
    else:
        kernels._max_halving_rows(x, out, where, C, H, W, HO, WO)
    planes = x.reshape(2, C, HO, rows, WO, 2).transpose(0, 1, 2, 4, 3, 5)
    windows = planes.reshape(-1, rows * 2)
    value, k = _first_maximum(windows)
    np.testing.assert_array_equal(out.ravel(), value)
    # the flat input index: the window's top-left corner plus the place in the window
    i, c, oh, ow = np.indices((2, C, HO, WO)).reshape(4, -1)
    corner = (c * H + rows * oh) * W + 2 * ow
    np.testing.assert_array_equal(where.ravel(), corner + (k // 2) * W + k % 2)


# the forward kernel each configuration runs (kernels/pool.py's VARIANTS): the twin and
# torch checks above cover every one of them only if the choice is the one intended
VARIANT_OF = {"max2d-k2": 1, "max1d-k2": 2, "max2d-rect": 3}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_each_configuration_runs_its_own_forward_kernel(config):
    from fastbp import _dispatch

    plan = build(config).engine.plan
    row = plan.table[1]  # the pool, after the convolution
    assert _dispatch.KERNEL_MODULES[int(row[codes.L_KIND])].__name__ == "fastbp.kernels.pool"
    assert _dispatch.row_variant(row, plan.ints) == VARIANT_OF.get(config, 0)
