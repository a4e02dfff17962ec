"""Exports that carry the preprocessing: Network.to_onnx with the table's columns
(imputation, standardisation, one-hot, yes/no), the labels and the target's units, checked
under ONNX Runtime against predict and predict_proba; to_torch(preprocessing=True)."""

from __future__ import annotations

import numpy as np
import pytest

import fastbp as fb

ORT_RTOL = 1e-5  # ONNX Runtime's float32 products against the kernels'


def _table(n=160, seed=0):
    rng = np.random.default_rng(seed)
    size = rng.normal(50.0, 10.0, size=n)
    size[::17] = np.nan  # imputed with the training mean
    city = rng.choice(["Oslo", "Paris", "Rome", "Bergen"], size=n)
    member = rng.choice(["yes", "no"], size=n)
    score = (np.nan_to_num(size, nan=50.0) - 50) / 10 + 2.0 * (city == "Oslo") \
        - 1.5 * (member == "yes") + rng.normal(0, 0.3, size=n)
    return {"size": size, "city": city, "member": member}, score


def _classifier(categorical="onehot", loss="cross_entropy", seed=0):
    """A network trained on the table: columns, imputation and standardisation, and either
    text labels (cross_entropy) or 0/1 targets (binary_cross_entropy)."""
    table, score = _table(seed=seed)
    encoder = fb.TableEncoder(categorical=categorical).fit(table)
    X = encoder.transform(table)
    if loss == "cross_entropy":
        y = np.array(["low", "mid", "high"])[np.digitize(score, [-0.5, 1.0])]
        net = fb.Network.mlp([encoder.n_outputs, 16, 3], seed=seed)
        net.label_encoder = fb.LabelEncoder().fit(y)
    else:
        y = (score > 0).astype(np.float64)
        net = fb.Network.mlp([encoder.n_outputs, 16, 1], loss=loss, seed=seed)
    net.columns = encoder
    net.fit(X, y, epochs=30, verbose=0, optimizer=fb.Adam(lr=1e-2),
            standardize=fb.Standardize(impute="mean", passthrough=encoder.passthrough_))
    return net, table, X


def _session(path):
    ort = pytest.importorskip("onnxruntime", reason="needs fastbp[onnx]")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _feeds(session, table):
    """The raw columns as the graph takes them: (n, 1) float64 or string."""
    return {i.name: np.asarray(table[i.name], dtype=object if i.type == "tensor(string)"
                               else np.float64).reshape(-1, 1) for i in session.get_inputs()}


