"""RNN / GRU / LSTM: spec, kernels and twin together, against torch, and on digit rows."""

import numpy as np
import pytest
from kind_checks import (
    check_finite_differences,
    check_flat_and_shaped_inputs_agree,
    check_twin,
    data_for,
    jitter_parameters,
    rel_err,
)

import fastbp as fb

MAKERS = {
    "rnn_tanh": lambda F, H, **kw: fb.RNN(F, H, **kw),
    "rnn_relu": lambda F, H, **kw: fb.RNN(F, H, activation="relu", **kw),
    "gru": lambda F, H, **kw: fb.GRU(F, H, **kw),
    "lstm": lambda F, H, **kw: fb.LSTM(F, H, **kw),
}
DIRECTIONS = {"uni": False, "bi": True}
OUTPUTS = {"last": False, "seq": True}


def build(kind, direction="uni", output="last", T=3, H=2, F=2, dtype="float64", seed=1):
    """The recurrent layer, Flatten, Dense(., 2): every kind has a Dense after it so that
    every output (each step's, each direction's) reaches the loss through other weights."""
    layer = MAKERS[kind](F, H, bidirectional=DIRECTIONS[direction],
                         return_sequences=OUTPUTS[output])
    width = (T if OUTPUTS[output] else 1) * (2 if DIRECTIONS[direction] else 1) * H
    return fb.Network([layer, fb.Flatten(), fb.Dense(width, 2)], input_shape=(T, F),
                      loss="mse", dtype=dtype, seed=seed)


