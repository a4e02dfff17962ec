"""The command line's text commands: ``fastbp train --text FILE`` trains a character-level
LSTM language model; ``fastbp generate MODEL.npz`` continues a prompt with it."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fastbp as fb

SAMPLE_PROMPT_CHARS = 16  # the samples printed while training start from the text's opening


def train_text(args: argparse.Namespace, check_writable) -> int:
    """Train Embedding -> LSTM (every step) -> Dense (each step) on the characters of
    ``args.text``, printing a sample every fifth of the epochs; save with the vocabulary."""
    check_writable(args.save, args.plot)
    path = Path(args.text)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"--text {args.text}: not UTF-8 text ({e.reason} at byte {e.start})") \
            from None
    vocab = fb.text.Vocabulary.from_text(text, level="char")
    ids = vocab.encode(text)
    if len(ids) <= args.seq_len + 1:
        raise ValueError(f"--text {args.text} has {len(ids)} characters; --seq-len "
                         f"{args.seq_len} needs more than {args.seq_len + 1}")
    X, Y = fb.text.next_token_windows(ids, args.seq_len, step=max(1, args.seq_len // 2))
    net = fb.Network([fb.Embedding(len(vocab), 64),
                      fb.LSTM(64, args.hidden, return_sequences=True),
                      fb.Dense(args.hidden, len(vocab))],
                     input_shape=(args.seq_len,), dtype=args.dtype, seed=args.seed)
    net.vocabulary = vocab
    epochs = args.epochs or 20
    opt = fb.Adam(lr=args.lr or 3e-3, max_norm=args.clip or 1.0)
    print(f"data   {args.text}: {len(ids)} characters, {len(vocab)} distinct; {len(X)} windows "
          f"of {args.seq_len}")
    print(f"model  Embedding({len(vocab)}, 64) -> LSTM(64, {args.hidden}, every step) -> "
          f"Dense({args.hidden}, {len(vocab)}) on each step; {net.params.size:,} parameters")
    print(f"fit    {opt!r}, {epochs} epochs, batch {args.batch_size}", flush=True)
    prompt = ids[:SAMPLE_PROMPT_CHARS]

    class Sample(fb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % max(1, epochs // 5) == 0 or epoch + 1 == epochs:
                sample = vocab.decode(self.network.generate(prompt, 120, temperature=0.8,
                                                            seed=args.seed))
                print(f"epoch {epoch + 1:>3}  loss {logs['loss']:.3f}  "
                      f"sample: {sample!r}", flush=True)

    history = net.fit(X, Y, optimizer=opt, epochs=epochs, batch_size=args.batch_size,
                      verbose=0, callbacks=[Sample()])
    seconds = history.history["seconds"]
    print(f"time   {np.median(seconds):.4g} s/epoch (median of {len(seconds)} epochs)")
    if args.save:
        net.save(args.save, optimizer=opt)
        print(f"saved  {args.save} (with its vocabulary: fastbp generate {args.save})")
    if args.plot:
        history.plot(args.plot)
        print(f"plot   {args.plot}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Continue ``--prompt`` with a saved language model and print the text."""
    net = fb.load(args.model)
    if net.vocabulary is None:
        raise ValueError(f"{args.model} has no vocabulary (train it with 'fastbp train --text', "
                         "or set net.vocabulary before saving)")
    prompt = net.vocabulary.encode(args.prompt)
    if len(prompt) == 0:
        raise ValueError("--prompt must not be empty")
    ids = net.generate(prompt, args.length, temperature=args.temperature, top_k=args.top_k,
                       seed=args.seed)
    print(net.vocabulary.decode(ids))
    return 0


def add_generate_parser(sub, positive_int, nonnegative_float) -> None:
    g = sub.add_parser("generate", help="continue a prompt with a saved language model",
                       description="Sample text one character at a time from a model trained "
                       "with 'fastbp train --text'.")
    g.add_argument("model", metavar="MODEL.npz")
    g.add_argument("--prompt", default="The ", help="the text to continue (default: 'The ')")
    g.add_argument("--length", type=positive_int, default=300,
                   help="characters to add (default: %(default)s)")
    g.add_argument("--temperature", type=nonnegative_float, default=0.8,
                   help="softmax temperature; 0 takes the most likely character (default: "
                   "%(default)s)")
    g.add_argument("--top-k", type=positive_int, help="sample among the K most likely only")
    g.add_argument("--seed", type=int, help="the same seed gives the same text")
    g.set_defaults(func=cmd_generate)
