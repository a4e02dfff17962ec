"""The layer architecture itself: shape chaining, refusal of incomplete kinds, modes,
buffers, the functional update and the rules that keep a kind to its three files."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from kind_checks import data_for

import fastbp as fb
from fastbp import reference
from fastbp._dispatch import KERNEL_MODULES
from fastbp.layers import LAYER_TYPES, Layer

PACKAGE = Path(fb.__file__).parent


class MadeUp(Layer):
    """A kind with a spec but no kernels."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {"type": "MadeUp"}


class NoShape(Layer):
    kernels = fb.Dense.kernels  # compiled, but the spec is incomplete

    def get_config(self):
        return {"type": "NoShape"}


def teardown_module():
    LAYER_TYPES.pop("MadeUp", None)
    LAYER_TYPES.pop("NoShape", None)


def test_a_kind_without_kernels_is_refused_when_built():
    with pytest.raises(TypeError, match=r"layers\[1\]: MadeUp has no kernels"):
        fb.Network([fb.Dense(3, 3), MadeUp(), fb.Dense(3, 2)])


def test_an_incomplete_spec_is_refused_when_built():
    with pytest.raises(TypeError, match=r"layers\[0\]: NoShape is incomplete"):
        fb.Network([NoShape(), fb.Dense(3, 2)], input_shape=(3,))


def test_every_built_in_kind_has_its_kernels_registered_and_a_twin():
    built_in = {name: cls for name, cls in LAYER_TYPES.items()
                if cls.__module__.startswith("fastbp.") and not getattr(cls, "is_block", False)}
    for name, cls in built_in.items():
        assert KERNEL_MODULES[cls.kind] is cls.kernels, name
        assert name in reference.TWINS, name
    # one kind number per kernel module (BatchNorm1D and BatchNorm2D share one)
    assert len({cls.kind for cls in built_in.values()}) == \
        len({id(cls.kernels) for cls in built_in.values()})


def test_nothing_central_names_a_kind():
    # a kind is its own unit: the walker, the plan, the network, its engine and interop
    # (which asks each kind to map itself through its hooks) name no kind in their code
    for path in (PACKAGE / "kernels" / "step.py", PACKAGE / "plan.py", PACKAGE / "_dispatch.py",
                 PACKAGE / "interop.py", PACKAGE / "network.py", PACKAGE / "_engine.py"):
        tree = ast.parse(path.read_text())
        named = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        named |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  for alias in node.names}
        assert not named & set(LAYER_TYPES), (path.name, named & set(LAYER_TYPES))
        source = path.read_text()
        for module in ("dense", "conv", "recurrent", "batchnorm", "pool"):
            assert f"import {module}" not in source and f" {module}," not in source, path.name


def test_shapes_chain_and_the_breaking_layer_is_named():
    with pytest.raises(ValueError, match=r"layers\[2\]: Dense expects 5 inputs, the layer before "
                                         r"outputs \(2, 3\) = 6"):
        fb.Network([fb.Activation("tanh"), fb.Dropout(0.1), fb.Dense(5, 2)], input_shape=(2, 3))


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 3), (1, 2)])
def test_X_must_be_batched_input_shape_or_flat(shape):
    net = fb.Network([fb.Flatten(), fb.Dense(int(np.prod(shape)), 2)], input_shape=shape)
    X, _ = data_for(net, 3)
    assert np.array_equal(net.forward(X), net.forward(X.reshape(3, -1)))
    bad = np.zeros((3, *shape[:-1], shape[-1] + 1))
    with pytest.raises(ValueError, match=re.escape(f"X must have shape (n_samples, "
                                                   f"{', '.join(map(str, shape))})")):
        net.forward(bad)


@pytest.mark.parametrize("input_shape", [(0, 3), (2.5,), "abc", ()])
def test_input_shape_is_checked(input_shape):
    with pytest.raises((ValueError, TypeError), match="input_shape"):
        fb.Network([fb.Flatten(), fb.Dense(3, 2)], input_shape=input_shape)


def test_loss_and_grad_changes_nothing_and_matches_the_next_step():
    net = fb.Network([fb.Dense(4, 6), fb.BatchNorm1D(6), fb.Activation("relu"), fb.Dropout(0.5),
                      fb.Dense(6, 3)], dtype="float64", seed=1)
    X, y = data_for(net, 8)
    net.train_step(X, y, fb.SGD(lr=0.0))  # running statistics away from their initial values
    before = (net.params.copy(), net.buffers.copy(), net.engine.rng.copy())
    _, grad = net.loss_and_grad(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, (net.params, net.buffers, net.engine.rng)))
    opt = fb.SGD(lr=0.1)
    net.train_step(X, y, opt)
    assert np.allclose(net.params, before[0] - 0.1 * grad, rtol=0, atol=1e-15)
    assert not np.array_equal(net.buffers, before[1])  # train_step, unlike it, moves them


