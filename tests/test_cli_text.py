"""The command line's language model: ``fastbp train --text`` and ``fastbp generate``."""

from pathlib import Path

import pytest

from fastbp.cli import main

TEXT = Path(__file__).resolve().parents[1] / "examples" / "data" / "backpropagation.txt"


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    import contextlib
    import io

    model = tmp_path_factory.mktemp("lm") / "lm.npz"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["train", "--text", str(TEXT), "--epochs", "5", "--hidden", "32",
                   "--seq-len", "32", "--save", str(model)])
    return rc, out.getvalue(), model


def test_train_text_reports_samples_and_saves(language_model):
    rc, out, model = language_model
    assert rc == 0 and model.exists()
    assert "distinct; " in out and "windows of 32" in out
    assert out.count("sample: ") == 5 and "A neural network" in out  # every fifth of 5 epochs
    assert "fastbp generate" in out


def test_generate_continues_the_prompt_reproducibly(language_model, capsys):
    model = language_model[2]
    rc, out, _ = run(capsys, "generate", model, "--prompt", "The loss ", "--length", "40",
                     "--seed", "3")
    assert rc == 0 and out.startswith("The loss ") and len(out.rstrip("\n")) >= 49
    assert run(capsys, "generate", model, "--prompt", "The loss ", "--length", "40",
               "--seed", "3")[1] == out
    rc, greedy, _ = run(capsys, "generate", model, "--prompt", "a", "--length", "10",
                        "--temperature", "0")
    assert rc == 0 and run(capsys, "generate", model, "--prompt", "a", "--length", "10",
                           "--top-k", "1", "--seed", "9")[1] == greedy


@pytest.mark.parametrize("argv,text", [
    (["train", "--text", TEXT, "--data", "digits"], "leave out --data, --model"),
    (["train", "--epochs", "2"], "train needs --data (or --text FILE"),
    (["generate", "MISSING.npz"], "MISSING.npz"),
    (["generate", "{model}", "--prompt", ""], "--prompt must not be empty"),
], ids=["text-and-data", "neither", "missing-model", "empty-prompt"])
def test_bad_text_commands_are_named(argv, text, language_model, capsys):
    argv = [str(a).replace("{model}", str(language_model[2])) for a in argv]
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and text in err


def test_generate_needs_a_model_with_a_vocabulary(capsys, tmp_path):
    rc, _, _ = run(capsys, "train", "--data", "digits", "--layers", "8", "--epochs", "1",
                   "--quiet", "--save", tmp_path / "m.npz")
    assert rc == 0
    rc, _, err = run(capsys, "generate", tmp_path / "m.npz")
    assert rc == 2 and "has no vocabulary" in err


def test_text_that_is_not_utf8_is_named(capsys, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    rc, _, err = run(capsys, "train", "--text", path, "--epochs", "1")
    assert rc == 2 and "not UTF-8 text" in err
