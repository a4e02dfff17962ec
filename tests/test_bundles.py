"""The kernels take a few named bundles (kernels/bundles.py), never long positional lists."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import numba
import numpy as np
import pytest

import fastbp as fb
from fastbp.kernels import bundles, dispatch, step

MAX_PARAMETERS = 12
JIT = not numba.config.DISABLE_JIT


def _compiled_functions():
    """Every numba-compiled function defined in fastbp's modules, by qualified name."""
    found = {}
    for info in pkgutil.walk_packages(fb.__path__, "fastbp."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (torch, onnx...) that is not installed
            continue
        for name, value in vars(module).items():
            py_func = getattr(value, "py_func", None)
            if py_func is not None and py_func.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = py_func
    return found


@pytest.mark.skipif(not JIT, reason="needs numba's dispatchers")
def test_no_compiled_function_takes_more_than_12_parameters():
    functions = _compiled_functions()
    assert "fastbp.kernels.step.train_step" in functions and len(functions) > 50
    too_long = {name: len(inspect.signature(f).parameters) for name, f in functions.items()
                if len(inspect.signature(f).parameters) > MAX_PARAMETERS}
    assert not too_long


def test_no_function_under_a_jit_decorator_takes_more_than_12_parameters():
    """The same rule read from the source, so it holds with NUMBA_DISABLE_JIT too."""
    too_long = []
    for path in Path(fb.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    "jit" in ast.unparse(d) or "kernel" in ast.unparse(d)
                    for d in node.decorator_list):
                count = len(node.args.args) + len(node.args.kwonlyargs)
                if count > MAX_PARAMETERS:
                    too_long.append((path.name, node.name, count))
    assert not too_long


def _distinct(count):
    return [np.full(3, float(i)) for i in range(count)]


def test_with_work_puts_each_array_in_its_field():
    net = bundles.NetArrays(*_distinct(8))
    grads, ws = np.full(3, 100.0), np.full(3, 200.0)
    out = bundles.NetArrays(*bundles.with_work(tuple(net), grads, ws))
    for name in bundles.NetArrays._fields:
        expected = {"grads": grads, "ws": ws}.get(name, getattr(net, name))
        assert np.shares_memory(getattr(out, name), expected), name


def test_batch_rows_keeps_each_array_in_its_field_and_empties_empty():
    batch = bundles.Batch(np.arange(12.0).reshape(6, 2), np.arange(6), np.empty((0, 2)),
                          np.arange(6.0) + 10)
    out = bundles.Batch(*bundles.batch_rows(tuple(batch), 1, 4))
    np.testing.assert_array_equal(out.X, batch.X[1:4])
    np.testing.assert_array_equal(out.labels, batch.labels[1:4])
    assert out.targets.shape == (0, 2)
    np.testing.assert_array_equal(out.weights, batch.weights[1:4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_types_of_calls_by_address_are_the_bundles_the_engine_builds(dtype):
    net = fb.Network.mlp([3, 4, 2], dtype=dtype)
    engine = net.engine
    X = np.zeros((2, 3), dtype)
    batch = engine.inputs(X, np.array([0, 1]))
    opt = fb.SGD(lr=0.1).bind(net)
    types = dispatch.step_args_types(dtype)
    values = (engine.arrays, batch, engine.loss_code, 0, opt, engine.results, engine.no_parts)
    assert tuple(numba.typeof(v) for v in values) == types
    for bundle, numba_type in ((bundles.NetArrays, dispatch.net_type(dtype)),
                               (bundles.Batch, dispatch.batch_type(dtype)),
                               (bundles.OptimizerArgs, dispatch.optimizer_type(dtype)),
                               (bundles.Parts, dispatch.parts_type(dtype))):
        assert len(numba_type) == len(bundle._fields)


def test_only_epochs_and_a_split_steps_parts_call_the_step_by_address():
    """The whole-or-split choice is made once, in train_step: a part's step (F_PART, set by
    run_parts for every part) runs its rows whole and never splits again."""
    tree = ast.parse(inspect.getsource(step))
    callers = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
               and any(isinstance(c, ast.Call) and getattr(c.func, "id", "") == "call_step"
                       for c in ast.walk(node))}
    assert callers == {"_epoch", "penalized_epochs", "run_part"}
    source = inspect.getsource(getattr(step.train_step, "py_func", step.train_step))
    assert "part = (flags & F_PART) != 0" in source and "if not part and" in source
