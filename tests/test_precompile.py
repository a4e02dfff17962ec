"""A first run on a cold kernel cache compiles in two processes (fastbp._precompile): the
jobs a network needs, a worker that fills the shared cache, the same results as compiling
alone, nothing started on a warm cache, and a worker that fails costing only time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastbp as fb
from fastbp import _precompile

SCRIPT = textwrap.dedent("""
    import json, sys, numpy as np, fastbp as fb
    from fastbp import _precompile
    started = []
    real = _precompile.subprocess.Popen
    def popen(cmd, **kw):
        started.append(cmd[3:])
        if "--fail" in sys.argv:
            cmd = [sys.executable, "-c", "raise SystemExit(3)"]
        return real(cmd, **kw)
    _precompile.subprocess.Popen = popen
    here = []  # the jobs this process compiled itself
    run_job = _precompile.run_job
    _precompile.run_job = lambda job, dtype: (here.append(job), run_job(job, dtype))
    net = fb.Network([fb.Dense(6, 5, activation="relu"), fb.Dense(5, 3)], input_shape=(6,),
                     seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 6)).astype(np.float32); y = rng.integers(0, 3, 8)
    net.train_step(X, y, fb.SGD(lr=0.1))
    jobs = _precompile.jobs_for(net.engine)
    cached = all(_precompile.is_cached(k, s) for j in jobs
                 for k, s in _precompile._targets(j, net.dtype))
    from fastbp.kernels import step
    print(json.dumps({"started": started, "cached": cached, "params": net.params.tolist(),
                      "here": here, "step_overloads": len(step.train_step.overloads)}))
""")


def _first_step(cache, *args, worker=True):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               FASTBP_COMPILE_WORKER="1" if worker else "0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing compiles without the JIT")
@pytest.mark.slow  # cold compiles, in fresh processes and caches
def test_a_cold_first_step_compiles_in_a_worker_too_with_the_same_results(tmp_path):
    cold = _first_step(tmp_path / "two")
    assert len(cold["started"]) == 1  # one worker, given the claims directory, dtype, jobs
    claims, dtype, *jobs = cold["started"][0]
    assert dtype == "float32" and jobs[0] == "step" and jobs[-1].startswith("loss:")
    assert any(job.startswith("kind:fastbp.kernels.dense:") for job in jobs)
    assert cold["cached"] and not os.path.exists(claims)  # every job cached, claims removed
    # each job compiled once, the worker's share loaded: this process did not do them all,
    # and the walker it loaded is the one its step runs (compiled for the same types)
    assert 0 < len(cold["here"]) < len(jobs) and len(set(cold["here"])) == len(cold["here"])
    assert cold["step_overloads"] == 1
    alone = _first_step(tmp_path / "one", worker=False)
    assert alone["started"] == [] and alone["params"] == cold["params"]  # same bits
    warm = _first_step(tmp_path / "two")
    assert warm["started"] == [] and warm["params"] == cold["params"]


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing compiles without the JIT")
@pytest.mark.slow  # a cold compile in a fresh process and cache
def test_a_worker_that_fails_costs_only_time(tmp_path):
    failed = _first_step(tmp_path / "failed", "--fail")
    assert len(failed["started"]) == 1 and failed["cached"]
    assert sorted(failed["here"]) == sorted(failed["started"][0][2:])  # all of them here
    assert failed["params"] == _first_step(tmp_path / "failed")["params"]


@pytest.mark.parametrize("training,splits", [(True, False), (True, True), (False, False)],
                         ids=["step", "split-step", "inference"])
def test_the_jobs_of_a_first_run(training, splits):
    net = fb.Network([fb.Conv2D(1, 4, 3, activation="relu"), fb.MaxPool2D(2), fb.Flatten(),
                      fb.Dense(4 * 3 * 3, 10), fb.Activation("relu"), fb.Dense(10, 2)],
                     input_shape=(1, 8, 8))
    jobs = _precompile.jobs_for(net.engine, training, splits)
    # the step first, the costliest; a split step's parts run it too: no walker of their own
    assert (jobs[0] == "step") if training else "step" not in jobs
    assert "gradient" not in jobs
    kinds = [job for job in jobs if job.startswith("kind:")]
    # conv, pool, dense (once), activation: a forward and a backward job each
    assert len(kinds) == len(set(kinds)) == 8
    assert ("parts_at_once" in jobs) == splits
    assert jobs[-1] == f"loss:{net.engine.loss_code}"
    for job in jobs:  # each names compiled kernels and signatures
        assert _precompile._targets(job, net.dtype)


@pytest.mark.parametrize("training", [True, False], ids=["fit", "inference"])
def test_the_dataset_walker_is_a_job_of_fit_and_inference(training):
    # fit runs both walkers, the costliest jobs, first; inference only the dataset one
    net = fb.Network([fb.Dense(6, 5, activation="relu"), fb.Dense(5, 3)], input_shape=(6,))
    jobs = _precompile.jobs_for(net.engine, training, dataset=True, update=fb.Adam().kind)
    assert jobs[1 if training else 0] == "dataset" and jobs.count("dataset") == 1
    assert f"update:{fb.Adam().kind}" in jobs and jobs[-1].startswith("loss:")
    assert ("step" in jobs) == training
    assert "dataset" not in _precompile.jobs_for(net.engine, training)
    (_, signature), = _precompile._targets("dataset", net.dtype)
    # the types the job compiles are those inference passes
    engine = net.engine
    batch = (np.zeros((4, 6), np.float32), engine.no_labels, engine.no_targets, engine.no_weights)
    args = engine._dataset_args(batch, 0, 0, 4, None, True)
    assert tuple(numba.typeof(a) for a in args) == signature


def test_a_by_address_activation_is_the_variant_binding_chooses():
    # gelu's row kernel address is resolved only when the network binds: before that, the
    # job list must already name the by-address pair that binding then picks
    net = fb.Network([fb.Dense(6, 5, activation="gelu"), fb.Dense(5, 3, activation="relu")],
                     input_shape=(6,))
    before = _precompile.jobs_for(net.engine)
    net.engine.bind()
    assert _precompile.jobs_for(net.engine) == before
    assert len([job for job in before if job.startswith("kind:")]) == 4  # two variants
