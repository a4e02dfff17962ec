"""python -m fastbp warmup: every built-in kernel compiled into the cache ahead of use, so
that a network of built-in kinds reaches its first step without compiling."""

import json
import os
import subprocess
import sys

import pytest

import fastbp as fb
from fastbp import _dispatch, warmup


def test_every_built_in_kind_and_variant_is_warmed():
    jobs = [label for label, _ in warmup._jobs("float32")]
    kinds = warmup._built_in_kinds()
    for layer in (fb.Dense, fb.Conv2D, fb.GRU, fb.BatchNorm2D, fb.Embedding, fb.Masking):
        assert layer.kind in kinds
    module = _dispatch.KERNEL_MODULES[fb.LSTM.kind]
    assert sum(label.startswith("Recurrent kernels") for label in jobs) == len(module.VARIANTS)
    for label in ("loss cross_entropy", "Adam update", "training step", "split step",
                  "product pieces", "epochs and inference", "Sum kernels"):
        assert label in jobs


def test_bad_dtypes_are_named():
    with pytest.raises(ValueError, match=r"dtypes must hold 'float32' or 'float64', got 'int8'"):
        warmup.warmup(["int8"], progress=None)


FIRST_STEP = r"""
import json, time
t0 = time.perf_counter()
import numpy as np, fastbp as fb
t1 = time.perf_counter()
net = fb.Network([fb.Embedding(9, 4, padding_idx=0), fb.GRU(4, 8, bidirectional=True),
                  fb.Residual([fb.LayerNorm(16), fb.Dense(16, 16, activation="gelu")]),
                  fb.Dense(16, 3)], input_shape=(5,))
X = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]] * 4); y = np.arange(8) % 3
net.fit(X, y, optimizer=fb.AdamW(), epochs=1, verbose=0, validation_data=(X, y))
print(json.dumps([t1 - t0, time.perf_counter() - t1]))
"""


@pytest.mark.slow  # compiles every kernel (about 80 s)
def test_after_warmup_a_new_process_trains_without_compiling(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-c", "from fastbp.warmup import warmup; "
                    "warmup(progress=None)"], env=env, check=True, timeout=900)
    out = subprocess.run([sys.executable, "-c", FIRST_STEP], env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    _, first_fit = json.loads(out.strip().splitlines()[-1])
    # 0.2-0.3 s here (loading from the cache); compiling these kinds takes 15-30 s
    assert first_fit < 2.0


def test_the_cli_command_reports_progress(capsys, monkeypatch):
    from fastbp.cli import main

    seen = []
    monkeypatch.setattr(warmup, "_jobs", lambda dtype: [("one group", lambda: seen.append(dtype))])
    assert main(["warmup", "--dtype", "float32,float64"]) == 0
    out = capsys.readouterr().out
    assert seen == ["float32", "float64"]
    assert "[2/2] float64 one group" in out


def test_the_second_process_runs_only_the_known_groups_it_claims_first(tmp_path, monkeypatch):
    from fastbp._precompile import claim

    ran = []
    monkeypatch.setattr(warmup, "_jobs", lambda dtype: [
        (label, lambda d=dtype, n=label: ran.append(f"{d}:{n}")) for label in ("a", "b", "c")])
    assert claim(str(tmp_path), 1)  # the caller took float32:b already
    groups = ["float32:a", "float32:b", "float32:unknown", "float64:c"]
    assert warmup._worker(str(tmp_path), groups) == 0
    assert ran == ["float32:a", "float64:c"]
    assert not claim(str(tmp_path), 0) and claim(str(tmp_path), 2)  # unknown: left unclaimed


def test_the_cli_command_names_a_bad_dtype(capsys):
    from fastbp.cli import main

    assert main(["warmup", "--dtype", "float16"]) == 2
    assert "expected float32 and/or float64, comma-separated; got 'float16'" in \
        capsys.readouterr().err
