"""Skip-connection benchmark: a training step of two residual networks, fastbp against
PyTorch eager and JAX jit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/compare_blocks.py [--rounds 5]

resnet_small: Conv2D(3, 16, 3) BN ReLU, torchvision BasicBlocks 16 -> 16, 16 -> 32 (stride 2,
projection shortcut), 32 -> 64 (stride 2), global average pooling, Dense(64, 10); CIFAR-shaped
3x32x32, batch 64, float32, SGD with momentum 0.9, training mode (batch statistics).
resmlp: Dense(784, 256), 8 blocks x + [LayerNorm(256), Dense(256, 256) ReLU, Dense(256,
256)](x), Dense(256, 10); batch 128, float32, SGD with momentum 0.9.

Every measurement runs in a fresh worker process (``--worker NAME SHAPE``, one JSON line),
the workers interleaved over the rounds; the figure is the median over rounds of each
worker's median step, with the min and max over rounds. Prints Markdown.
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

THREADS = 2
STEPS, WARMUP = 20, 5
SHAPES = {"resnet_small": ((3, 32, 32), 64), "resmlp": ((784,), 128)}
# (c_in, c_out, stride) of resnet_small's BasicBlocks
BLOCKS = ((16, 16, 1), (16, 32, 2), (32, 64, 2))


def _data(shape: str):
    size, batch = SHAPES[shape]
    rng = np.random.default_rng(0)
    return rng.normal(size=(batch, *size)).astype(np.float32), rng.integers(0, 10, batch)


def _time(step) -> float:
    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(STEPS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def fastbp_worker(shape: str) -> float:
    import fastbp as fb

    if shape == "resnet_small":
        def block(c_in, c, stride):
            return fb.Residual(
                [fb.Conv2D(c_in, c, 3, stride=stride, padding=1), fb.BatchNorm2D(c),
                 fb.Activation("relu"), fb.Conv2D(c, c, 3, padding=1), fb.BatchNorm2D(c)],
                shortcut=None if (c_in, stride) == (c, 1) else
                [fb.Conv2D(c_in, c, 1, stride=stride), fb.BatchNorm2D(c)], activation="relu")

        layers = [fb.Conv2D(3, 16, 3, padding=1), fb.BatchNorm2D(16), fb.Activation("relu"),
                  *(block(*b) for b in BLOCKS), fb.GlobalAvgPool(), fb.Dense(64, 10)]
    else:
        layers = [fb.Dense(784, 256)] + [
            fb.Residual([fb.LayerNorm(256), fb.Dense(256, 256, activation="relu"),
                         fb.Dense(256, 256)]) for _ in range(8)] + [fb.Dense(256, 10)]
    net = fb.Network(layers, input_shape=SHAPES[shape][0], seed=0)
    X, y = _data(shape)
    opt = fb.SGD(lr=0.01, momentum=0.9)
    return _time(lambda: net.train_step(X, y, opt))


def torch_worker(shape: str) -> float:
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c, stride):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(c_in, c, 3, stride, 1), nn.BatchNorm2d(c),
                                      nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c))
            self.shortcut = None if (c_in, stride) == (c, 1) else nn.Sequential(
                nn.Conv2d(c_in, c, 1, stride), nn.BatchNorm2d(c))

        def forward(self, x):
            return torch.relu(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))

    class MLPBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.LayerNorm(256), nn.Linear(256, 256), nn.ReLU(),
                                      nn.Linear(256, 256))

        def forward(self, x):
            return x + self.body(x)

    if shape == "resnet_small":
        model = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(),
                              *(BasicBlock(*b) for b in BLOCKS), nn.AdaptiveAvgPool2d(1),
                              nn.Flatten(), nn.Linear(64, 10))
    else:
        model = nn.Sequential(nn.Linear(784, 256), *(MLPBlock() for _ in range(8)),
                              nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    X, y = (torch.from_numpy(a) for a in _data(shape))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(X), y).backward()
        opt.step()

    return _time(step)


def jax_worker(shape: str) -> float:
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

    keys = iter(jax.random.split(jax.random.PRNGKey(0), 64))

    def conv_params(c_in, c, k):
        fan_in = c_in * k * k
        return {"W": jax.random.normal(next(keys), (c, c_in, k, k)) * (2 / fan_in) ** 0.5,
                "b": jnp.zeros(c), "g": jnp.ones(c), "beta": jnp.zeros(c)}

    def conv_bn(p, x, stride, padding):
        x = lax.conv_general_dilated(x, p["W"], (stride, stride), [(padding, padding)] * 2,
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        x = x + p["b"][None, :, None, None]
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
        x = (x - mean[None, :, None, None]) * lax.rsqrt(var[None, :, None, None] + 1e-5)
        return x * p["g"][None, :, None, None] + p["beta"][None, :, None, None]

    def dense_params(a, b):
        return {"W": jax.random.normal(next(keys), (a, b)) * (2 / a) ** 0.5, "b": jnp.zeros(b)}

    if shape == "resnet_small":
        params = {"stem": conv_params(3, 16, 3), "head": dense_params(64, 10), "blocks": [
            {"c1": conv_params(c_in, c, 3), "c2": conv_params(c, c, 3),
             "sc": None if (c_in, s) == (c, 1) else conv_params(c_in, c, 1)}
            for c_in, c, s in BLOCKS]}

        def apply(p, x):
            x = jax.nn.relu(conv_bn(p["stem"], x, 1, 1))
            for bp, (_, _, s) in zip(p["blocks"], BLOCKS):
                body = conv_bn(bp["c2"], jax.nn.relu(conv_bn(bp["c1"], x, s, 1)), 1, 1)
                x = jax.nn.relu(body + (x if bp["sc"] is None else conv_bn(bp["sc"], x, s, 0)))
            return x.mean((2, 3)) @ p["head"]["W"] + p["head"]["b"]
    else:
        params = {"stem": dense_params(784, 256), "head": dense_params(256, 10), "blocks": [
            {"g": jnp.ones(256), "beta": jnp.zeros(256), "d1": dense_params(256, 256),
             "d2": dense_params(256, 256)} for _ in range(8)]}

        def apply(p, x):
            x = x @ p["stem"]["W"] + p["stem"]["b"]
            for bp in p["blocks"]:
                mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
                h = (x - mean) * lax.rsqrt(var + 1e-5) * bp["g"] + bp["beta"]
                h = jax.nn.relu(h @ bp["d1"]["W"] + bp["d1"]["b"])
                x = x + h @ bp["d2"]["W"] + bp["d2"]["b"]
            return x @ p["head"]["W"] + p["head"]["b"]

    tx = optax.sgd(0.01, momentum=0.9)

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, x), y).mean()

    @jax.jit
    def train(p, s, x, y):
        grads = jax.grad(loss_fn)(p, x, y)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    X, y = _data(shape)
    Xj, yj = jnp.asarray(X), jnp.asarray(y, dtype=jnp.int32)
    holder = [params, tx.init(params)]

    def step():
        holder[0], holder[1] = train(holder[0], holder[1], Xj, yj)
        jax.block_until_ready(holder[0])

    return _time(step)


WORKERS = {"fastbp": fastbp_worker, "torch": torch_worker, "jax": jax_worker}


def _run(name: str, shape: str) -> float | None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    proc = subprocess.run([sys.executable, __file__, "--worker", name, shape], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        print(f"{name} {shape} failed: {proc.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "SHAPE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        name, shape = options.worker
        print(json.dumps(WORKERS[name](shape)))
        return 0
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(options.rounds):
        for shape in SHAPES:
            for name in WORKERS:
                value = _run(name, shape)
                if value is not None:
                    times.setdefault((shape, name), []).append(value)
    print(f"Medians over {options.rounds} interleaved rounds (min - max); vs fastbp = peer time / "
          "fastbp time (> 1: fastbp is faster):\n")
    print("| shape | framework | step | min - max | vs fastbp |\n|---|---|---:|---:|---:|")
    for shape in SHAPES:
        ours = statistics.median(times.get((shape, "fastbp"), [float("nan")]))
        for name in WORKERS:
            runs = times.get((shape, name))
            if runs:
                median = statistics.median(runs)
                print(f"| {shape} | {name} | {_fmt(median)} | {_fmt(min(runs))} - "
                      f"{_fmt(max(runs))} | {median / ours:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
