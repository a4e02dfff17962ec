"""Tables in Python: fb.TableEncoder (column selection, one-hot / ordinal / boolean encoding,
unseen categories, refusals), Standardize(passthrough=), saving with the network, and the
scikit-learn ColumnTransformer route."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import fastbp as fb
from fastbp.columns import ColumnError, RawTable, as_table, read_table, select_columns


def people(n=60, seed=0):
    """A mapping of columns: numbers (one missing), a city, yes/no, an id and a target."""
    rng = np.random.default_rng(seed)
    height = rng.normal(170, 10, size=n)
    height[3] = np.nan
    return {"id": np.arange(n), "height": height,
            "city": rng.choice(["Oslo", "Paris", "Rome"], size=n),
            "smoker": rng.choice(["yes", "no", "Yes", "NO"], size=n),
            "label": rng.choice(["a", "b"], size=n)}


# -- which columns -----------------------------------------------------------------------------
NAMES = ["id", "height", "city", "smoker", "label"]


@pytest.mark.parametrize("features, drop, chosen", [
    (None, None, ["id", "height", "city", "smoker"]),
    (["city", "height"], None, ["city", "height"]),
    ([2, 1], None, ["city", "height"]),
    (["2", "-4"], None, ["city", "height"]),
    (None, ["id"], ["height", "city", "smoker"]),
    (None, [0, "smoker"], ["height", "city"]),
], ids=["default-all-but-target", "features-by-name", "features-by-index",
        "features-by-index-strings", "drop-by-name", "drop-by-index-and-name"])
def test_select_columns_by_name_and_index(features, drop, chosen):
    assert select_columns(NAMES, features, drop, target="label") == chosen


@pytest.mark.parametrize("features, drop, match", [
    (["ciyt"], None, r"--features: the file has no column 'ciyt'; its columns are \['id'"),
    ([7], None, r"--features: column index 7 is out of range for the 5 columns"),
    (None, ["label"], r"--drop: 'label' is the target column, not a feature"),
    (["city", 2], None, r"--features: column 'city' is named twice"),
    (None, ["id", "height", "city", "smoker"], "no feature column left"),
    (["city"], ["id"], "pass --features or --drop, not both"),
], ids=["unknown-name", "index-out-of-range", "drop-target", "named-twice", "none-left",
        "both"])
def test_select_columns_names_the_argument_as_written(features, drop, match):
    with pytest.raises(ValueError, match=match):
        select_columns(NAMES, features, drop, "label", "the file", "--features", "--drop")


def test_a_column_named_like_an_index_is_a_name():
    assert select_columns(["2", "x", "y"], ["2"], None, target="y") == ["2"]


# -- encodings ---------------------------------------------------------------------------------
def test_fit_encodes_numbers_booleans_and_one_hot():
    table = people()
    encoder = fb.TableEncoder(drop=["id"]).fit(table, target="label")
    assert encoder.columns_ == ["height", "city", "smoker"]
    assert encoder.feature_names_out_ == ["height", "city=Oslo", "city=Paris", "city=Rome",
                                          "smoker"]
    assert encoder.passthrough_ == [1, 2, 3, 4] and encoder.text_columns == ["city", "smoker"]
    X = encoder.transform(table)
    assert X.shape == (60, 5) and X.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0], table["height"])  # NaN kept, for imputation
    np.testing.assert_array_equal(X[:, 1:4].argmax(1), np.searchsorted(
        ["Oslo", "Paris", "Rome"], table["city"]))
    np.testing.assert_array_equal(X[:, 4], np.isin(table["smoker"], ["yes", "Yes"]))
    assert dict(encoder.describe())["smoker"] == "boolean: yes=1, no=0"


@pytest.mark.parametrize("categorical", ["onehot", "ordinal"])
def test_unseen_and_missing_categories(categorical):
    train = {"city": np.array(["Oslo", "Rome", "Oslo", "Paris"]), "y": np.arange(4)}
    new = {"city": np.array(["Rome", "Bergen", "", "Bergen", "NA"])}
    encoder = fb.TableEncoder(categorical=categorical).fit(train, target="y")
    X, unseen = encoder.transform(new, return_unseen=True)
    assert unseen == {"city": (2, "Bergen")}  # missing cells are not unseen categories
    if categorical == "onehot":
        np.testing.assert_array_equal(X, [[0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    else:
        np.testing.assert_array_equal(X[:, 0], [2, -1, -1, -1, -1])


@pytest.mark.parametrize("categorical", ["onehot", "ordinal"])
def test_max_categories_groups_the_rarest_as_other(categorical):
    cells = np.array(["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"] + ["e"])
    encoder = fb.TableEncoder(categorical=categorical, max_categories=3).fit({"k": cells})
    X = encoder.transform({"k": np.array(["a", "b", "c", "e", "zz"])})
    if categorical == "onehot":
        assert encoder.feature_names_out_ == ["k=a", "k=b", "k=(other)"]
        np.testing.assert_array_equal(X, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0]])
    else:
        np.testing.assert_array_equal(X[:, 0], [0, 1, 2, 2, -1])
    assert "+ other (3 rarer ones)" in dict(encoder.describe())["k"]


@pytest.mark.parametrize("cells, match", [
    (["2024-01-02", "2024-02-03", "2023-12-31"], r"holds dates \(e.g. '2024-01-02'\); fastbp "
     r"does not encode dates: turn them into numbers .*days since a start date"),
    (["03/01/2024", "04/01/2024", "05/01/2024"], "holds dates"),
    (["", "NA", "?"], "has no value in any of the 3 training rows"),
], ids=["iso-dates", "day-month-year", "all-missing"])
def test_refused_columns_say_why_and_how_to_leave_them_out(cells, match):
    with pytest.raises(ColumnError, match=match) as info:
        fb.TableEncoder().fit({"when": np.array(cells), "x": np.arange(3.0)})
    assert info.value.column == "when" and "drop=['when']" in str(info.value)


@pytest.mark.parametrize("column, note", [
    (np.full(30, 4.0), "has one value (4) in all 30 training rows"),
    (np.array(["x"] * 30), "has one value ('x') in all 30 training rows that have a value"),
    (np.arange(30.0), "a different whole number in each of the 30 training rows"),
    (np.array([f"n{i}" for i in range(30)]), "30 distinct values in 30 training rows"),
    (np.array(["1", "2", "3", "many"] * 8), "mixes numbers and text"),
], ids=["constant-number", "constant-text", "row-number", "identifier-text", "mixed"])
def test_suspicious_columns_warn_and_are_kept(column, note):
    table = {"c": column[:30], "x": np.linspace(0, 1, 30)}
    with pytest.warns(UserWarning, match=re.escape(note)):
        encoder = fb.TableEncoder().fit(table)
    assert encoder.columns_ == ["c", "x"] and [c for c, _ in encoder.notes_] == ["c"]


@pytest.mark.parametrize("new, match", [
    ({"b": np.array(["maybe"]), "n": np.array([1.0])}, r"column 'b' is yes/no, got 'maybe'"),
    ({"b": np.array(["yes"]), "n": np.array(["ten"])}, "column 'n' has the text 'ten'"),
    ({"b": np.array(["yes"])}, r"has no column 'n'; the model takes \['b', 'n'\]"),
], ids=["unknown-boolean-word", "text-in-numbers", "absent-column"])
def test_transform_names_the_bad_cell(new, match):
    encoder = fb.TableEncoder().fit({"b": np.array(["yes", "no"]), "n": np.array([1.0, 2.0])})
    with pytest.raises(ValueError, match=match):
        encoder.transform(new)


def test_columns_are_found_by_name_among_others_in_any_order():
    table = people()
    encoder = fb.TableEncoder(features=["city", "height"]).fit(table)
    shuffled = {"extra": np.zeros(60), "height": table["height"], "city": table["city"]}
    np.testing.assert_array_equal(encoder.transform(shuffled), encoder.transform(table))


def test_dataframe_and_file_give_the_same_matrix(tmp_path):
    pd = pytest.importorskip("pandas")
    table = people()
    frame = pd.DataFrame(table)
    frame.loc[5, "city"] = None  # a missing category: all zeros
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    from_file = read_table(path)
    assert isinstance(from_file, RawTable) and from_file.names == list(table)
    encoder = fb.TableEncoder(drop=["id"]).fit(frame, target="label")
    np.testing.assert_array_equal(encoder.transform(from_file), encoder.transform(frame))
    assert not encoder.transform(frame)[5, 1:4].any()  # height, then city=...


def test_config_round_trip_and_bad_configs():
    encoder = fb.TableEncoder(drop=["id"], max_categories=2).fit(people(), target="label")
    back = fb.TableEncoder.from_config(encoder.get_config())
    np.testing.assert_array_equal(back.transform(people()), encoder.transform(people()))
    bad = encoder.get_config()
    bad["columns"][1]["other"] = bad["columns"][1]["categories"]
    with pytest.raises(ValueError, match="categories and other must be distinct strings"):
        fb.TableEncoder.from_config(bad)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"categorical": "dummy"}, ValueError, "categorical must be 'onehot' or 'ordinal'"),
    ({"max_categories": 1}, ValueError, "max_categories must be an int >= 2"),
], ids=["categorical", "max_categories"])
def test_options_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        fb.TableEncoder(**kwargs)


def test_as_table_refuses_what_is_not_a_table():
    with pytest.raises(TypeError, match="a table must be a DataFrame"):
        as_table(np.array(["a", "b"]))


# -- with a network ----------------------------------------------------------------------------
def test_passthrough_leaves_indicators_unscaled():
    X = np.column_stack([np.linspace(0, 10, 20), np.r_[np.ones(2), np.zeros(18)]])
    scaler = fb.Standardize(impute="mean", passthrough=[1]).fit(X)
    Z = scaler.transform(X)
    np.testing.assert_array_equal(Z[:, 1], X[:, 1])
    assert abs(Z[:, 0].mean()) < 1e-12 and Z[:, 0].std() == pytest.approx(1.0)
    back = fb.Standardize.from_config(scaler.get_config())
    assert back.passthrough == (1,)
    np.testing.assert_array_equal(back.transform(X), Z)
    with pytest.raises(ValueError, match="passthrough names feature 1, X has 1 features"):
        fb.Standardize(passthrough=[1]).fit(X[:, :1])


def test_columns_travel_with_the_network(tmp_path):
    table = people(120)
    y = table.pop("label")
    encoder = fb.TableEncoder(drop=["id"]).fit(table)
    net = fb.Network.mlp([encoder.n_outputs, 8, 2], seed=0)
    net.columns, net.label_encoder = encoder, fb.LabelEncoder().fit(y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        net.fit(encoder.transform(table), y, epochs=2, verbose=0, standardize=fb.Standardize(
            impute="mean", passthrough=encoder.passthrough_))
    net.save(tmp_path / "m.npz")
    back = fb.load(tmp_path / "m.npz")
    assert back.columns.get_config() == encoder.get_config()
    np.testing.assert_array_equal(back.predict(back.columns.transform(table)),
                                  net.predict(encoder.transform(table)))


def test_scikit_learn_column_transformer_route():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn", minversion="1.6")
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fastbp.sklearn import MLPClassifier

    frame = pd.DataFrame(people(200)).drop(columns="id").fillna({"height": 170.0})
    frame["label"] = np.where(frame["city"] == "Oslo", "north", "south")
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["city", "smoker"]),
                                remainder=StandardScaler()),
        MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0))
    model.fit(frame.drop(columns="label"), frame["label"])
    assert model.score(frame.drop(columns="label"), frame["label"]) >= 0.95


def test_dataframe_dtypes_nullable_numbers_categories_and_dates():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({
        "count": pd.array([1, None, 3, 4], dtype="Int64"),          # pd.NA: a missing number
        "kind": pd.Categorical(["x", "y", None, "x"]),              # None: a missing category
        "when": pd.to_datetime(["2024-01-01", None, "2024-02-01", "2024-03-05"]),
        "flag": [True, False, True, True]})                         # booleans: numbers 1/0
    with pytest.raises(ColumnError, match=r"column 'when' holds dates \(e.g. '2024-01-01"):
        fb.TableEncoder().fit(frame)
    encoder = fb.TableEncoder(drop=["when"]).fit(frame)  # a date column can be left out
    assert [kind for _, kind in encoder.describe()] == [
        "numeric, 1 missing", "one-hot, 2 categories (x, y); 1 missing", "numeric"]
    np.testing.assert_array_equal(encoder.transform(frame), [
        [1, 1, 0, 1], [np.nan, 0, 1, 0], [3, 0, 0, 1], [4, 1, 0, 1]])
