"""fastbp.text: the vocabulary (characters, words, unknowns, padding, saved with a model),
next-token windows and right-padding of ragged sequences."""

import numpy as np
import pytest

import fastbp as fb
from fastbp.text import Vocabulary, next_token_windows, pad_sequences

TEXT = "the cat sat on the mat. the dog sat too!"


def test_char_vocabulary_round_trip_and_order():
    vocab = Vocabulary.from_text(TEXT, level="char")
    assert vocab.tokens[:2] == ["<pad>", "<unk>"]
    assert vocab.tokens[2] == " " and vocab.tokens[3] == "t"  # most frequent first
    ids = vocab.encode(TEXT)
    assert ids.dtype == np.int64 and ids.shape == (len(TEXT),)
    assert vocab.decode(ids) == TEXT
    assert vocab.encode("xyz").tolist() == [1, 1, 1]  # unknown characters


def test_word_vocabulary_min_freq_and_punctuation():
    vocab = Vocabulary.from_text([TEXT, "the end."], level="word", min_freq=2)
    assert set(vocab.tokens[2:]) == {"the", "sat", "."}
    assert vocab.decode(vocab.encode("the cat sat.")) == "the <unk> sat ."


def test_vocabulary_is_saved_with_the_network(tmp_path):
    vocab = Vocabulary.from_text(TEXT)
    net = fb.Network([fb.Embedding(len(vocab), 4, padding_idx=0), fb.Flatten(),
                      fb.Dense(12, 2)], input_shape=(3,), seed=0)
    net.vocabulary = vocab
    fb.save(net, tmp_path / "m.npz")
    loaded = fb.load(tmp_path / "m.npz")
    assert loaded.vocabulary.tokens == vocab.tokens and loaded.vocabulary.level == "char"
    net.vocabulary = "abc"
    with pytest.raises(TypeError, match="vocabulary must be a fastbp.text.Vocabulary"):
        fb.save(net, tmp_path / "n.npz")


def test_next_token_windows():
    ids = np.arange(10)
    X, Y = next_token_windows(ids, 3)
    np.testing.assert_array_equal(X, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(Y, X + 1)
    X, _ = next_token_windows(ids, 4, step=2)
    assert X[:, 0].tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="too few for one window of seq_len=10"):
        next_token_windows(ids, 10)


def test_pad_sequences():
    out = pad_sequences([[3, 4], [5], [6, 7, 8]])
    np.testing.assert_array_equal(out, [[3, 4, 0], [5, 0, 0], [6, 7, 8]])
    np.testing.assert_array_equal(pad_sequences([[3, 4, 9], [5]], padding_value=-1, max_len=2),
                                  [[3, 4], [5, -1]])
    with pytest.raises(TypeError, match=r"sequences\[1\] must be a 1-D sequence of integers"):
        pad_sequences([[1], [0.5]])


@pytest.mark.parametrize("call,exc,text", [
    (lambda: Vocabulary.from_text(TEXT, level="byte"), ValueError, "level"),
    (lambda: Vocabulary.from_text(TEXT, min_freq=0), ValueError, "min_freq"),
    (lambda: Vocabulary.from_text([TEXT, 3]), TypeError, "an item of type int"),
    (lambda: Vocabulary.from_text(TEXT).decode([1, 99]), ValueError, r"ids must be in 0..\d+, got 99"),
    (lambda: Vocabulary.from_text(TEXT).decode([1.0]), TypeError, "ids must be a 1-D array of integers"),
], ids=["level", "min-freq", "not-text", "id-range", "float-ids"])
def test_bad_arguments_are_named(call, exc, text):
    with pytest.raises(exc, match=text):
        call()


def test_a_character_model_learns_to_continue_a_text():
    """The pieces together: a vocabulary, windows, Embedding -> LSTM (every step) -> Dense
    (each step) with a label per step."""
    text = "abcabcabcabc" * 20
    vocab = Vocabulary.from_text(text)
    X, Y = next_token_windows(vocab.encode(text), 8, step=3)
    net = fb.Network([fb.Embedding(len(vocab), 8), fb.LSTM(8, 16, return_sequences=True),
                      fb.Dense(16, len(vocab))], input_shape=(8,), seed=0)
    net.fit(X, Y, optimizer=fb.Adam(lr=1e-2), epochs=30, batch_size=16, verbose=0)
    assert net.evaluate(X, Y)["accuracy"] > 0.95
    assert vocab.decode(net.predict(vocab.encode("abcabcab")[None])[0]) == "bcabcabc"
