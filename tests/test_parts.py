"""A training batch split by rows over threads (kernels/step.py's parts_step): the same
gradient as the whole batch up to float32 summation order, the same bits whether the parts
run at once or one after another, the same bits from fit's epoch kernel as from train_step,
weights, bad input and non-finite losses handled as the whole-batch step handles them,
batch statistics kept whole through sync points (kernels/synced.py), and networks with
active dropout never split."""

from __future__ import annotations

import numpy as np
import pytest

import fastbp as fb
from fastbp import _codes as codes
from fastbp import _engine as network_module
from fastbp import _threads
from fastbp._engine import GRAD_FLAGS

# float32 gradients summed in a different order (two partial sums, then a weighted sum):
# differences of a few ulps of the largest gradient entry
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(autouse=True)
def _two_parts_for_any_size(monkeypatch):
    """Split every batch of at least 4 rows into 2 parts, whatever the machine."""
    monkeypatch.setattr(network_module, "SPLIT_MIN_WORK", 1)
    fb.set_num_threads(2)
    yield
    fb.set_num_threads(None)


def _networks():
    return {
        "mlp": (lambda: fb.Network.mlp([6, 16, 3], seed=0), (6,)),
        "mlp_sigmoid_layernorm": (lambda: fb.Network(
            [fb.Dense(6, 16, activation="sigmoid"), fb.LayerNorm(16), fb.Dense(16, 3)],
            seed=0), (6,)),
        "cnn": (lambda: fb.Network(
            [fb.Conv2D(1, 4, 3, padding=1, activation="relu"), fb.MaxPool2D(2), fb.Flatten(),
             fb.Dense(4 * 3 * 3, 3)], input_shape=(1, 6, 6), seed=0), (1, 6, 6)),
        "gru": (lambda: fb.Network([fb.GRU(3, 5), fb.Dense(5, 3)], input_shape=(4, 3),
                                   seed=0), (4, 3)),
        # batch statistics: the parts run in rounds, synchronised at each BatchNorm
        "mlp_batchnorm": (lambda dtype="float32": fb.Network(
            [fb.Dense(6, 16), fb.BatchNorm1D(16), fb.Activation("relu"), fb.Dense(16, 3),
             fb.BatchNorm1D(3, momentum=None)], seed=0, dtype=dtype), (6,)),
        "resnet_batchnorm": (lambda dtype="float32": fb.Network(
            [fb.Conv2D(1, 4, 3, padding=1), fb.BatchNorm2D(4), fb.Activation("relu"),
             fb.Residual([fb.Conv2D(4, 4, 3, padding=1), fb.BatchNorm2D(4, affine=False),
                          fb.Activation("relu")], activation="relu"),
             fb.Residual([fb.Conv2D(4, 6, 3, stride=2, padding=1), fb.BatchNorm2D(6)],
                         shortcut=[fb.Conv2D(4, 6, 1, stride=2), fb.BatchNorm2D(6)]),
             # a BatchNorm whose input has another reader (the identity shortcut): its
             # input gradient is added to the shortcut's after its last phase only
             fb.Residual([fb.BatchNorm2D(6), fb.Activation("relu"), fb.Conv2D(6, 6, 3, padding=1)]),
             fb.GlobalAvgPool(), fb.Dense(6, 3)], input_shape=(1, 6, 6), seed=0, dtype=dtype),
            (1, 6, 6)),
    }


NETWORKS = _networks()


