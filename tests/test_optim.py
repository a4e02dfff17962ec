"""Optimizers follow torch.optim's update rules: against the reference, by hand, and
against torch itself when it is installed."""

import math

import numba
import numpy as np
import pytest
from conftest import DTYPES, OPTIMIZER_CASES, build, make_data, make_optimizer, rel_err

import fastbp as fb
from fastbp import reference

CASE_IDS = [c[0] for c in OPTIMIZER_CASES]
# After 100 steps: float64 agrees to rounding (1e-10); float32 kernels and numpy order
# operations differently, ~1e-7 per step, compounding to a few 1e-6.
TRAJECTORY_RTOL = {"float64": 1e-10, "float32": 1e-5}


def batches(n_steps, batch=8, seed=0):
    X, y = make_data(n_steps * batch // 4, 6, 3, "cross_entropy", seed=seed)
    for step in range(n_steps):
        i = (step * batch) % len(X)
        yield step, X[i : i + batch], y[i : i + batch]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=CASE_IDS)
def test_trajectory_matches_reference(case, dtype):
    _, name, kwargs = case
    net = build([6, 7, 3], activation="tanh", dtype=dtype, seed=2)
    twin = reference.Network.from_network(net)
    opt, opt_ref = make_optimizer(name, kwargs), make_optimizer(name, kwargs)
    for step, X, y in batches(100):
        if step == 50:  # hyperparameters may change between steps
            opt.lr *= 0.5
            opt_ref.lr *= 0.5
        loss = net.train_step(X.astype(dtype), y, opt)
        loss_ref = twin.train_step(X.astype(dtype), y, opt_ref)
    assert opt.step_count == 100
    assert abs(loss - loss_ref) <= 10 * TRAJECTORY_RTOL[dtype] * abs(loss_ref)
    assert rel_err(net.params, twin.params) <= TRAJECTORY_RTOL[dtype]


def _one_weight_net(w=0.5, b=0.25):
    """out = w * 1 + b, loss = (w + b - 0)**2: both gradients are 2 * (w + b)."""
    net = fb.Network([fb.Dense(1, 1)], loss="mse", dtype="float64")
    net.params[:] = [w, b]
    return net


def _two_steps(opt):
    net = _one_weight_net()
    X, y = np.ones((1, 1)), np.zeros(1)
    net.train_step(X, y, opt)
    net.train_step(X, y, opt)
    return net.params


def test_sgd_momentum_by_hand():
    # step 1: g = 2 * 0.75 = 1.5, buf = g = 1.5, p = 0.5 - 0.1 * 1.5 = 0.35 (b: 0.10)
    # step 2: g = 2 * 0.45 = 0.9, buf = 0.9 * 1.5 + 0.9 = 2.25, p = 0.35 - 0.225
    assert _two_steps(fb.SGD(lr=0.1, momentum=0.9)) == pytest.approx([0.125, -0.125], abs=1e-15)


def test_sgd_nesterov_dampening_weight_decay_by_hand():
    lr, mu, wd = 0.1, 0.5, 0.1
    w, b = 0.5, 0.25
    g_w, g_b = 2 * (w + b) + wd * w, 2 * (w + b) + wd * b
    buf_w, buf_b = g_w, g_b  # first step: the buffer is the gradient itself
    w, b = w - lr * (g_w + mu * buf_w), b - lr * (g_b + mu * buf_b)
    g_w, g_b = 2 * (w + b) + wd * w, 2 * (w + b) + wd * b
    buf_w, buf_b = mu * buf_w + g_w, mu * buf_b + g_b  # dampening 0 (Nesterov requires it)
    w, b = w - lr * (g_w + mu * buf_w), b - lr * (g_b + mu * buf_b)
    got = _two_steps(fb.SGD(lr=lr, momentum=mu, nesterov=True, weight_decay=wd))
    assert got == pytest.approx([w, b], abs=1e-15)


def test_adagrad_by_hand():
    lr, decay, eps = 0.1, 0.5, 1e-10
    w = b = None
    w, b, acc = 0.5, 0.25, 0.2  # initial_accumulator_value=0.2
    g = 2 * (w + b)
    acc_w = acc_b = acc + g * g
    w, b = w - lr * g / (math.sqrt(acc_w) + eps), b - lr * g / (math.sqrt(acc_b) + eps)
    g = 2 * (w + b)
    acc_w, acc_b = acc_w + g * g, acc_b + g * g
    clr = lr / (1 + 1 * decay)  # step 2: lr / (1 + (step - 1) * lr_decay)
    w, b = w - clr * g / (math.sqrt(acc_w) + eps), b - clr * g / (math.sqrt(acc_b) + eps)
    got = _two_steps(fb.Adagrad(lr=lr, lr_decay=decay, initial_accumulator_value=0.2))
    assert got == pytest.approx([w, b], abs=1e-15)


