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
from fastbp.warmup import warmup

RECIPE = {"sizes": [64, 256, 10], "dropout": 0.2, "lr": 1e-3, "epochs": 30, "batch_size": 32}


def main() -> int:
    out_dir = Path(__file__).resolve().parents[1] / "out"
    out_dir.mkdir(exist_ok=True)
    (X, y), (X_test, y_test) = fb.datasets.load_digits()
    print(f"digits: {len(X)} training and {len(X_test)} test images of 8x8 pixels, 10 classes")
    print(f"network: {RECIPE['sizes']} ReLU, dropout {RECIPE['dropout']}, Adam lr {RECIPE['lr']}, "
          f"batch {RECIPE['batch_size']}")

    started = time.perf_counter()
    print("kernels: every built-in kind compiled into numba's cache (about a minute on first "
          "use, then loaded in a second)", flush=True)
    groups = warmup(progress=_slow_steps_only)
    print(f"kernels: {groups} groups ready in {time.perf_counter() - started:.1f} s")

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

    deep_residual(X, y, X_test, y_test, out_dir)

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


def _slow_steps_only(line: str) -> None:
    """warmup's progress lines for the groups that compiled (not those loaded)."""
    if line.startswith("[") and float(line.rsplit(" ", 2)[-2]) >= 0.5:
        print(f"  {line}", flush=True)


def deep_residual(X, y, X_test, y_test, out_dir: Path) -> None:
    """30 tanh layers with PyTorch's default initialisation: plain, the gradient vanishes
    and the network stays at chance; with residual blocks and LayerNorm it trains. The
    first batch's gradient norm per layer of both, plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def torch_default(rng, n_in, n_out):  # nn.Linear's U(-1/sqrt(n_in), 1/sqrt(n_in))
        return rng.uniform(-1, 1, (n_in, n_out)) / np.sqrt(n_in)

    def dense(n_in, n_out, activation="tanh"):
        return fb.Dense(n_in, n_out, activation=activation, init=torch_default)

    nets = {"plain": fb.Network([dense(64, 64)] + [dense(64, 64) for _ in range(28)]
                                + [dense(64, 10, "identity")], seed=0),
            "residual": fb.Network([dense(64, 64, "identity")]
                                   + [fb.Residual([fb.LayerNorm(64), dense(64, 64)])
                                      for _ in range(28)]
                                   + [fb.LayerNorm(64), dense(64, 10, "identity")], seed=0)}
    print("\n30 tanh layers, PyTorch's default initialisation, plain and with residual blocks:")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, net in nets.items():
        report = fb.diagnose(net, X[:256], y[:256], verbose=False)
        norms = [np.sqrt(sum(v ** 2 for k, v in report.gradients.items()
                             if k.startswith(f"layers.{i}.")))
                 for i in range(len(net.layers)) if net.layers[i].n_params]
        net.fit(X, y, optimizer=fb.Adam(lr=1e-3), epochs=15, batch_size=32, verbose=0)
        accuracy = net.evaluate(X_test, y_test)["accuracy"]
        print(f"  {name:8s} first layer's gradient / last's {norms[0] / norms[-1]:.1e}, "
              f"test accuracy {accuracy:.1%}")
        ax.semilogy(range(len(norms)), norms, marker=".", label=f"{name} ({accuracy:.0%})")
    ax.set_xlabel("layer (with parameters)")
    ax.set_ylabel("gradient L2 norm, first batch")
    ax.set_title("30 tanh layers on digits: the vanishing gradient, and residual blocks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "deep_gradients.png", dpi=110)
    plt.close(fig)
    print(f"gradient norms per layer: {out_dir / 'deep_gradients.png'}")


if __name__ == "__main__":
    sys.exit(main())
