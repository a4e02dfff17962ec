"""Walkers specialised to a network's layer kinds: same results, compiled and cached alone."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from kind_checks import data_for

import fastbp as fb
from fastbp import _walkers
from fastbp.kernels import step


def test_specialised_source_dispatches_only_the_named_kinds():
    source = _walkers.specialise(open(step.__file__).read(), frozenset({"dropout", "flatten"}))
    dispatch = [line.split(":")[0].strip() for line in source.split("\n") if "KIND:" in line]
    assert dispatch == ["if kind == dropout.KIND", "elif kind == flatten.KIND"]
    assert "from . import dropout, flatten\n" in source


def test_mlps_share_the_core_walker_and_other_kinds_get_their_own():
    mlp = fb.Network.mlp([3, 4, 2], dropout=0.1)._kernels
    assert mlp is fb.Network.mlp([3, 2])._kernels
    assert {m.__name__.rsplit(".", 1)[1] for m in mlp.LAYER_KERNELS} == {"dense", "dropout"}
    flat = fb.Network([fb.Flatten(), fb.Dense(6, 2)], input_shape=(2, 3))._kernels
    assert {m.__name__.rsplit(".", 1)[1] for m in flat.LAYER_KERNELS} == {"dense", "dropout",
                                                                          "flatten"}
    assert _walkers.walker_for(set(_walkers.KIND_NAMES)) is step


@pytest.mark.parametrize("core", [frozenset(), frozenset({"dense"})], ids=["no-core", "dense-core"])
def test_a_specialised_walker_trains_bit_for_bit_like_the_template(core):
    def run(kernels):
        net = fb.Network([fb.Dense(4, 6, activation="tanh"), fb.Dropout(0.3), fb.Dense(6, 3)],
                         dtype="float64", seed=1)
        net._set_kernels(kernels)
        X, y = data_for(net, 20)
        opt = fb.Adam(lr=0.01)
        net.train_step(X, y, opt)
        net.fit(X, y, optimizer=opt, epochs=2, batch_size=8, verbose=0, validation_data=(X, y))
        return net.params, net.forward(X)

    kinds = {step.dense.KIND, step.dropout.KIND}
    special = _walkers.walker_for(kinds, core=core)
    assert special is not step
    assert {m.__name__.rsplit(".", 1)[1] for m in special.LAYER_KERNELS} == {"dense", "dropout"}
    for a, b in zip(run(step), run(special)):
        assert np.array_equal(a, b)


@pytest.mark.slow  # two processes, one compiling cold (~8 s)
def test_a_specialised_walker_is_cached_across_processes(tmp_path):
    code = textwrap.dedent("""
        import numpy as np, fastbp as fb
        from fastbp import _walkers
        from fastbp.kernels import step
        kernels = _walkers.walker_for({step.dense.KIND}, core=frozenset())
        net = fb.Network([fb.Dense(3, 2)]); net._set_kernels(kernels)
        net.train_step(np.zeros((4, 3)), np.zeros(4, int), fb.SGD())
        print(sum(kernels.train_step.stats.cache_hits.values()))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout.split()[-1] for _ in range(2)]
    assert runs == ["0", "1"]  # compiled once, then loaded