def test_rmsprop_centered_by_hand():
    lr, alpha, eps = 0.01, 0.9, 1e-8
    p = [0.5, 0.25]
    sq, ga = [0.0, 0.0], [0.0, 0.0]
    for _ in range(2):
        g = 2 * (p[0] + p[1])
        for i in range(2):
            sq[i] = alpha * sq[i] + (1 - alpha) * g * g
            ga[i] = ga[i] + (1 - alpha) * (g - ga[i])
            p[i] -= lr * g / (math.sqrt(sq[i] - ga[i] ** 2) + eps)
    assert _two_steps(fb.RMSprop(lr=lr, alpha=alpha, centered=True)) == pytest.approx(p, abs=1e-14)


def test_adam_by_hand():
    # step 1: m = 0.15, v = 0.00225, lr / (1 - 0.9) = 1, sqrt(v) / sqrt(1 - 0.999) = 1.5:
    # p -= 0.15 / 1.5 = 0.1 (to 1e-8 from eps), so w = 0.4, b = 0.15
    got = _two_steps(fb.Adam(lr=0.1))
    g = 2 * (0.4 + 0.15)
    m = 0.9 * 0.15 + 0.1 * g
    v = 0.999 * 0.00225 + 0.001 * g * g
    step = 0.1 / (1 - 0.9**2) * m / (math.sqrt(v) / math.sqrt(1 - 0.999**2) + 1e-8)
    assert got == pytest.approx([0.4 - step, 0.15 - step], abs=1e-8)


def test_adamw_decouples_weight_decay_by_hand():
    lr, wd = 0.1, 0.5
    p = [0.5, 0.25]
    m, v = [0.0, 0.0], [0.0, 0.0]
    for t in (1, 2):
        g = 2 * (p[0] + p[1])
        for i in range(2):
            p[i] *= 1 - lr * wd  # decoupled: shrink the weight, not the gradient
            m[i] = m[i] + 0.1 * (g - m[i])
            v[i] = 0.999 * v[i] + 0.001 * g * g
            p[i] -= lr / (1 - 0.9**t) * m[i] / (math.sqrt(v[i]) / math.sqrt(1 - 0.999**t) + 1e-8)
    assert _two_steps(fb.AdamW(lr=lr, weight_decay=wd)) == pytest.approx(p, abs=1e-14)


def test_clipping_by_global_norm():
    net = _one_weight_net()
    opt = fb.SGD(lr=1.0, max_norm=0.5)
    net.train_step(np.ones((1, 1)), np.zeros(1), opt)
    # gradient (1.5, 1.5) has norm 2.1213; clipped to norm 0.5 (minus torch's 1e-6 guard)
    norm = math.sqrt(2) * 1.5
    step = 1.5 * 0.5 / (norm + 1e-6)
    assert net.params == pytest.approx([0.5 - step, 0.25 - step], abs=1e-15)


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=CASE_IDS)
def test_state_dict_round_trip_resumes_identically(case):
    _, name, kwargs = case
    net = build([6, 7, 3], dtype="float32", seed=4)
    opt = make_optimizer(name, kwargs)
    data = list(batches(10))
    for _, X, y in data[:5]:
        net.train_step(X, y, opt)
    saved_params, saved_state = net.params.copy(), opt.state_dict()
    for _, X, y in data[5:]:
        net.train_step(X, y, opt)

    resumed = build([6, 7, 3], dtype="float32", seed=4)
    resumed.params[:] = saved_params
    opt2 = make_optimizer(name, {})
    opt2.load_state_dict(saved_state)
    assert opt2.step_count == 5 and opt2.hyperparameters == opt.hyperparameters
    for _, X, y in data[5:]:
        resumed.train_step(X, y, opt2)
    assert np.array_equal(resumed.params, net.params)


def test_optimizer_is_bound_to_one_network():
    opt = fb.Adam()
    a, b = build([3, 2]), build([3, 2])
    X, y = make_data(4, 3, 2, "cross_entropy")
    a.train_step(X, y, opt)
    with pytest.raises(ValueError, match="already bound to another Network"):
        b.train_step(X, y, opt)