def _batch(shape, rows=21, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, *shape)).astype(np.float32), rng.integers(0, 3, rows)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_split_gradient_matches_the_whole_batch(name):
    make, shape = NETWORKS[name]
    X, y = _batch(shape)
    net = make()
    assert net.engine.parts(X.shape[0]) is not net.engine.no_parts  # the batch is split
    loss, grad = net.loss_and_grad(X, y)
    fb.set_num_threads(1)  # one thread: never split
    assert net.engine.parts(X.shape[0]) is net.engine.no_parts
    whole_loss, whole_grad = net.loss_and_grad(X, y)
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    np.testing.assert_allclose(grad, whole_grad, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_parts_at_once_and_one_after_another_give_the_same_bits(name, monkeypatch):
    make, shape = NETWORKS[name]
    X, y = _batch(shape)
    params = []
    for parallel in (True, False):
        monkeypatch.setattr(network_module, "parts_in_parallel", lambda work=0, p=parallel: p)
        net = make()
        opt = fb.Adam(lr=1e-2)
        losses = [net.train_step(X, y, opt) for _ in range(3)]
        params.append((losses, net.params.copy()))
    assert params[0][0] == params[1][0]
    np.testing.assert_array_equal(params[0][1], params[1][1])


@pytest.mark.parametrize("rows", [21, 20, 5])
def test_fit_epochs_equal_train_steps_on_the_same_batches(rows):
    # 21 rows in batches of 8: two split batches and a last one of 5 rows (split too);
    # 20 rows: a last batch of 4; 5 rows: one batch below 8
    make, shape = NETWORKS["mlp"]
    X, y = _batch(shape, rows)
    fitted = make()
    fitted.fit(X, y, optimizer=fb.SGD(lr=0.1, momentum=0.9), epochs=2, batch_size=8,
               shuffle=False, verbose=0)
    stepped = make()
    opt = fb.SGD(lr=0.1, momentum=0.9)
    for _ in range(2):
        for start in range(0, rows, 8):
            stepped.train_step(X[start:start + 8], y[start:start + 8], opt)
    np.testing.assert_array_equal(fitted.params, stepped.params)


def test_a_part_whose_rows_weigh_nothing_is_left_out():
    make, shape = NETWORKS["mlp"]
    X, y = _batch(shape, 20)
    weights = np.ones(20, np.float32)
    weights[:10] = 0  # the whole first part
    net = make()
    loss, grad = net.loss_and_grad(X, y, sample_weight=weights)
    whole_loss, whole_grad = make().loss_and_grad(X[10:], y[10:])
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    np.testing.assert_allclose(grad, whole_grad, rtol=RTOL, atol=ATOL)


def test_bad_rows_are_named_as_in_the_whole_batch_and_change_nothing():
    make, shape = NETWORKS["mlp"]
    X, y = _batch(shape, 20)
    X[15, 2] = np.nan  # in the second part
    net = make()
    before = net.params.copy()
    with pytest.raises(ValueError, match="row 15"):
        net.train_step(X, y, fb.Adam())
    np.testing.assert_array_equal(net.params, before)


def test_a_non_finite_loss_in_one_part_updates_nothing():
    make, shape = NETWORKS["mlp"]
    X, y = _batch(shape, 20)
    X[15] = 1e30  # finite input, overflowing outputs in the second part only
    net = make()
    net.params[:] = 1e10
    before = net.params.copy()
    with pytest.raises(FloatingPointError):
        net.train_step(X, y, fb.SGD(lr=0.1))
    np.testing.assert_array_equal(net.params, before)


def test_dropout_never_splits():
    net = fb.Network([fb.Dense(6, 16), fb.Dropout(0.5), fb.Dense(16, 3)], seed=0)
    net.engine.reserve(64)
    assert net.engine.parts(64) is net.engine.no_parts


@pytest.mark.parametrize("name", ["mlp_batchnorm", "resnet_batchnorm"])
@pytest.mark.parametrize("rows", [21, 64])
def test_batch_statistics_split_in_rounds_equal_the_whole_batch_in_float64(name, rows):
    # the same sums in another order: float64 rounding only; the running statistics move
    # once per step, by the whole batch's mean and unbiased variance
    make, shape = NETWORKS[name]
    X, y = _batch(shape, rows)
    X = X.astype(np.float64)
    split, whole = make("float64"), make("float64")
    assert split.engine.synced and split.engine.parts(rows) is not split.engine.no_parts
    whole.engine.split_rows = range(0)
    for _ in range(3):
        assert split.train_step(X, y, fb.SGD(lr=0.1, momentum=0.9)) == pytest.approx(
            whole.train_step(X, y, fb.SGD(lr=0.1, momentum=0.9)), rel=1e-12)
    np.testing.assert_allclose(split.params, whole.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(split.buffers, whole.buffers, rtol=1e-10, atol=1e-12)


def test_batch_statistics_over_four_parts_one_of_them_empty(monkeypatch):
    # 9 rows in 4 parts of 3: the last part has no rows, and weighs nothing in the averages
    monkeypatch.setattr(network_module, "get_num_threads", lambda: 4)
    make, shape = NETWORKS["mlp_batchnorm"]
    X, y = _batch(shape, 9)
    split, whole = make("float64"), make("float64")
    assert split.engine.parts(9)[1].shape[0] == 4
    whole.engine.split_rows = range(0)
    for net in (split, whole):
        net.train_step(X.astype(np.float64), y, fb.SGD(lr=0.1))
    np.testing.assert_allclose(split.params, whole.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(split.buffers, whole.buffers, rtol=1e-10, atol=1e-12)


def test_a_non_finite_epoch_of_synced_parts_keeps_the_last_finite_state():
    make, shape = NETWORKS["mlp_batchnorm"]
    X, y = _batch(shape, 40)
    net = make()
    net.layers[-1].weight[:] = 3e38
    params, buffers = net.params.copy(), net.buffers.copy()
    with pytest.raises(FloatingPointError):
        net.fit(X, y, optimizer=fb.SGD(lr=0.1), epochs=1, batch_size=20, verbose=0)
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(net.buffers, buffers)


def test_a_non_finite_loss_in_a_synced_part_puts_the_running_statistics_back():
    make, shape = NETWORKS["mlp_batchnorm"]
    X, y = _batch(shape, 20)
    net = make()
    net.layers[-1].weight[:] = 3e38  # x_hat * weight overflows where |x_hat| > 1.13
    params, buffers = net.params.copy(), net.buffers.copy()
    with pytest.raises(FloatingPointError):
        net.train_step(X, y, fb.SGD(lr=0.1))
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(net.buffers, buffers)


def test_dropout_zero_splits():
    net = fb.Network([fb.Dense(6, 16), fb.Dropout(0.0), fb.Dense(16, 3)], seed=0)
    net.engine.reserve(64)
    assert net.engine.parts(64) is not net.engine.no_parts


def test_small_batches_and_steps_stay_whole(monkeypatch):
    monkeypatch.setattr(network_module, "SPLIT_MIN_WORK", 10_000)
    net = fb.Network.mlp([6, 16, 3], seed=0)  # 144 multiply-adds a row: 70 rows at least
    net.engine.reserve(100)
    assert net.engine.parts(69) is net.engine.no_parts
    assert net.engine.parts(70)[2][codes.PART_MIN_ROWS] == 70


def test_products_big_enough_for_pieces_stay_whole():
    # an MLP whose largest product reaches _threads.MIN_PARALLEL_WORK: its products cut
    # into pieces run faster than two parts; a convolution's im2col and pooling gain from parts
    mlp = fb.Network.mlp([784, 128, 10], seed=0)
    mlp.engine.reserve(64)
    assert mlp.engine.parts(39) is not mlp.engine.no_parts and mlp.engine.parts(40) is mlp.engine.no_parts
    cnn = fb.Network([fb.Conv2D(1, 64, 5, activation="relu"), fb.Flatten(),
                      fb.Dense(64 * 24 * 24, 10)], input_shape=(1, 28, 28), seed=0)
    cnn.engine.reserve(64)
    assert cnn.engine.parts(64) is not cnn.engine.no_parts


@pytest.mark.parametrize("explicit", [None, 2])
def test_the_load_decides_only_whether_parts_run_at_once(monkeypatch, explicit):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    fb.set_num_threads(explicit)
    mlp = fb.Network.mlp([784, 128, 10], seed=0)
    mlp.engine.reserve(64)
    for busy in (False, True):
        monkeypatch.setattr(_threads._monitor, "is_busy", lambda b=busy: b)
        assert mlp.engine.parts(64) is mlp.engine.no_parts
        info = mlp.engine.parts(39)[2]
        assert info[codes.PART_MAX_ROWS] == 39
        assert info[codes.PART_PARALLEL] == (not busy or explicit is not None)
    fb.set_num_threads(None)


def _train_in_child(queue):
    make, shape = NETWORKS["cnn"]
    X, y = _batch(shape)
    net = make()
    queue.put(net.train_step(X, y, fb.SGD(lr=0.1)))


def test_a_forked_child_trains_after_its_parent_ran_parts_at_once():
    # GNU OpenMP kills a forked child that starts a parallel region after its parent did:
    # the child must run its parts one after another, outside the parallel kernel
    import multiprocessing

    make, shape = NETWORKS["cnn"]
    X, y = _batch(shape)
    net = make()
    net.train_step(X, y, fb.SGD(lr=0.1))
    if _threads._first_pid is None:
        pytest.skip("the parts did not run at once here (a busy machine)")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_train_in_child, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert np.isfinite(queue.get(timeout=5))


def test_zero_weight_rows_count_for_accuracy_split_or_whole():
    make, shape = NETWORKS["mlp"]
    X, y = _batch(shape, 20)
    weights = np.ones(20, np.float32)
    weights[:10] = 0  # a whole part: the batch then runs whole, counting every row
    net = make()
    split = net.engine.step(net.engine.inputs(X, y, weights), net.engine.no_update, GRAD_FLAGS).copy()
    fb.set_num_threads(1)
    whole = net.engine.step(net.engine.inputs(X, y, weights), net.engine.no_update, GRAD_FLAGS).copy()
    assert split[codes.R_COUNT] == whole[codes.R_COUNT] == 20
    assert split[codes.R_CORRECT] == whole[codes.R_CORRECT]


def test_sync_points_without_room_in_the_scratch_are_refused():
    class Cramped(fb.BatchNorm1D):  # as a kind author might get it wrong
        def sync_points(self):
            return 4 * self.num_features + 1, 2, 1  # no room left for the batch's rows

    with pytest.raises(TypeError, match=r"Cramped.sync_points\(\) returned \(17, 2, 1\)"):
        fb.Network([fb.Dense(6, 4), Cramped(4)], seed=0)
