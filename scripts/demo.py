"""The README's demo: train an MLP on scikit-learn's bundled digits with fastbp, time an
epoch of the numpy reference on the same recipe, plot the curves; then a small CNN on the
same digits as images and a GRU on them as row-by-row sequences, their accuracies next to
the MLP's; last, a character-level language model that writes text."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import fastbp as fb
from fastbp import reference

RECIPE = {"sizes": [64, 256, 10], "dropout": 0.2, "lr": 1e-3, "epochs": 30, "batch_size": 32}


def main() -> int:
    out_dir = Path(__file__).resolve().parents[1] / "out"
    out_dir.mkdir(exist_ok=True)
    (X, y), (X_test, y_test) = fb.datasets.load_digits()
    print(f"digits: {len(X)} training and {len(X_test)} test images of 8x8 pixels, 10 classes")
    print(f"network: {RECIPE['sizes']} ReLU, dropout {RECIPE['dropout']}, Adam lr {RECIPE['lr']}, "
          f"batch {RECIPE['batch_size']}")

    started = time.perf_counter()
    net = fb.Network.mlp(RECIPE["sizes"], dropout=RECIPE["dropout"], seed=0)
    net.fit(X[:64], y[:64], epochs=1, verbose=0)  # compile (or load the cached kernels)
    print(f"kernels ready in {time.perf_counter() - started:.1f} s (compiled once, then cached)")

    net = fb.Network.mlp(RECIPE["sizes"], dropout=RECIPE["dropout"], seed=0)
    history = net.fit(X, y, optimizer=fb.Adam(lr=RECIPE["lr"]), epochs=RECIPE["epochs"],
                      batch_size=RECIPE["batch_size"], validation_data=(X_test, y_test), verbose=1)
    fast_epoch = float(np.median(history.history["seconds"]))

    # numpy's generator for the masks: the kernels' own stream in Python would time the RNG
    twin = reference.Network.mlp(RECIPE["sizes"], dropout=RECIPE["dropout"], seed=0, stream="numpy")
    opt = fb.Adam(lr=RECIPE["lr"])
    rng = np.random.default_rng(0)
    ref_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        twin.fit_epoch(X, y, opt, batch_size=RECIPE["batch_size"], rng=rng)
        ref_times.append(time.perf_counter() - t0)
    ref_epoch = float(np.median(ref_times))

    metrics = net.evaluate(X_test, y_test)
    print(f"\ntest accuracy: {metrics['accuracy']:.2%}   test loss: {metrics['loss']:.4f}")
    print(f"time per epoch (median): fastbp {fast_epoch * 1e3:.2f} ms, "
          f"numpy reference {ref_epoch * 1e3:.1f} ms ({ref_epoch / fast_epoch:.0f}x)")
    path = history.plot(out_dir / "digits_curves.png")
    print(f"loss and accuracy curves: {path}")

    # The same digits as 1x8x8 images, through a small convolutional network.
    (Xi, yi), (Xi_test, yi_test) = fb.datasets.load_digits(images=True)
    cnn = fb.Network([fb.Conv2D(1, 32, 3, padding=1, activation="relu"),
                      fb.Conv2D(32, 32, 3, padding=1, activation="relu"), fb.MaxPool2D(2),
                      fb.Flatten(), fb.Dropout(0.3), fb.Dense(32 * 4 * 4, 10)],
                     input_shape=(1, 8, 8), seed=0)
    print("\nCNN on the 1x8x8 images:", ", ".join(map(repr, cnn.layers)))
    cnn_history = cnn.fit(Xi, yi, optimizer=fb.Adam(lr=1e-3), epochs=30, batch_size=32,
                          validation_data=(Xi_test, yi_test), verbose=1)
    cnn_metrics = cnn.evaluate(Xi_test, yi_test)
    print(f"test accuracy: CNN {cnn_metrics['accuracy']:.2%}, MLP {metrics['accuracy']:.2%}; "
          f"CNN time per epoch (median) "
          f"{float(np.median(cnn_history.history['seconds'])) * 1e3:.1f} ms")
    print(f"CNN curves: {cnn_history.plot(out_dir / 'digits_cnn_curves.png')}")

    # And as sequences: each image's 8 rows are 8 time steps of 8 pixels, read by a GRU.
    (Xs, ys), (Xs_test, ys_test) = fb.datasets.load_digits(sequences=True)
    gru = fb.Network([fb.GRU(8, 32), fb.Dense(32, 10)], input_shape=(8, 8), seed=0)
    print("\nGRU on the rows as sequences:", ", ".join(map(repr, gru.layers)))
    gru_history = gru.fit(Xs, ys, optimizer=fb.Adam(lr=3e-3), epochs=30, batch_size=32,
                          validation_data=(Xs_test, ys_test), verbose=1)
    gru_metrics = gru.evaluate(Xs_test, ys_test)
    print(f"test accuracy: GRU {gru_metrics['accuracy']:.2%}; GRU time per epoch (median) "
          f"{float(np.median(gru_history.history['seconds'])) * 1e3:.1f} ms")
    print(f"GRU curves: {gru_history.plot(out_dir / 'digits_gru_curves.png')}")

    # And text: a character-level LSTM language model on a few paragraphs that ship with
    # the project, which then writes text of its own one character at a time.
    text = (Path(__file__).resolve().parents[1] / "examples" / "data" /
            "backpropagation.txt").read_text(encoding="utf-8")
    vocab = fb.text.Vocabulary.from_text(text, level="char")
    X_text, Y_text = fb.text.next_token_windows(vocab.encode(text), seq_len=64, step=16)
    lm = fb.Network([fb.Embedding(len(vocab), 64), fb.LSTM(64, 256, return_sequences=True),
                     fb.Dense(256, len(vocab))], input_shape=(64,), seed=0)
    lm.vocabulary = vocab
    print(f"\ncharacter language model on {len(text)} characters ({len(vocab)} distinct):",
          ", ".join(map(repr, lm.layers)))
    lm_history = lm.fit(X_text, Y_text, optimizer=fb.Adam(lr=3e-3, max_norm=1.0), epochs=40,
                        batch_size=32, verbose=1)
    print(f"next-character accuracy on the text: {lm.evaluate(X_text, Y_text)['accuracy']:.1%}"
          f"; time per epoch (median) "
          f"{float(np.median(lm_history.history['seconds'])) * 1e3:.0f} ms")
    sample = vocab.decode(lm.generate(vocab.encode("The network "), 300, temperature=0.7,
                                      seed=0))
    print(f"generated, one character at a time:\n{sample}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