@pytest.mark.parametrize("make,text", [
    (lambda: fb.SGD(lr=-0.1), "Invalid lr value"),
    (lambda: fb.SGD(momentum=-0.5), "Invalid momentum value"),
    (lambda: fb.SGD(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: fb.SGD(momentum=0.9, dampening=0.1, nesterov=True), "zero dampening"),
    (lambda: fb.SGD(weight_decay=-1), "Invalid weight_decay value"),
    (lambda: fb.Adagrad(lr_decay=-1), "Invalid lr_decay value"),
    (lambda: fb.Adagrad(initial_accumulator_value=-1), "Invalid initial_accumulator_value"),
    (lambda: fb.Adagrad(eps=-1e-10), "Invalid eps value"),
    (lambda: fb.RMSprop(alpha=-0.1), "Invalid alpha value"),
    (lambda: fb.RMSprop(momentum=-0.1), "Invalid momentum value"),
    (lambda: fb.Adam(betas=(1.0, 0.999)), "Invalid beta parameter at index 0"),
    (lambda: fb.Adam(betas=(0.9, -0.1)), "Invalid beta parameter at index 1"),
    (lambda: fb.AdamW(eps=-1.0), "Invalid eps value"),
    (lambda: fb.Adam(lr=float("nan")), "Invalid lr value"),
    (lambda: fb.Adam(max_norm=0.0), "Invalid max_norm value"),
])
def test_invalid_hyperparameters(make, text):
    with pytest.raises(ValueError, match=text.replace("(", r"\(")):
        make()


def test_changing_a_hyperparameter_is_validated():
    opt = fb.Adam()
    with pytest.raises(ValueError, match="Invalid lr value"):
        opt.lr = -1.0
    assert opt.lr == 1e-3


def test_defaults_are_torchs():
    assert fb.SGD().hyperparameters == {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0,
                                        "nesterov": False, "weight_decay": 0.0, "max_norm": None}
    assert fb.Adagrad().lr == 1e-2 and fb.Adagrad().eps == 1e-10
    assert fb.RMSprop().lr == 1e-2 and fb.RMSprop().alpha == 0.99 and fb.RMSprop().eps == 1e-8
    assert fb.Adam().betas == (0.9, 0.999) and fb.Adam().eps == 1e-8
    assert fb.Adam().weight_decay == 0.0 and fb.AdamW().weight_decay == 1e-2


# -- against torch itself -------------------------------------------------------------------

def _torch_trajectory(net, name, kwargs, data):
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    layers = [layer for layer in net.layers if hasattr(layer, "W")]
    modules = []
    for i, layer in enumerate(layers):
        lin = torch.nn.Linear(layer.n_in, layer.n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.b.copy()))
        modules.append(lin)
        if i < len(layers) - 1:
            modules.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*modules)
    kwargs = dict(kwargs)
    max_norm = kwargs.pop("max_norm", None)
    opt = getattr(torch.optim, name)(model.parameters(), **kwargs)
    for step, X, y in data:
        if step == 50:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
        loss.backward()
        if max_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
    flat = []
    for lin in modules[::2]:
        flat += [lin.weight.detach().numpy().T.ravel(), lin.bias.detach().numpy()]
    return np.concatenate(flat)


@pytest.mark.slow  # imports torch
@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=CASE_IDS)
def test_trajectory_matches_torch(case):
    _, name, kwargs = case
    net = build([6, 7, 3], activation="tanh", dtype="float64", seed=2)
    data = list(batches(100))
    expected = _torch_trajectory(net, name, kwargs, data)
    opt = make_optimizer(name, kwargs)
    for step, X, y in data:
        if step == 50:
            opt.lr *= 0.5
        net.train_step(X, y, opt)
    # float64 on both sides; torch's CPU kernels fuse multiply-adds, so rounding differs.
    assert rel_err(net.params, expected) <= 1e-10


def test_optimizer_of_a_discarded_network_is_not_silently_reused():
    X, y = make_data(4, 3, 2, "cross_entropy")
    opt = fb.Adam()
    build([3, 2]).train_step(X, y, opt)  # that network is garbage now
    import gc

    gc.collect()
    with pytest.raises(ValueError, match="bound to a Network that no longer exists"):
        build([3, 2]).train_step(X, y, opt)


def test_load_state_dict_checks_everything_first_and_resets_on_empty_state():
    X, y = make_data(4, 3, 2, "cross_entropy")
    net = build([3, 2])
    opt = fb.Adam()
    net.train_step(X, y, opt)
    saved = opt.state_dict()
    for bad in [dict(saved, step=10**30), dict(saved, step=-1),
                dict(saved, state={**saved["state"], "exp_avg": np.full(8, np.nan)})]:
        with pytest.raises(ValueError):
            opt.load_state_dict(bad)
        assert opt.step_count == 1 and np.array_equal(opt.state_dict()["state"]["exp_avg"],
                                                      saved["state"]["exp_avg"])
    opt.load_state_dict(fb.Adam().state_dict())  # torch: a fresh optimizer's (empty) state
    assert opt.step_count == 0 and not opt.state_dict()["state"]["exp_avg"].any()