@pytest.mark.slow  # ONNX Runtime
@pytest.mark.parametrize("onnx_dtype", ["float32", "float64"])
@pytest.mark.parametrize("categorical", ["onehot", "ordinal"])
def test_onnx_runtime_on_raw_columns_gives_predicts_labels(categorical, onnx_dtype, tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, table, X = _classifier(categorical)
    net.to_onnx(tmp_path / "m.onnx", dtype=onnx_dtype)  # preprocessing: the default
    session = _session(tmp_path / "m.onnx")
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [
        ("size", "tensor(double)", ["batch", 1]), ("city", "tensor(string)", ["batch", 1]),
        ("member", "tensor(string)", ["batch", 1])]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    label, proba = session.run(None, _feeds(session, table))
    expected = net.predict(X)
    assert len(set(expected)) == 3  # a classifier that uses every class
    np.testing.assert_array_equal(label, expected)
    np.testing.assert_allclose(proba, net.predict_proba(X), rtol=ORT_RTOL, atol=ORT_RTOL)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["classes"] == '["high", "low", "mid"]'


@pytest.mark.slow  # ONNX Runtime
def test_unseen_categories_and_missing_cells_encode_as_zeros_in_onnx_too(tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, _, _ = _classifier()
    new = {"size": np.array([np.nan, 40.0, 61.0, 55.0]),
           "city": np.array(["Bergen", "Lima", "", "Oslo"]),
           "member": np.array(["Yes", "no", "NA", "YES"])}
    X, unseen = net.columns.transform(new, return_unseen=True)
    assert unseen == {"city": (1, "Lima")}
    net.to_onnx(tmp_path / "m.onnx")
    session = _session(tmp_path / "m.onnx")
    label, proba = session.run(None, _feeds(session, new))
    np.testing.assert_array_equal(label, net.predict(X))
    np.testing.assert_allclose(proba, net.predict_proba(X), rtol=ORT_RTOL, atol=ORT_RTOL)


@pytest.mark.slow  # ONNX Runtime
def test_binary_cross_entropy_labels_are_0_1(tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, table, X = _classifier(loss="binary_cross_entropy")
    net.to_onnx(tmp_path / "m.onnx")
    session = _session(tmp_path / "m.onnx")
    label, proba = session.run(None, _feeds(session, table))
    assert label.dtype == np.int64 and label.shape == (len(X),)
    np.testing.assert_array_equal(label, net.predict(X))
    np.testing.assert_allclose(proba, net.predict_proba(X), rtol=ORT_RTOL, atol=ORT_RTOL)


@pytest.mark.slow  # ONNX Runtime
@pytest.mark.parametrize("with_columns", [True, False], ids=["columns", "matrix"])
def test_regression_prediction_in_the_targets_units(with_columns, tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    table, score = _table()
    y = 1000.0 + 250.0 * score  # far from standardised units
    encoder = fb.TableEncoder().fit(table)
    X = encoder.transform(table)
    net = fb.Network.mlp([encoder.n_outputs, 16, 1], loss="mse", seed=0)
    net.target_standardize = fb.Standardize().fit(y.reshape(-1, 1))
    net.fit(X, y, epochs=30, verbose=0, optimizer=fb.Adam(lr=1e-2),
            standardize=fb.Standardize(impute="mean"))
    if with_columns:
        net.columns = encoder
    net.to_onnx(tmp_path / "m.onnx")
    session = _session(tmp_path / "m.onnx")
    feeds = _feeds(session, table) if with_columns else {"input": X}
    if not with_columns:
        assert [(i.name, i.type) for i in session.get_inputs()] == [("input", "tensor(double)")]
    (prediction,) = session.run(None, feeds)
    expected = net.predict(X)
    assert prediction.shape == expected.shape == (len(X),)
    np.testing.assert_allclose(prediction, expected, rtol=ORT_RTOL)
    assert np.corrcoef(expected, y)[0, 1] > 0.8  # a model worth exporting


def test_raw_network_export_leaves_the_preprocessing_out(tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    net, _, _ = _classifier()
    model = net.to_onnx(tmp_path / "m.onnx", preprocessing=False)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert not {n.op_type for n in model.graph.node} & {"LabelEncoder", "Where", "Gather"}
    bare = fb.Network.mlp([3, 4, 2])  # carries nothing: the raw graph by default
    assert [o.name for o in bare.to_onnx(tmp_path / "b.onnx").graph.output] == ["output"]
    with pytest.raises(TypeError, match="preprocessing must be True, False or None"):
        net.to_onnx(tmp_path / "m.onnx", preprocessing="yes")


@pytest.mark.parametrize("name, match", [
    ("label", "column 'label' cannot name an input of the exported graph"),
    ("  ", "column '  ' cannot name an input"),
], ids=["an-output-name", "blank"])
def test_column_names_that_cannot_be_inputs_are_refused(name, match, tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    table = {name: np.arange(8.0), "x": np.linspace(0, 1, 8) ** 2}
    encoder = fb.TableEncoder().fit(table)
    net = fb.Network.mlp([2, 4, 1], loss="mse")
    net.columns = encoder
    with pytest.raises(ValueError, match=match):
        net.to_onnx(tmp_path / "m.onnx")


def test_internal_tensor_names_avoid_the_column_names(tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    table = {"cast_3": np.arange(8.0), "concat_1": np.array(list("abababab"))}
    encoder = fb.TableEncoder().fit(table)
    net = fb.Network.mlp([3, 4, 1], loss="mse")
    net.columns = encoder
    model = net.to_onnx(tmp_path / "m.onnx")  # the checker would refuse a name made twice
    produced = [out for node in model.graph.node for out in node.output]
    assert "cast_3" not in produced and "concat_1" not in produced


@pytest.mark.slow  # torch
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_to_torch_wraps_the_numeric_preprocessing(loss):
    torch = pytest.importorskip("torch", reason="needs fastbp[torch]")
    table, score = _table()
    encoder = fb.TableEncoder().fit(table)
    X = encoder.transform(table)
    net = fb.Network.mlp([encoder.n_outputs, 8, 3 if loss == "cross_entropy" else 1], loss=loss)
    y = np.digitize(score, [-0.5, 1.0]) if loss == "cross_entropy" else 100.0 * score
    if loss == "mse":
        net.target_standardize = fb.Standardize().fit(y.reshape(-1, 1))
    net.fit(X, y, epochs=3, verbose=0, standardize=fb.Standardize(
        impute="mean", passthrough=encoder.passthrough_))
    module = net.to_torch(preprocessing=True).eval()
    with torch.no_grad():
        out = module(torch.from_numpy(X)).numpy()
    expected = net.forward(X) if loss == "cross_entropy" else net.predict(X).reshape(-1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="preprocessing must be True or False"):
        net.to_torch(preprocessing=None)


@pytest.mark.slow  # ONNX Runtime
@pytest.mark.parametrize("kind", ["labels-per-step", "images-standardised"])
def test_predict_graph_beyond_flat_tables(kind, tmp_path):
    pytest.importorskip("onnx", reason="needs fastbp[onnx]")
    rng = np.random.default_rng(0)
    if kind == "labels-per-step":  # (n, T) labels, (n, T, C) probabilities
        net = fb.Network([fb.Embedding(10, 8), fb.GRU(8, 16, return_sequences=True),
                          fb.Dense(16, 10)], input_shape=(6,), seed=0)
        X = rng.integers(1, 10, size=(5, 6))
        feed = X.astype(np.float32)
    else:  # input (n, 1, 8, 8) in float64, standardised per pixel, then the CNN
        net = fb.Network([fb.Conv2D(1, 4, 3, padding=1, activation="relu"), fb.Flatten(),
                          fb.Dense(256, 3)], input_shape=(1, 8, 8), seed=0)
        X = feed = rng.normal(3.0, 5.0, size=(20, 1, 8, 8))
        net.fit(X, rng.integers(0, 3, 20), epochs=2, verbose=0, standardize=True)
    net.to_onnx(tmp_path / "m.onnx", preprocessing=True, dtype="float32")  # ORT: no f64 GRU
    session = _session(tmp_path / "m.onnx")
    label, proba = session.run(None, {"input": feed})
    np.testing.assert_array_equal(label, net.predict(X))
    np.testing.assert_allclose(proba, net.predict_proba(X), rtol=ORT_RTOL, atol=ORT_RTOL)
