"""Data-parallel training over MPI: tests/mpi_cases.py under ``mpiexec -n 2`` (the mpich
wheel's), each case against the single-process run with the doubled batch. Runs in a
subprocess under a timeout, so a hang in a collective fails the test instead of CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastbp as fb

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
CASES = Path(__file__).with_name("mpi_cases.py")
CASE_NAMES_AS_IS = ("sgd_momentum", "adam_weighted", "adamw_clipped", "custom_kind", "train_step",
                    "blocks")
NAMES = ["sgd_momentum", "adam_weighted", "adamw_clipped", "custom_kind", "blocks", "batchnorm",
         "dropout",
         "train_step", "one_rank_fails", "interrupt", "mismatch", "overflow", "between_epochs",
         "failures_anywhere", "interrupted_train_step", "random_interrupts", "monitor"]


@pytest.mark.slow
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'fastbp[mpi]')")
def test_two_ranks_follow_the_single_process_trajectory():
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(CASES), *NAMES],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split("\n").count("ok one rank fails") == 1
    for name in NAMES:
        spaced = name if name in CASE_NAMES_AS_IS else name.replace("_", " ")
        assert f"ok {spaced}" in proc.stdout


def test_comm_must_be_a_communicator():
    import numpy as np

    net = fb.Network.mlp([3, 2], seed=0)
    X, y = np.zeros((4, 3)), np.zeros(4, dtype=int)
    with pytest.raises(TypeError, match=r"comm must be an mpi4py communicator.*got int"):
        net.fit(X, y, epochs=1, verbose=0, comm=1)
    with pytest.raises(TypeError, match=r"comm must be an mpi4py communicator.*got str"):
        net.train_step(X, y, fb.SGD(lr=0.1), comm="world")


def test_a_single_rank_communicator_is_the_single_process_fit():
    """COMM_SELF: one rank, so the same trajectory as without comm (to rounding)."""
    import numpy as np
    from mpi4py import MPI

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    a, b = (fb.Network.mlp([4, 5, 3], dtype="float64", seed=0) for _ in range(2))
    ha = a.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=2, batch_size=8, verbose=0)
    hb = b.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=2, batch_size=8, verbose=0,
               comm=MPI.COMM_SELF)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-10)


@pytest.mark.slow
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'fastbp[mpi]')")
def test_cli_distributed_reports_and_saves_once(tmp_path):
    model = tmp_path / "m.npz"
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "fastbp", "train", "--data",
                           "digits", "--epochs", "2", "--quiet", "--distributed", "--save",
                           str(model)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("test   loss") == 1 and "x 2 ranks" in proc.stdout
    assert fb.load(model).n_outputs == 10
