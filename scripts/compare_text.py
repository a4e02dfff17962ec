"""Sequence-and-text benchmark: a character-level language model's training step and its
generation, fastbp against PyTorch eager and JAX jit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/compare_text.py [--rounds 5]

char_lm: Embedding(96, 64) -> LSTM(64, 256, every step) -> Dense(256, 96) on each step,
cross-entropy against the next character at every step, batch 32, T 64, float32, Adam.
word_sentiment: Embedding(20000, 64, padding_idx=0) -> bidirectional GRU(64, 64) -> Dense(128,
2), batch 64, lengths uniform in 5..100 right-padded to 100, against torch with
pack_padded_sequence (JAX is left out: it has no packed sequences).
Generation: 1000 characters sampled one at a time (temperature 0.8) from that model, fastbp's
``Network.generate`` against a torch loop that carries ``(h, c)`` (JAX is left out: a
per-token Python loop around jitted steps measures dispatch, not the model).

Every measurement runs in a fresh worker process (``--worker NAME``, one JSON line), the
workers interleaved over the rounds; the figure is the median over rounds of each worker's
median, with the min and max over rounds. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

V, D, H, T, BATCH = 96, 64, 256, 64, 32
STEPS, WARMUP, TOKENS = 30, 5, 1000
TORCH_THREADS = 2


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (BATCH, T + 1))
    return ids[:, :-1], ids[:, 1:]


def _time(step, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


WORDS, SENT_T, SENT_BATCH, SENT_H = 20000, 100, 64, 64


def _sentences(seed: int = 0):
    """A batch of word ids, lengths uniform in 5..100, right-padded with 0, and labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, SENT_T + 1, SENT_BATCH)
    X = rng.integers(1, WORDS, (SENT_BATCH, SENT_T))
    X[np.arange(SENT_T)[None, :] >= lengths[:, None]] = 0
    return X, rng.integers(0, 2, SENT_BATCH), lengths


def fastbp_worker(task: str) -> float:
    import fastbp as fb

    if task == "sentiment":
        net = fb.Network([fb.Embedding(WORDS, 64, padding_idx=0),
                          fb.GRU(64, SENT_H, bidirectional=True), fb.Dense(2 * SENT_H, 2)],
                         input_shape=(SENT_T,), seed=0)
        X, y, _ = _sentences()
        opt = fb.Adam(lr=1e-3)
        for _ in range(WARMUP):
            net.train_step(X, y, opt)
        return _time(lambda: net.train_step(X, y, opt), STEPS)

    net = fb.Network([fb.Embedding(V, D), fb.LSTM(D, H, return_sequences=True), fb.Dense(H, V)],
                     input_shape=(T,), seed=0)
    if task == "generate":
        net.generate(np.array([1, 2]), 20, temperature=0.8, seed=0)
        return _time(lambda: net.generate(np.array([1]), TOKENS, temperature=0.8, seed=0),
                     3) / TOKENS
    X, Y = _data()
    opt = fb.Adam(lr=2e-3)
    for _ in range(WARMUP):
        net.train_step(X, Y, opt)
    return _time(lambda: net.train_step(X, Y, opt), STEPS)


def torch_worker(task: str) -> float:
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)

    class CharLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, D)
            self.lstm = torch.nn.LSTM(D, H, batch_first=True)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x, state=None):
            y, state = self.lstm(self.emb(x), state)
            return self.out(y), state

    if task == "sentiment":
        emb = torch.nn.Embedding(WORDS, 64, padding_idx=0)
        gru = torch.nn.GRU(64, SENT_H, batch_first=True, bidirectional=True)
        head = torch.nn.Linear(2 * SENT_H, 2)
        params = [*emb.parameters(), *gru.parameters(), *head.parameters()]
        sent_opt = torch.optim.Adam(params, lr=1e-3)
        X, y, lengths = (torch.from_numpy(a) for a in _sentences())

        def sentiment_step():
            sent_opt.zero_grad(set_to_none=True)
            packed = torch.nn.utils.rnn.pack_padded_sequence(emb(X), lengths, batch_first=True,
                                                             enforce_sorted=False)
            _, h = gru(packed)
            logits = head(torch.cat([h[0], h[1]], dim=1))
            torch.nn.functional.cross_entropy(logits, y).backward()
            sent_opt.step()

        for _ in range(WARMUP):
            sentiment_step()
        return _time(sentiment_step, STEPS)
    model = CharLM()
    if task == "generate":
        generator = torch.Generator().manual_seed(0)

        def generate():
            with torch.no_grad():
                x, state = torch.tensor([[1]]), None
                for _ in range(TOKENS):
                    logits, state = model(x, state)
                    probs = torch.softmax(logits[:, -1] / 0.8, dim=-1)
                    x = torch.multinomial(probs, 1, generator=generator)

        generate()
        return _time(generate, 3) / TOKENS
    X, Y = (torch.from_numpy(a) for a in _data())
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        logits, _ = model(X)
        loss = loss_fn(logits.reshape(-1, V), Y.reshape(-1))
        loss.backward()
        opt.step()

    for _ in range(WARMUP):
        step()
    return _time(step, STEPS)


