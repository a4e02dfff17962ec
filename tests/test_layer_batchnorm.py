"""BatchNorm1D / BatchNorm2D: spec, kernels and twin together; modes, buffers, torch."""

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

CONFIGS = {  # name -> (layers, input_shape)
    "1d-features-after-dense": (lambda **kw: [fb.Dense(4, 5), fb.BatchNorm1D(5, **kw),
                                              fb.Activation("tanh"), fb.Dense(5, 3)], (4,)),
    "1d-channels-length-first": (lambda **kw: [fb.BatchNorm1D(3, **kw), fb.Flatten(),
                                               fb.Dense(12, 3)], (3, 4)),
    "2d-first": (lambda **kw: [fb.BatchNorm2D(2, **kw), fb.Activation("relu"), fb.Flatten(),
                               fb.Dense(18, 3)], (2, 3, 3)),
}
OPTIONS = {"default": {}, "no-affine": {"affine": False}, "cumulative": {"momentum": None},
           "eps-momentum": {"eps": 1e-3, "momentum": 0.5}}


def build(config, options="default", dtype="float64", seed=1):
    make, shape = CONFIGS[config]
    return fb.Network(make(**OPTIONS[options]), input_shape=shape, loss="mse", dtype=dtype,
                      seed=seed)


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_finite_differences_through_batch_statistics(config, options):
    check_finite_differences(build(config, options), n=4)