def test_a_pickled_optimizer_resumes_on_a_pickled_network():
    """An optimizer pickles unbound with its state; used with the unpickled copy of its
    network it continues the same trajectory (a weak reference cannot be pickled)."""
    import pickle

    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    net = fb.Network.mlp([5, 4, 3], seed=0)
    opt = fb.Adam(lr=0.01)
    net.train_step(X, y, opt)
    net2, opt2 = pickle.loads(pickle.dumps((net, opt)))
    assert opt2._network is None and opt2.step_count == opt.step_count
    net.train_step(X, y, opt)
    net2.train_step(X, y, opt2)
    np.testing.assert_array_equal(net.params, net2.params)




@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="the compiled kernels' handling of subnormals")
@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=CASE_IDS)
def test_vanishing_float32_gradients_leave_no_subnormal_state(case):
    # A network that fits its batch has float32 gradients near 1e-20 and below, whose
    # squares are subnormal, and state decaying towards 0: the update kernels count such
    # squares as 0 and flush state below the smallest normal (x86 computes subnormals a
    # hundred times slower). Exact maths would move no parameter by a float32 ulp there,
    # so the parameters stay the same bits.
    from fastbp.kernels.optimizers import UPDATES

    _, name, kwargs = case
    if kwargs.get("centered"):
        pytest.skip("centered RMSprop keeps IEEE arithmetic: its denominator is a difference")
    net = fb.Network([fb.Dense(16, 16)], loss="mse", dtype="float32", seed=0)
    opt = make_optimizer(name, {**kwargs, "weight_decay": 0.0})  # decay would move them
    net.train_step(np.ones((2, 16), np.float32), np.zeros((2, 16), np.float32), opt)  # binds
    state, hyper = opt._state, opt._hyper
    rng = np.random.default_rng(0)
    # around the smallest normal (1.18e-38), which decaying state crosses, or empty
    tiny = np.finfo(np.float32).tiny
    state[:] = rng.uniform(tiny, 3e-38, state.shape).astype(np.float32) * (rng.random(state.shape) < 0.7)
    params = net.params.copy()
    for step in range(2, 40):
        grads = (rng.standard_normal(params.shape) * 1e-20).astype(np.float32)
        grads[::2] = 0  # half vanished entirely: their state only decays
        UPDATES[int(hyper[fb._codes.H_KIND])](params, grads, state, hyper, step)
    assert not np.any((state != 0) & (np.abs(state) < tiny)), "subnormal optimizer state"
    assert np.array_equal(params, net.params)


@pytest.mark.parametrize("name,kwargs,gradient", [
    ("Adam", {"lr": 1e-3, "eps": 0.0}, 1e-21),
    ("Adagrad", {"lr": 0.1, "eps": 0.0}, 1e-21),
    ("RMSprop", {"lr": 1e-2, "eps": 0.0}, 1e-21),
    ("RMSprop", {"lr": 1e-2, "centered": True}, 3e-19),
    ("RMSprop", {"lr": 1e-2, "centered": True, "momentum": 0.5}, 3e-19),
], ids=["adam-eps0", "adagrad-eps0", "rmsprop-eps0", "rmsprop-centered", "rmsprop-centered-momentum"])
def test_tiny_float32_gradients_follow_exact_maths_where_subnormals_decide(name, kwargs, gradient):
    # Where the update's denominator is the second moment itself (eps 0) or a difference of
    # moments (centered), subnormal values decide the step: the kernels keep IEEE arithmetic
    # there, and the parameters follow float64's exact maths (the reference's update), to
    # the few significant bits that float32's subnormals keep (rel 5e-2; 1e-2 seen), and
    # stay finite (dropping the squares would divide by 0, or take a negative's root).
    from fastbp.kernels.optimizers import UPDATES
    from fastbp.reference.optim import UPDATES as REFERENCE

    net = fb.Network([fb.Dense(2, 2)], loss="mse", dtype="float32", seed=0)
    n = net.params.size
    opt = make_optimizer(name, kwargs)
    net.train_step(np.ones((2, 2), np.float32), np.zeros((2, 2), np.float32), opt)  # binds
    for row, key in zip(opt._state, opt.state_names):  # fresh, as the reference's
        row[:] = opt._initial_state(key)
    params = np.linspace(-1, 1, n).astype(np.float32)
    exact = params.astype(np.float64)
    state = {key: np.full(n, opt._initial_state(key)) for key in opt.state_names}
    signs = np.where(np.arange(n) % 2, 1.0, -1.0)
    for step in range(2, 62):
        grads = (signs * gradient).astype(np.float32)
        UPDATES[int(opt._hyper[fb._codes.H_KIND])](params, grads, opt._state, opt._hyper, step)
        REFERENCE[type(opt)](exact, grads.astype(np.float64), state, opt, step)
    assert np.all(np.isfinite(params))
    assert rel_err(params.astype(np.float64), exact) <= 5e-2