def test_functional_step_equals_the_fused_step():
    fused = fb.Network.mlp([4, 6, 3], dropout=0.3, dtype="float64", seed=2)
    split = fb.Network.mlp([4, 6, 3], dropout=0.3, dtype="float64", seed=2)
    opt_fused, opt_split = fb.Adam(lr=0.01, max_norm=0.5), fb.Adam(lr=0.01, max_norm=0.5)
    for step_ in range(4):
        X, y = data_for(fused, 6, seed=step_)
        fused.train_step(X, y, opt_fused)
        _, grad = split.loss_and_grad(X, y)
        kept = grad.copy()
        opt_split.step(split, grad)
        assert np.array_equal(grad, kept)  # the caller's gradient is not clipped in place
        split.engine.rng[:] = fused.engine.rng  # loss_and_grad left the stream where it was
    assert np.array_equal(fused.params, split.params)
    assert opt_split.step_count == 4


def test_functional_step_checks_the_gradient():
    net = fb.Network.mlp([2, 2])
    with pytest.raises(ValueError, match=r"grad must have shape \(6,\)"):
        fb.SGD().step(net, np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        fb.SGD().step(net, np.full(6, np.nan))


def test_flatten_and_activation_are_exported_and_saved_by_name(tmp_path):
    net = fb.Network([fb.Flatten(), fb.Dense(6, 4), fb.Activation("relu"), fb.Dense(4, 2)],
                     input_shape=(2, 3), seed=3)
    fb.save(net, tmp_path / "m.npz")
    back = fb.load(tmp_path / "m.npz")
    assert [type(la).__name__ for la in back.layers] == ["Flatten", "Dense", "Activation", "Dense"]
    assert back.input_shape == (2, 3)
    X, _ = data_for(net, 4)
    assert np.array_equal(back.forward(X), net.forward(X))


def test_a_failed_step_changes_nothing_not_even_the_random_stream():
    net = fb.Network.mlp([4, 8, 3], dropout=0.5, seed=2)
    net.params = np.full_like(net.params, 3e38)  # the loss overflows to inf
    before = (net.params.copy(), net.buffers.copy(), net.engine.rng.copy())
    opt = fb.SGD(lr=0.1)
    with pytest.raises(FloatingPointError):
        net.train_step(np.ones((4, 4)), np.zeros(4, int), opt)
    assert all(np.array_equal(a, b) for a, b in zip(before, (net.params, net.buffers, net.engine.rng)))
    assert opt._network is None  # not bound either: it can still serve another network


def test_a_built_layers_settings_cannot_drift_from_its_kernels():
    net = fb.Network.mlp([4, 8, 3], dropout=0.25)
    with pytest.raises(AttributeError, match="Dropout.p is fixed once a network is built"):
        net.layers[1].p = 0.0
    with pytest.raises(AttributeError, match="Dense.activation is fixed"):
        net.layers[0].activation = "tanh"
    spec = fb.Dropout(0.25)
    spec.p = 0.5  # a layer not yet in a network is just a description
    assert fb.Network([fb.Dense(4, 3), spec]).layers[1].p == 0.5


def test_copying_a_bound_layer_gives_an_unbound_one():
    import copy

    net = fb.Network.mlp([3, 2], seed=1)
    clone = copy.copy(net.layers[0])
    assert clone.W is None and clone.output_shape is None
    clone.n_out = 5  # a description again
    before = net.params.copy()
    assert fb.Network([clone]).n_outputs == 5 and np.array_equal(net.params, before)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_networks_copy_and_pickle_with_their_state(how):
    import copy
    import pickle

    net = fb.Network([fb.Flatten(), fb.Dense(6, 4), fb.Dropout(0.3), fb.Dense(4, 2)],
                     input_shape=(2, 3), dtype="float64", seed=3)
    X, y = data_for(net, 5)
    net.train_step(X, y, fb.Adam(lr=0.1))
    twin = copy.deepcopy(net) if how == "deepcopy" else pickle.loads(pickle.dumps(net))
    assert np.array_equal(twin.params, net.params) and np.array_equal(twin.engine.rng, net.engine.rng)
    assert np.shares_memory(twin.layers[1].W, twin.params)
    assert not np.shares_memory(twin.params, net.params)
    assert np.array_equal(twin.forward(X), net.forward(X))
    opt_a, opt_b = fb.SGD(lr=0.1), fb.SGD(lr=0.1)
    assert net.train_step(X, y, opt_a) == twin.train_step(X, y, opt_b)  # same dropout masks