@pytest.mark.parametrize("T,H", [(1, 1), (4, 3)], ids=["T1-H1", "T4-H3"])
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_finite_differences_kind_direction_output_size(kind, direction, output, T, H):
    check_finite_differences(build(kind, direction, output, T=T, H=H), n=2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_twin_agrees(kind, direction, output, dtype):
    # float32 stays within RTOL 1e-4 although the kernels' float32 tanh and sigmoid are
    # rational approximations (~2 ulp, kernels/transcendental.py) and the twin's exact.
    net = build(kind, direction, output, T=5, H=3, dtype=dtype)
    check_twin(net, n=4)
    check_flat_and_shaped_inputs_agree(net)


@pytest.mark.parametrize("F,H", [(2, 3), (5, 6)], ids=["F2-H3", "F5-H6"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_single_row_agrees_with_twin_and_finite_differences(kind, dtype, F, H):
    # one column: the GRU and LSTM cells run with m a constant (kernels/recurrent_cells.py);
    # both directions and outputs, at two sizes
    for direction, output in [("bi", "seq"), ("uni", "last")]:
        check_twin(build(kind, direction, output, T=5, H=H, F=F, dtype=dtype), n=1)
    if dtype == "float64":
        check_finite_differences(build(kind, "bi", "seq", T=4, H=H, F=F), n=1)


@pytest.fixture
def no_single_row_kernels():
    """The single-sequence kernels' table as if none were compiled in this process yet
    (put back afterwards): what a network's first single row served finds."""
    from fastbp import _dispatch
    from fastbp.kernels import dispatch

    saved_table = list(dispatch.ROW_FORWARDS)
    saved = {k: v for k, v in _dispatch._ADDRESSES.items() if k[0] == "row forward"}
    for k in saved:
        del _dispatch._ADDRESSES[k]
    for slot in range(len(dispatch.ROW_FORWARDS)):
        dispatch.ROW_FORWARDS[slot] = 0
    yield dispatch.ROW_FORWARDS
    for slot, address in enumerate(saved_table):
        dispatch.ROW_FORWARDS[slot] = address
    _dispatch._ADDRESSES.update(saved)


def _batch_scratch(net):
    """The first layer's batch scratch in this thread's inference workspace: w_cat =
    [weight_ih weight_hh] after the BLAS path, weight_ih.T first after the by-hand one."""
    from fastbp import _codes as codes
    from fastbp.kernels.bundles import WS

    ws, row = net.engine._local.arrays[WS], net.engine.plan.table[0]
    start = ws.shape[0] - row[codes.L_BATCH_OFFSET]
    return ws[start : start + row[codes.L_BATCH_SIZE]]


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_single_sequence_served_takes_its_products_by_hand(kind, no_single_row_kernels):
    """A single row served (_codes.F_ONE_ROW) runs the family's single-sequence kernel
    (kernels/recurrent.py's ROW_FORWARDS), compiled before the network's first single row:
    the first row served gives the bits of every later one, the batch path's outputs up to
    rounding (float64, both directions, every step's output, a group of four rows and a
    remainder in each product), and it leaves weight_ih's transpose in the scratch."""
    from fastbp.kernels import recurrent

    net = build(kind, "bi", "seq", T=6, H=6, F=5)
    family = recurrent.family(net.layers[0].cell)
    assert no_single_row_kernels[2 * family + 1] == 0
    X, _ = data_for(net, 3, seed=4)
    served = [net.forward(X[i : i + 1]) for i in range(3)]
    assert no_single_row_kernels[2 * family + 1] != 0  # float64's slot, filled on first use
    assert all(np.array_equal(net.forward(X[i : i + 1]), served[i]) for i in range(3))
    np.testing.assert_allclose(np.concatenate(served), net.forward(X), rtol=1e-12, atol=1e-12)
    uni = build(kind, "uni", "last", T=6, H=6, F=5)
    uni.forward(X[:1])
    G, F, H = uni.layers[0].gates, 5, 6
    w_ih = uni.layers[0].weight_ih
    np.testing.assert_array_equal(_batch_scratch(uni)[: F * G * H].reshape(F, G * H), w_ih.T)
    uni.forward(X[:2])  # the batch path: [weight_ih weight_hh] by rows
    w_cat = _batch_scratch(uni)[: G * H * (F + H)].reshape(G * H, F + H)
    np.testing.assert_array_equal(w_cat[:, :F], w_ih)


def test_a_single_sequence_through_large_weights_takes_blas(no_single_row_kernels):
    # GRU(64, 128): 73,728 weights, beyond ROW_MAX_WEIGHTS: no kernel to compile, and the
    # products go to BLAS (in pieces where the weights reach PIECES_MIN_BYTES)
    from fastbp.kernels import recurrent

    net = fb.Network([fb.GRU(64, 128), fb.Dense(128, 2)], input_shape=(3, 64), dtype="float64",
                     seed=0)
    assert not recurrent.single_sequence_by_hand(net.layers[0].cell, 64, 128)
    X = np.random.default_rng(0).standard_normal((2, 3, 64))
    one = net.forward(X[:1])
    assert list(no_single_row_kernels) == [0] * len(no_single_row_kernels)
    w_cat = _batch_scratch(net)[: 3 * 128 * 192].reshape(3 * 128, 192)
    np.testing.assert_array_equal(w_cat[:, :64], net.layers[0].weight_ih)
    np.testing.assert_allclose(one, net.forward(X)[:1], rtol=1e-12, atol=1e-12)


def test_stacked_layers_with_dropout_between_agree_with_twin():
    layers = [fb.LSTM(3, 4, return_sequences=True), fb.Dropout(0.3),
              fb.GRU(4, 3, bidirectional=True, return_sequences=True),
              fb.RNN(6, 2, bidirectional=True), fb.Dense(4, 2)]
    net = fb.Network(layers, input_shape=(5, 3), loss="mse", dtype="float64", seed=2)
    check_twin(net, n=3)
    check_finite_differences(net, n=2)


@pytest.mark.parametrize("kind,gates", [("rnn_tanh", 1), ("gru", 3), ("lstm", 4)])
def test_torch_names_layouts_and_default_init(kind, gates):
    F, H = 5, 16
    net = fb.Network([MAKERS[kind](F, H, bidirectional=True)], input_shape=(7, F), loss="mse",
                     dtype="float64", seed=0)
    layer = net.layers[0]
    expected = {"weight_ih": (gates * H, F), "weight_hh": (gates * H, H),
                "bias_ih": (gates * H,), "bias_hh": (gates * H,)}
    offset = 0
    for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] * 2:
        name = name if offset < net.params.size // 2 else name + "_reverse"
        view = getattr(layer, name)
        assert view.shape == expected[name.removesuffix("_reverse")]
        assert np.shares_memory(view, net.params)
        assert view.ctypes.data == net.params[offset:].ctypes.data  # torch's order
        offset += view.size
        # torch's default: U(-1/sqrt(H), 1/sqrt(H)) for every tensor (bound 0.25 here)
        assert np.all(np.abs(view) <= 0.25) and np.abs(view).max() > 0.2
    assert layer.output_shape == (2 * H,)
    layer.weight_hh = np.ones(expected["weight_hh"])  # assignment copies into the view
    assert np.all(net.layers[0].weight_hh == 1)


def test_init_orthogonal_and_glorot_as_keras():
    net = fb.Network([fb.LSTM(6, 8, init={"weight_ih": "glorot_uniform",
                                          "weight_hh": "orthogonal"})],
                     input_shape=(3, 6), loss="mse", dtype="float64", seed=0)
    layer = net.layers[0]
    # (4H, H) with orthonormal columns, as torch.nn.init.orthogonal_ of that shape
    np.testing.assert_allclose(layer.weight_hh.T @ layer.weight_hh, np.eye(8), atol=1e-12)
    limit = np.sqrt(6.0 / (6 + 32))  # Glorot with fan-in F, fan-out 4H
    assert np.all(np.abs(layer.weight_ih) <= limit) and np.abs(layer.weight_ih).max() > 0.8 * limit
    assert np.all(layer.bias_ih == 0) and np.all(layer.bias_hh == 0)  # Keras: zero biases
    one = fb.Network([fb.GRU(3, 4, init="orthogonal")], input_shape=(2, 3), loss="mse", seed=0)
    w = one.layers[0].weight_ih.astype(np.float64)  # (12, 3): orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(3), atol=1e-6)
    assert fb.GRU(3, 4, init="orthogonal").get_config()["init"] == "orthogonal"


def test_output_shapes_and_final_states():
    """return_sequences=False is torch's h_n: forward at step T-1, backward at step 0."""
    seq = fb.Network([fb.GRU(3, 4, bidirectional=True, return_sequences=True)],
                     input_shape=(6, 3), loss="mse", dtype="float64", seed=0)
    last = fb.Network([fb.GRU(3, 4, bidirectional=True)], input_shape=(6, 3), loss="mse",
                      dtype="float64", seed=0)
    X, _ = data_for(seq, 5)
    every = seq.forward(X).reshape(5, 6, 8)
    np.testing.assert_array_equal(last.forward(X), np.concatenate(
        [every[:, -1, :4], every[:, 0, 4:]], axis=1))


def test_loss_and_grad_changes_nothing_and_save_load_round_trip(tmp_path):
    net = build("lstm", "bi", "seq", T=4, H=3, dtype="float32")
    jitter_parameters(net)
    X, y = data_for(net, 6)
    before = net.params.copy()
    net.loss_and_grad(X, y)
    np.testing.assert_array_equal(net.params, before)
    opt = fb.Adam(lr=1e-2)
    net.fit(X, y, optimizer=opt, epochs=2, batch_size=3, verbose=0)
    net.save(tmp_path / "rnn.npz", optimizer=opt)
    loaded, opt2 = fb.load(tmp_path / "rnn.npz", return_optimizer=True)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    assert loaded.train_step(X, y, opt2) == net.train_step(X, y, opt)


@pytest.mark.parametrize("make,error,match", [
    (lambda: fb.GRU(0, 4), ValueError, "input_size"),
    (lambda: fb.LSTM(3, 0), ValueError, "hidden_size"),
    (lambda: fb.RNN(3, 4, activation="sigmoid"), ValueError, "activation"),
    (lambda: fb.GRU(3, 4, return_sequences="yes"), TypeError, "return_sequences"),
    (lambda: fb.LSTM(3, 4, bidirectional=1), TypeError, "bidirectional"),
    (lambda: fb.GRU(3, 4, init="zeros"), ValueError, "init"),
    (lambda: fb.GRU(3, 4, init={"bias_ih": "orthogonal"}), ValueError, "init"),
    (lambda: fb.Network([fb.GRU(3, 4)], input_shape=(5, 2), loss="mse"), ValueError,
     "input_size=3"),
    (lambda: fb.Network([fb.GRU(3, 4)], input_shape=(15,), loss="mse"), ValueError, r"\(T, F\)"),
    (lambda: fb.Network([fb.GRU(3, 4, return_sequences=True), fb.Dense(5, 2)],
                        input_shape=(5, 3), loss="mse"), ValueError, "layers\\[1\\]"),
], ids=["input-size", "hidden-size", "activation", "return-sequences", "bidirectional",
        "init-name", "init-key", "input-size-mismatch", "not-a-sequence", "sequence-into-dense"])
def test_bad_arguments_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_X_shape_and_non_finite_loss_leave_the_network_unchanged():
    net = build("gru", T=4, H=3, F=2)
    X, y = data_for(net, 5)
    before = net.params.copy()
    for bad in (X[:, :3], X[:, :, :1], X.reshape(5, 2, 4)):
        with pytest.raises(ValueError, match="X"):
            net.train_step(bad, y, fb.SGD(lr=0.1))
    relu = fb.Network([fb.RNN(2, 3, activation="relu"), fb.Dense(3, 2)], input_shape=(40, 2),
                      loss="mse", dtype="float32", seed=0)
    relu.params = relu.params * 0 + 30.0  # the state grows 90x per step: float32 overflows
    relu_before = relu.params.copy()
    with pytest.raises(FloatingPointError):
        relu.train_step(np.ones((2, 40, 2)), np.zeros((2, 2)), fb.SGD(lr=0.1))
    np.testing.assert_array_equal(relu.params, relu_before)
    np.testing.assert_array_equal(net.params, before)


def test_digits_as_sequences_gru_reaches_95_percent():
    (Xtr, ytr), (Xte, yte) = fb.datasets.load_digits(sequences=True)
    assert Xtr.shape[1:] == (8, 8)
    net = fb.Network([fb.GRU(8, 32), fb.Dense(32, 10)], input_shape=(8, 8),
                     loss="cross_entropy", seed=0)
    net.fit(Xtr, ytr, optimizer=fb.Adam(lr=3e-3), epochs=30, batch_size=32, verbose=0)
    assert np.mean(net.predict(Xte) == yte) >= 0.95


# ------------------------------------------------------------------------------- torch
def _torch_twin(net):
    """A torch module computing what ``net`` (recurrent layer, Flatten, Dense) computes,
    with its weights copied in by torch's names."""
    import torch

    layer, dense = net.layers[0], net.layers[-1]
    cls = {"RNN": torch.nn.RNN, "GRU": torch.nn.GRU, "LSTM": torch.nn.LSTM}[type(layer).__name__]
    kwargs = {"nonlinearity": layer.activation} if type(layer).__name__ == "RNN" else {}
    rnn = cls(layer.input_size, layer.hidden_size, batch_first=True,
              bidirectional=layer.bidirectional, **kwargs).double()
    linear = torch.nn.Linear(dense.n_in, dense.n_out).double()
    with torch.no_grad():
        for name in layer.parameter_shapes():
            torch_name = name.replace("_reverse", "") + "_l0" + (
                "_reverse" if name.endswith("_reverse") else "")
            getattr(rnn, torch_name).copy_(torch.from_numpy(getattr(layer, name).copy()))
        linear.weight.copy_(torch.from_numpy(dense.W.T.copy()))
        linear.bias.copy_(torch.from_numpy(dense.b.copy()))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.linear = rnn, linear

        def forward(self, x):
            output, state = self.rnn(x)
            if not layer.return_sequences:  # h_n: (D, n, H) -> (n, D*H), forward first
                h_n = state[0] if isinstance(state, tuple) else state
                output = h_n.transpose(0, 1).reshape(x.shape[0], -1)
            return self.linear(output.reshape(x.shape[0], -1))

    return Model()


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_torch_outputs_and_gradients(kind, direction, output):
    torch = pytest.importorskip("torch")
    net = build(kind, direction, output, T=5, H=3)
    jitter_parameters(net)
    model = _torch_twin(net)
    X, y = data_for(net, 4)
    xt = torch.from_numpy(X)
    # float64, only summation order differs: 1e-10
    assert rel_err(net.forward(X), model(xt).detach().numpy()) <= 1e-10
    loss_t = torch.nn.functional.mse_loss(model(xt), torch.from_numpy(y))
    loss_t.backward()
    loss, grad = net.loss_and_grad(X, y)
    assert abs(loss - loss_t.item()) <= 1e-10 * loss_t.item()
    torch_grad = np.concatenate([p.grad.numpy().ravel() for p in model.rnn.parameters()] +
                                [model.linear.weight.grad.numpy().T.ravel(),
                                 model.linear.bias.grad.numpy()])
    assert rel_err(grad, torch_grad) <= 1e-10


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("kind", ["rnn_tanh", "gru", "lstm"])
def test_adam_trajectory_matches_torch_for_100_steps(kind):
    """The same weights, data and Adam: 100 steps stay together to rounding (float64; the
    difference grows with the steps, 1e-8 relative leaves ample room above ~1e-13)."""
    torch = pytest.importorskip("torch")
    net = build(kind, "bi", "seq", T=6, H=4)
    model = _torch_twin(net)
    opt_t = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt = fb.Adam(lr=1e-2)
    rng = np.random.default_rng(3)
    for _ in range(100):
        X = rng.normal(size=(8, 6, 2))
        y = rng.normal(size=(8, 2))
        opt_t.zero_grad()
        loss_t = torch.nn.functional.mse_loss(model(torch.from_numpy(X)), torch.from_numpy(y))
        loss_t.backward()
        opt_t.step()
        loss = net.train_step(X, y, opt)
        assert abs(loss - loss_t.item()) <= 1e-8 * loss_t.item()
    torch_params = np.concatenate([p.detach().numpy().ravel() for p in model.rnn.parameters()]
                                  + [model.linear.weight.detach().numpy().T.ravel(),
                                     model.linear.bias.detach().numpy()])
    assert rel_err(net.params, torch_params) <= 1e-8
