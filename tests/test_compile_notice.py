"""A cold compile is announced ("compiling kernels...") instead of a frozen progress bar;
a warm start and cached kernels say nothing."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastbp as fb
from fastbp._jit import compile_notice


def test_the_notice_fires_once_on_a_real_compile_and_not_for_compiled_code():
    said = []

    @numba.njit
    def fresh(x):
        return x + 1

    with compile_notice(said.append):
        fresh(1)
        fresh(2.5)  # a second compile: still one line
    with compile_notice(said.append):
        fresh(3)  # already compiled
    assert said == ["compiling kernels (first use only: cached for next time)..."]


def test_fit_in_a_warm_process_says_nothing(capsys):
    X = np.random.default_rng(0).normal(size=(16, 3))
    y = np.arange(16) % 2
    fb.Network.mlp([3, 2]).fit(X, y, epochs=1, verbose=0)  # compiled (or loaded) here
    fb.Network.mlp([3, 2]).fit(X, y, epochs=1, verbose=1, validation_data=(X, y))
    assert "compiling kernels" not in capsys.readouterr().err


@pytest.mark.slow  # a cold compile in a fresh cache
def test_a_cold_fit_says_it_is_compiling_and_a_warm_one_does_not(tmp_path):
    code = textwrap.dedent("""
        import numpy as np, fastbp as fb
        X = np.random.default_rng(0).normal(size=(16, 3)); y = np.arange(16) % 2
        fb.Network.mlp([3, 2]).fit(X, y, epochs=1, verbose=1, validation_data=(X, y))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stderr for _ in range(2)]
    assert "compiling kernels (first use only" in runs[0]
    assert "compiling kernels" not in runs[1]
