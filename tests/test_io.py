"""save/load: identical networks back, optimizer resumes exactly, no pickle, atomic writes,
and every malformed file is a ValueError."""

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import build, make_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp as fb


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_predictions_bit_for_bit(tmp_path, dtype):
    net = fb.Network([fb.Dense(5, 7, activation="tanh"), fb.Dropout(0.3),
                      fb.Dense(7, 3, activation="leaky_relu"), fb.Dense(3, 2)],
                     loss="binary_cross_entropy", dtype=dtype, seed=4)
    net.params[:] += 0.1  # not the seeded initial values
    net.save(tmp_path / "m.npz")
    back = fb.load(tmp_path / "m.npz")
    X, _ = make_data(9, 5, 2, "mse")
    assert back.get_config() == net.get_config()
    assert back.params.dtype == net.params.dtype
    assert np.array_equal(back.params, net.params)
    assert np.array_equal(back.forward(X), net.forward(X))
    assert fb.load(tmp_path / "m.npz", return_optimizer=True)[1] is None


def test_optimizer_resumes_on_the_identical_trajectory(tmp_path):
    X, y = make_data(64, 6, 3, "cross_entropy", dtype="float32")
    net = build([6, 8, 3], dtype="float32", seed=1)
    opt = fb.Adam(lr=0.01, amsgrad=True)
    net.fit(X, y, optimizer=opt, epochs=2, batch_size=16, verbose=0)
    net.save(tmp_path / "ckpt.npz", optimizer=opt)
    net.fit(X, y, optimizer=opt, epochs=2, batch_size=16, verbose=0, shuffle=False)

    back, opt2 = fb.load(tmp_path / "ckpt.npz", return_optimizer=True)
    assert type(opt2) is fb.Adam and opt2.step_count == 8 and opt2.amsgrad
    back.fit(X, y, optimizer=opt2, epochs=2, batch_size=16, verbose=0, shuffle=False)
    assert np.array_equal(back.params, net.params)


def test_files_hold_no_pickle(tmp_path):
    net = build([3, 2])
    net.save(tmp_path / "m.npz", optimizer=fb.SGD(momentum=0.9))
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_crash_mid_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = build([3, 2], seed=1)
    old.save(path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        build([3, 2], seed=2).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def _meta_file(tmp_path, meta, params=None):
    buf = io.BytesIO()
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    if params is not None:
        arrays["params"] = params
    np.savez(buf, **arrays)
    path = tmp_path / "x.npz"
    path.write_bytes(buf.getvalue())
    return path


def test_foreign_newer_and_inconsistent_files(tmp_path):
    net = build([3, 2])
    good = {"format": "fastbp-model", "version": 1, "config": net.get_config()}
    cases = [
        ({"format": "keras"}, net.params, "unknown format"),
        (dict(good, version=99), net.params, "format version 99"),
        (good, net.params[:-1], "params of shape"),
        (good, net.params.astype(np.float32), "dtype"),
        (good, np.full_like(net.params, np.nan), "NaN"),
        (dict(good, config={"layers": [{"type": "Conv9"}]}), net.params, "bad architecture"),
        (good, None, "missing"),
    ]
    for meta, params, text in cases:
        with pytest.raises(ValueError, match=text):
            fb.load(_meta_file(tmp_path, meta, params))
    np.savez(tmp_path / "other.npz", X=np.ones(3))
    with pytest.raises(ValueError, match="missing 'meta'"):
        fb.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a valid fastbp model file"):
        fb.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        fb.load(tmp_path / "absent.npz")


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("io") / "m.npz"
    build([4, 3, 2]).save(path, optimizer=fb.Adam())
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10**6), flips=st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(1, 255)), max_size=4))
def test_fuzzed_files_raise_value_error(tmp_path, saved_bytes, cut, flips):
    data = bytearray(saved_bytes[: cut % (len(saved_bytes) + 1)])
    for pos, xor in flips:
        if data:
            data[pos % len(data)] ^= xor
    path = tmp_path / "fuzz.npz"
    path.write_bytes(bytes(data))
    try:
        net = fb.load(path)
    except ValueError:
        return
    # A flip the zip CRC does not cover (e.g. in padding) may leave a valid model.
    assert np.all(np.isfinite(net.params))


def test_zip_member_with_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as zf:
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        zf.writestr("params.npy", buf.getvalue())
        zf.writestr("meta.npy", buf.getvalue())
    with pytest.raises(ValueError):
        fb.load(path)