def jax_worker(task: str) -> float:
    import jax
    import jax.numpy as jnp
    import optax

    key = jax.random.PRNGKey(0)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    bound = 1 / np.sqrt(H)
    params = {"emb": jax.random.normal(k1, (V, D)),
              "w_ih": jax.random.uniform(k2, (4 * H, D), minval=-bound, maxval=bound),
              "w_hh": jax.random.uniform(k3, (4 * H, H), minval=-bound, maxval=bound),
              "b": jnp.zeros(4 * H),
              "w_out": jax.random.uniform(k4, (H, V), minval=-bound, maxval=bound),
              "b_out": jnp.zeros(V)}

    def loss_fn(p, x, y):
        inputs = p["emb"][x] @ p["w_ih"].T + p["b"]  # (n, T, 4H), all steps at once

        def cell(carry, gates_x):
            h, c = carry
            g = gates_x + h @ p["w_hh"].T
            i, f, gg, o = jnp.split(g, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[0], H))
        _, hs = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(inputs, 0, 1))
        logits = jnp.swapaxes(hs, 0, 1) @ p["w_out"] + p["b_out"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    opt = optax.adam(2e-3)
    state = opt.init(params)

    @jax.jit
    def train(p, s, x, y):
        grads = jax.grad(loss_fn)(p, x, y)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    X, Y = (jnp.asarray(a) for a in _data())
    holder = [params, state]

    def step():
        holder[0], holder[1] = train(holder[0], holder[1], X, Y)
        jax.block_until_ready(holder[0])

    for _ in range(WARMUP):
        step()
    return _time(step, STEPS)


# char_lm's multiply-adds per step in matrix products (x2: flops): the LSTM's forward
# (input and recurrent), backward (the recurrent dh, the weight gradients, d input) and
# the per-step Dense's forward and backward; the embedding and elementwise work left out.
CHAR_LM_FLOPS = 2 * BATCH * T * (4 * H * ((D + H) + H + (D + H) + D) + 3 * H * V)


def peak_worker(task: str) -> float:
    """This machine's float32 matrix-multiply rate (flop/s) on TORCH_THREADS threads: the
    faster of torch's and numpy's (OpenBLAS) 2048x2048 products."""
    import threadpoolctl
    import torch

    torch.set_num_threads(TORCH_THREADS)
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    ta = torch.from_numpy(a)
    with threadpoolctl.threadpool_limits(TORCH_THREADS, user_api="blas"):
        best = min(_time(lambda: a @ a, 7), _time(lambda: ta @ ta, 7))
    return 2 * 2048**3 / best


WORKERS = {"fastbp": fastbp_worker, "torch": torch_worker, "jax": jax_worker,
           "peak": peak_worker}
TASKS = {"char_lm step": ("train", ("fastbp", "torch", "jax")),
         "word_sentiment step": ("sentiment", ("fastbp", "torch")),
         "generation, per token": ("generate", ("fastbp", "torch"))}


def _run(name: str, task: str) -> float | None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    proc = subprocess.run([sys.executable, __file__, "--worker", name, task], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        print(f"{name} {task} failed: {proc.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "TASK"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        name, task = options.worker
        print(json.dumps(WORKERS[name](task)))
        return 0
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(options.rounds):
        for label, (task, names) in TASKS.items():
            for name in names:
                value = _run(name, task)
                if value is not None:
                    times.setdefault((label, name), []).append(value)
    print(f"Medians over {options.rounds} interleaved rounds (min - max); vs fastbp = peer time / "
          "fastbp time (> 1: fastbp is faster):\n")
    print("| measurement | framework | time | min - max | vs fastbp |\n|---|---|---:|---:|---:|")
    for label, (_, names) in TASKS.items():
        ours = statistics.median(times.get((label, "fastbp"), [float("nan")]))
        for name in names:
            runs = times.get((label, name))
            if not runs:
                continue
            median = statistics.median(runs)
            print(f"| {label} | {name} | {_fmt(median)} | {_fmt(min(runs))} - {_fmt(max(runs))} "
                  f"| {median / ours:.2f}x |")
    peak = _run("peak", "sgemm")
    torch_step = statistics.median(times.get(("char_lm step", "torch"), [float("nan")]))
    if peak:
        bound = CHAR_LM_FLOPS / peak
        print(f"\nchar_lm's matrix products are {CHAR_LM_FLOPS / 1e9:.2f} GFLOP per step. At "
              f"this machine's float32 matrix-multiply peak on {TORCH_THREADS} threads "
              f"({peak / 1e9:.0f} GFLOP/s, 2048x2048) a step takes at least {_fmt(bound)}: "
              f"fastbp runs at {bound / ours_char_lm(times):.0%} of that peak, torch at "
              f"{bound / torch_step:.0%}.")
    return 0


def ours_char_lm(times) -> float:
    return statistics.median(times.get(("char_lm step", "fastbp"), [float("nan")]))


if __name__ == "__main__":
    sys.exit(main())