def test_finite_differences_batch_of_one_with_positions():
    # (n, C, L) with n = 1: the statistics run over L positions, as torch allows
    check_finite_differences(build("1d-channels-length-first"), n=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_twin_agrees_including_running_statistics(config, options, dtype):
    net = build(config, options, dtype)
    check_twin(net, n=6, steps=3)
    check_flat_and_shaped_inputs_agree(net)


def test_tensors_are_views_with_torchs_names_and_initial_values():
    net = build("2d-first")
    bn = net.layers[0]
    assert np.array_equal(bn.weight, [1, 1]) and np.array_equal(bn.bias, [0, 0])
    assert np.array_equal(bn.running_mean, [0, 0]) and np.array_equal(bn.running_var, [1, 1])
    assert bn.num_batches_tracked == 0
    assert np.shares_memory(bn.weight, net.params) and np.shares_memory(bn.running_var, net.buffers)


def test_modes_forward_never_moves_a_buffer_and_loss_and_grad_changes_nothing():
    net = build("1d-features-after-dense")
    X, y = data_for(net, 6)
    net.train_step(X, y, fb.SGD(lr=0.1))
    assert net.layers[1].num_batches_tracked == 1 and not np.all(net.layers[1].running_mean == 0)
    before = (net.params.copy(), net.buffers.copy())
    net.forward(X)
    net.predict(X)
    net.evaluate(X, y)
    net.loss_and_grad(X, y)
    assert np.array_equal(net.params, before[0]) and np.array_equal(net.buffers, before[1])


def test_evaluation_uses_running_statistics():
    net = build("1d-features-after-dense")
    X, _ = data_for(net, 6)
    bn = net.layers[1]
    bn.running_mean = np.arange(5.0)
    bn.running_var = np.full(5, 4.0)
    net.layers[3].W = np.eye(5, 3)
    net.layers[3].b = np.zeros(3)
    h = X @ net.layers[0].W + net.layers[0].b
    expected = np.tanh((h - np.arange(5.0)) / np.sqrt(4.0 + 1e-5))[:, :3]
    assert rel_err(net.forward(X), expected) <= 1e-12


def test_weight_decay_applies_to_weight_and_bias_as_torch():
    net = build("1d-features-after-dense")
    X, y = data_for(net, 6)
    _, grad = net.loss_and_grad(X, y)
    before = net.params.copy()
    net.train_step(X, y, fb.SGD(lr=0.1, weight_decay=0.5))
    assert rel_err(net.params, before - 0.1 * (grad + 0.5 * before)) <= 1e-12


def test_sample_weights_do_not_change_the_batch_statistics():
    a, b = build("1d-features-after-dense"), build("1d-features-after-dense")
    X, y = data_for(a, 6)
    a.train_step(X, y, fb.SGD(lr=0.0))
    b.train_step(X, y, fb.SGD(lr=0.0), sample_weight=np.array([5.0, 1, 1, 1, 1, 0.1]))
    assert np.array_equal(a.buffers, b.buffers)


@pytest.mark.parametrize("make,text", [
    (lambda: fb.Network([fb.Dense(4, 5), fb.BatchNorm1D(6)]),
     r"layers\[1\]: BatchNorm1D\(6\) expects 6 channels"),
    (lambda: fb.Network([fb.BatchNorm2D(2)], input_shape=(2, 3)), r"BatchNorm2D expects per-sample inputs"),
    (lambda: fb.BatchNorm1D(3, eps=0.0), r"BatchNorm1D: eps must be a number > 0"),
    (lambda: fb.BatchNorm1D(3, momentum=1.5),
     r"BatchNorm1D: momentum must be a number in \[0.0, 1.0\] or None"),
    (lambda: fb.BatchNorm2D(0), "num_features must be a positive int"),
], ids=["channels", "rank", "eps", "momentum", "num_features"])
def test_bad_specs_name_the_layer(make, text):
    with pytest.raises(ValueError, match=text):
        make()


def test_a_batch_of_one_value_per_channel_is_refused_and_changes_nothing():
    net = build("1d-features-after-dense")
    X, y = data_for(net, 5)
    before = (net.params.copy(), net.buffers.copy())
    opt = fb.SGD(lr=0.1)
    with pytest.raises(ValueError, match=r"layers\[1\] \(BatchNorm1D\) expected more than 1 value per "
                                         "channel when training"):
        net.train_step(X[:1], y[:1], opt)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        net.loss_and_grad(X[:1], y[:1])
    with pytest.raises(ValueError, match="leaves a last batch of 1 row"):
        net.fit(X, y, optimizer=opt, batch_size=2, verbose=0)
    assert np.array_equal(net.params, before[0]) and np.array_equal(net.buffers, before[1])
    assert opt._network is None
    net.forward(X[:1])  # evaluation mode uses the running statistics: one row is fine


# -- buffers through save/load, rollback and early stopping ----------------------------------

def test_buffers_are_saved_and_loaded(tmp_path):
    net = build("2d-first")
    X, y = data_for(net, 6)
    net.fit(X, y, optimizer=fb.Adam(lr=0.01), epochs=2, batch_size=3, verbose=0)
    fb.save(net, tmp_path / "bn.npz")
    back = fb.load(tmp_path / "bn.npz")
    assert np.array_equal(back.buffers, net.buffers) and back.buffers.size == 5
    assert np.array_equal(back.forward(X), net.forward(X))


def test_a_failed_epoch_rolls_the_buffers_back():
    net = build("1d-features-after-dense")
    X, y = data_for(net, 8)
    opt = fb.SGD(lr=0.01)
    net.fit(X, y, optimizer=opt, epochs=1, batch_size=4, verbose=0)
    good = net.buffers.copy()
    opt.lr = 1e300  # the first batch moves the statistics, the second overflows
    with pytest.raises(FloatingPointError):
        net.fit(X * 1e3, y, optimizer=opt, epochs=1, batch_size=4, verbose=0)
    assert np.array_equal(net.buffers, good)


def test_early_stopping_restores_the_best_buffers():
    net = build("1d-features-after-dense")
    X, y = data_for(net, 12)
    Xv, yv = data_for(net, 6, seed=9)

    class Record(fb.Callback):
        def __init__(self):
            self.buffers = []

        def on_epoch_end(self, epoch, logs=None):
            self.buffers.append(self.network.buffers.copy())

    record = Record()
    stop = fb.EarlyStopping(patience=2)
    net.fit(X, y, optimizer=fb.Adam(lr=0.3), epochs=30, batch_size=4, verbose=0,
            validation_data=(Xv, yv), early_stopping=stop, callbacks=[record])
    assert stop.best_epoch < len(record.buffers) - 1  # it did stop after a worse epoch
    assert np.array_equal(net.buffers, record.buffers[stop.best_epoch])


@pytest.mark.slow  # 16 epochs of a 10-layer network (and minutes as plain Python)
def test_deep_sigmoid_mlp_on_digits_trains_with_batchnorm_and_not_without(digits):
    (X, y), (X_test, y_test) = digits

    def deep(batchnorm):
        layers, width = [], 64
        for _ in range(8):
            layers += [fb.Dense(width, 32)] + ([fb.BatchNorm1D(32)] if batchnorm else []) \
                + [fb.Activation("sigmoid")]
            width = 32
        return fb.Network(layers + [fb.Dense(32, 10)], seed=0)

    scores = {}
    for batchnorm in (False, True):
        net = deep(batchnorm)
        net.fit(X, y, optimizer=fb.SGD(lr=0.1, momentum=0.9), epochs=8, batch_size=32, verbose=0)
        scores[batchnorm] = net.evaluate(X_test, y_test)["accuracy"]
    # measured: 0.10 without (eight sigmoids stall SGD) and 0.95 with BatchNorm
    assert scores[False] < 0.3 and scores[True] > 0.9


# -- against torch -----------------------------------------------------------------------------

@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("config", ["1d-features-after-dense", "2d-first"])
def test_torch_loss_gradients_eval_outputs_and_running_statistics(config, options):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = build(config, options)
    kw = OPTIONS[options]
    modules, lins = [], []
    for layer in net.layers:
        name = type(layer).__name__
        if name == "Dense":
            lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                lin.bias.copy_(torch.from_numpy(layer.b.copy()))
            modules.append(lin)
            lins.append(lin)
        elif name.startswith("BatchNorm"):
            cls = torch.nn.BatchNorm1d if name == "BatchNorm1D" else torch.nn.BatchNorm2d
            modules.append(cls(layer.num_features, **kw).double())
        elif name == "Activation":
            modules.append({"tanh": torch.nn.Tanh(), "relu": torch.nn.ReLU()}[layer.activation])
        else:
            modules.append(torch.nn.Flatten())
    model = torch.nn.Sequential(*modules)
    opt_t = torch.optim.SGD(model.parameters(), lr=0.05)
    opt_f = fb.SGD(lr=0.05)
    for step in range(4):
        X, y = data_for(net, 6, seed=step)
        model.train()
        opt_t.zero_grad()
        loss_t = torch.nn.functional.mse_loss(model(torch.from_numpy(X)), torch.from_numpy(y))
        loss_t.backward()
        _, grad = net.loss_and_grad(X, y)
        bn = next(m for m in modules if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
        if bn.affine:  # fastbp's BatchNorm gradient slice, against torch's
            layer = next(la for la in net.layers if type(la).__name__.startswith("BatchNorm"))
            offset = sum(la.n_params for la in net.layers[: net.layers.index(layer)])
            assert rel_err(grad[offset : offset + layer.num_features], bn.weight.grad.numpy()) <= 1e-10
        loss_f = net.train_step(X, y, opt_f)
        opt_t.step()
        assert abs(loss_f - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    bn_f = next(la for la in net.layers if type(la).__name__.startswith("BatchNorm"))
    assert rel_err(bn_f.running_mean, bn.running_mean.numpy()) <= 1e-10
    assert rel_err(bn_f.running_var, bn.running_var.numpy()) <= 1e-10
    assert bn_f.num_batches_tracked == bn.num_batches_tracked.item()
    model.eval()
    X, _ = data_for(net, 5, seed=42)
    assert rel_err(net.forward(X), model(torch.from_numpy(X)).detach().numpy()) <= 1e-10
    assert rel_err(net.layers[-1].W, lins[-1].weight.detach().numpy().T) <= 1e-10