def test_optimizer_state_in_files_is_checked(tmp_path):
    net = build([3, 2])
    opt = fb.Adam()
    net.train_step(*make_data(4, 3, 2, "cross_entropy"), opt)
    net.save(tmp_path / "ok.npz", optimizer=opt)
    with np.load(tmp_path / "ok.npz") as data:
        arrays = {k: data[k] for k in data.files}
    for name, value in [("optimizer/exp_avg_sq", -np.ones(8)),
                        ("optimizer/exp_avg", np.full(8, np.nan)),
                        ("optimizer/exp_avg", np.array(["x"] * 8))]:
        broken = dict(arrays, **{name: value})
        np.savez(tmp_path / "bad.npz", **broken)
        with pytest.raises(ValueError, match="bad optimizer state"):
            fb.load(tmp_path / "bad.npz")


def test_save_refuses_another_networks_optimizer(tmp_path):
    a, b = build([3, 2]), build([3, 2])
    opt = fb.SGD(momentum=0.9)
    a.train_step(*make_data(4, 3, 2, "cross_entropy"), opt)
    with pytest.raises(ValueError, match="another network"):
        b.save(tmp_path / "m.npz", optimizer=opt)


def test_saved_file_mode_follows_umask(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        fb.Network([fb.Dense(2, 2)], seed=np.int64(3)).save(tmp_path / "m.npz")
    finally:
        os.umask(mask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644
    assert fb.load(tmp_path / "m.npz").seed == 3


# -- format 2: buffers, random state, every layer's config; format 1 still loads ----------------

DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_format1_file_from_fastbp_0_1_loads_and_predicts_identically():
    # Written by the release before format 2 (tests/data/format1_mlp.npz): Dense/Dropout
    # configs without input_shape, params only, and an Adam state.
    net, opt = fb.load(DATA / "format1_mlp.npz", return_optimizer=True)
    expected = np.load(DATA / "format1_mlp_expected.npz")
    assert np.array_equal(net.params, expected["params"])
    assert np.array_equal(net.forward(expected["X"]), expected["forward"])
    assert np.array_equal(opt.state_dict()["state"]["exp_avg"], expected["exp_avg"])
    assert net.input_shape == (6,) and net.buffers.size == 0


def test_format_carries_buffers_rng_and_shapes(tmp_path):
    net = fb.Network([fb.BatchNorm1D(2), fb.Dropout(0.2), fb.Flatten(), fb.Dense(6, 3),
                      fb.Activation("tanh")], input_shape=(2, 3), dtype="float64", seed=5)
    X = np.random.default_rng(0).normal(size=(8, 2, 3))
    net.train_step(X, np.arange(8) % 3, fb.SGD(lr=0.1))
    fb.save(net, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:
        meta = json.loads(data["meta"].tobytes().decode())
        assert meta["version"] == 3 and set(data.files) >= {"params", "buffers", "rng"}
    back = fb.load(tmp_path / "m.npz")
    assert back.get_config() == net.get_config() and back.input_shape == (2, 3)
    assert np.array_equal(back.engine.rng, net.engine.rng)
    assert back.buffers.size == 5 and np.array_equal(back.buffers, net.buffers)
    assert net.layers[0].num_batches_tracked == 1
    assert np.array_equal(back.forward(X), net.forward(X))


def test_save_load_fit_equals_an_uninterrupted_fit_with_shuffle_and_dropout(tmp_path):
    X, y = make_data(48, 6, 3, "cross_entropy", dtype="float32")
    straight = build([6, 8, 3], dtype="float32", seed=2, dropout=0.3)
    opt = fb.Adam(lr=0.01)
    straight.fit(X, y, optimizer=opt, epochs=2, batch_size=16, verbose=0)
    fb.save(straight, tmp_path / "ckpt.npz", optimizer=opt)
    straight.fit(X, y, optimizer=opt, epochs=2, batch_size=16, verbose=0)
    resumed, opt2 = fb.load(tmp_path / "ckpt.npz", return_optimizer=True)
    resumed.fit(X, y, optimizer=opt2, epochs=2, batch_size=16, verbose=0)
    assert np.array_equal(resumed.params, straight.params)


@pytest.mark.parametrize("name,value,text", [
    ("buffers", np.zeros(3), "buffers of shape"),
    ("rng", np.zeros(1, np.uint64), "random state"),
    ("rng", np.ones(2, np.uint64), "random state"),
])
def test_format2_fields_are_checked(tmp_path, name, value, text):
    fb.save(build([3, 2]), tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(tmp_path / "bad.npz", **dict(arrays, **{name: value}))
    with pytest.raises(ValueError, match=text):
        fb.load(tmp_path / "bad.npz")


def test_save_into_a_missing_directory_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nodir/x.npz"):
        fb.save(build([3, 2]), tmp_path / "nodir" / "x.npz")


def test_a_loaded_optimizer_saves_before_its_first_use(tmp_path):
    # format 1 -> format 2 without training in between
    net, opt = fb.load(DATA / "format1_mlp.npz", return_optimizer=True)
    fb.save(net, tmp_path / "v2.npz", optimizer=opt)
    back, opt2 = fb.load(tmp_path / "v2.npz", return_optimizer=True)
    assert np.array_equal(back.params, net.params)
    assert all(np.array_equal(opt2.state_dict()["state"][k], v)
               for k, v in opt.state_dict()["state"].items())


def test_absurd_sizes_in_a_file_are_a_bad_file(tmp_path):
    fb.save(build([3, 2]), tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["config"]["layers"][0]["n_out"] = 2**62
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="bad architecture"):
        fb.load(tmp_path / "bad.npz")


# -- untrusted files cannot exhaust memory (#31) ------------------------------------------
def _file(tmp_path, meta, **arrays):
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    path = tmp_path / "u.npz"
    path.write_bytes(buf.getvalue())
    return path


def _good_meta(net):
    return {"format": "fastbp-model", "version": 3, "config": net.get_config()}


def test_an_unknown_member_is_refused_unread(tmp_path, monkeypatch):
    from fastbp import io as fb_io

    net = build([3, 2])
    path = _file(tmp_path, _good_meta(net), params=net.params, buffers=net.buffers,
                 rng=net.engine.rng, junk=np.zeros(1000))
    read = []
    monkeypatch.setattr(fb_io, "_read", lambda archive, name: read.append(name))
    with pytest.raises(ValueError, match=r"unknown members \['junk'\]"):
        fb.load(path)
    assert read == []


def test_declared_sizes_are_checked_before_anything_is_allocated(tmp_path):
    import tracemalloc

    big = fb.Network([fb.Dense(4, 8), fb.Dense(8, 2)])
    config = big.get_config()
    config["layers"] = [{"type": "Dense", "n_in": 4, "n_out": 8000},
                        {"type": "Dense", "n_in": 8000, "n_out": 8000}]  # 64 M parameters
    path = _file(tmp_path, {"format": "fastbp-model", "version": 3, "config": config},
                 params=np.zeros(10, np.float32), buffers=np.zeros(0, np.float32),
                 rng=np.ones(1, np.uint64))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"params of shape \(10,\), expected \(64048000,\)"):
            fb.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # the 256 MB of parameters were never allocated


def test_a_huge_workspace_for_one_row_is_refused(tmp_path):
    net = fb.Network([fb.Conv2D(1, 1, 1)], input_shape=(1, 4, 4))
    config = net.get_config()
    config["input_shape"] = [1, 30000, 30000]  # 2 parameters, 7 GB of activations a row
    path = _file(tmp_path, {"format": "fastbp-model", "version": 3, "config": config},
                 params=net.params, buffers=net.buffers, rng=net.engine.rng)
    with pytest.raises(ValueError, match="bytes of workspace for one row"):
        fb.load(path)


@pytest.mark.parametrize("case", ["deep_json", "preprocessing_list", "version_bool",
                                  "config_string"])
def test_malformed_metadata_is_a_value_error(tmp_path, case):
    net = build([3, 2])
    arrays = {"params": net.params, "buffers": net.buffers, "rng": net.engine.rng}
    if case == "deep_json":
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(b"[" * 100_000 + b"]" * 100_000, dtype=np.uint8),
                 **arrays)
        path = tmp_path / "deep.npz"
        path.write_bytes(buf.getvalue())
    else:
        meta = _good_meta(net)
        meta.update({"preprocessing_list": {"preprocessing": []},
                     "version_bool": {"version": True},
                     "config_string": {"config": "Dense"}}[case])
        path = _file(tmp_path, meta, **arrays)
    with pytest.raises(ValueError, match="not a valid fastbp model file"):
        fb.load(path)


def test_optimizer_load_state_dict_refuses_negative_second_moments():
    net = build([3, 2])
    opt = fb.Adam()
    net.train_step(*make_data(4, 3, 2, "cross_entropy"), opt)
    state = opt.state_dict()
    state["state"]["exp_avg_sq"] = -np.abs(state["state"]["exp_avg_sq"]) - 1.0
    with pytest.raises(ValueError, match="'exp_avg_sq' holds negative values"):
        fb.Adam().load_state_dict(state)


def test_a_save_killed_mid_write_leaves_a_named_file_the_next_save_removes(tmp_path):
    import os
    import subprocess
    import sys

    net = fb.Network.mlp([3, 4, 2])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".m.npz.fastbp-save-{dead}-abc123.tmp"  # a killed save's leftover
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".m.npz.fastbp-save-{os.getppid()}-def456.tmp"  # a save in progress
    live.write_bytes(b"y")
    other = tmp_path / f".other.npz.fastbp-save-{dead}-ghi789.tmp"  # another target's
    other.write_bytes(b"z")
    net.save(tmp_path / "m.npz")
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["m.npz", live.name, other.name])
