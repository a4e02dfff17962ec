"""Compile every built-in kernel into numba's on-disk cache ahead of use
(``python -m fastbp warmup``).

Each layer kind's kernels, each loss, optimizer update and activation row kernel, and the
kind-independent entry points (the step, the split step, the pieces of big products, the
epoch and inference walker) compile once per dtype and are cached; a network of built-in
kinds then loads them from the cache instead of compiling on its first step.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable

import numpy as np

from . import _dispatch
from ._jit import kernel_digest
from ._precompile import WORKER_TIMEOUT, claim, start_worker, workers_allowed

# The second process's program (see _precompile.WORKER_CODE: not ``-m``)
WORKER_CODE = ("import sys; from fastbp.warmup import _worker; "
               "sys.exit(_worker(sys.argv[1], sys.argv[2:]))")

__all__ = ["warmup"]


def _jobs(dtype: str) -> list[tuple[str, Callable[[], object]]]:
    """(label, compile) for everything a network of built-in kinds may call in ``dtype``."""
    from .activations import ACTIVATIONS
    from .kernels import losses, optimizers
    from .losses import LOSSES
    from .optim import Optimizer

    jobs: list[tuple[str, Callable[[], object]]] = []
    for kind, name in sorted(_built_in_kinds().items()):
        module = _dispatch.KERNEL_MODULES[kind]
        variants = list(module.VARIANTS) if hasattr(module, "VARIANTS") else [0]
        for variant in variants:
            jobs.append((f"{name} kernels" + (f" ({variant})" if len(variants) > 1 else ""),
                         lambda k=kind, v=variant: _dispatch.kernel_addresses(k, dtype, v)))
        for key, kernel in getattr(module, "ROW_FORWARDS", {}).items():  # a row served
            jobs.append((f"{name} single-row kernel ({key})",
                         lambda k=kernel, key=key: _dispatch.row_forward_address(k, key, dtype)))
    loss_names = {loss.code: name for name, loss in LOSSES.items()}
    jobs += [(f"loss {loss_names.get(code, code)}",
              lambda c=code: _dispatch.loss_address(c, dtype)) for code in losses.LOSS_KERNELS]
    update_names = {}
    for cls in _subclasses(Optimizer):
        update_names.setdefault(getattr(cls, "kind", None), cls.__name__)
    jobs += [(f"{update_names.get(kind, kind)} update",
              lambda k=kind: _dispatch.update_address(k, dtype)) for kind in optimizers.UPDATES]
    jobs += [(f"activation {name}", lambda a=act: _dispatch.activation_address(a.row, dtype))
             for name, act in ACTIVATIONS.items() if act.row is not None]
    jobs += [("training step", lambda: _dispatch.step_address(dtype)),
             ("split step", lambda: (_dispatch.run_part_address(dtype),
                                     _dispatch.split_gradient_address(dtype),
                                     _dispatch.parts_at_once_address(dtype))),
             ("split step through batch statistics",
              lambda: (_dispatch.synced_round_address(dtype),
                       _dispatch.synced_gradient_address(dtype))),
             ("product pieces", lambda: (_dispatch.pieces_address(dtype, False),
                                         _dispatch.pieces_address(dtype, True))),
             ("epochs and inference", lambda: _run_a_network(dtype))]
    return jobs


def _subclasses(cls) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _built_in_kinds() -> dict[int, str]:
    """Kind number -> the names of fastbp's own layer classes with those kernels."""
    from .layers import Layer

    names: dict[int, list[str]] = {}
    for cls in _subclasses(Layer):
        if cls.__module__.startswith("fastbp.") and cls.__dict__.get("kernels") is not None:
            names.setdefault(cls.kind, []).append(cls.__name__.lstrip("_"))
    return {kind: "/".join(sorted(set(n))) for kind, n in names.items()}


def _run_a_network(dtype: str) -> None:
    """A tiny network through train_step, fit with validation, predict and evaluate, so
    that the walker's entry points (typed on the dtype alone) compile."""
    from . import Adam, Dense, Network

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 4)), rng.integers(0, 2, 16)
    net = Network([Dense(4, 2)], dtype=dtype, seed=0)
    net.train_step(X, y, Adam())
    net.fit(X, y, epochs=1, batch_size=8, verbose=0, validation_data=(X, y))
    net.predict(X)
    net.evaluate(X, y)


def warmup(dtypes: Iterable[str] = ("float32",),
           progress: Callable[[str], None] | None = print) -> int:
    """Compile (or load from the cache) every built-in kernel for each dtype.

    Parameters
    ----------
    dtypes : iterable of {"float32", "float64"}, default ("float32",)
    progress : callable or None, default print
        Called with a line per kernel group ("[3/40] float32 dense kernels 1.2 s").

    Returns
    -------
    int
        How many kernel groups were compiled or loaded.
    """
    import fastbp.layers  # noqa: F401  (every built-in kind registers its kernels)

    dtypes = list(dtypes)
    for dtype in dtypes:
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtypes must hold 'float32' or 'float64', got {dtype!r}")
    jobs = [(dtype, label, job) for dtype in dtypes for label, job in _jobs(dtype)]
    if progress is not None:
        progress(f"compiling {len(jobs)} kernel groups into numba's cache "
                 f"(kernels {kernel_digest()}); once per fastbp version")

    def run(i: int, note: str = "") -> None:
        dtype, label, job = jobs[i]
        start = time.perf_counter()
        job()
        if progress is not None:
            progress(f"[{i + 1}/{len(jobs)}] {dtype} {label} "
                     f"{time.perf_counter() - start:.1f} s{note}")

    with tempfile.TemporaryDirectory(prefix="fastbp-warmup-") as claims:
        # a second process takes the groups in the same order, each claimed once
        worker = start_worker(WORKER_CODE, [claims, *(f"{d}:{label}" for d, label, _ in jobs)]) \
            if workers_allowed() and len(jobs) > 1 else None
        elsewhere = []
        try:
            for i in range(len(jobs)):
                if worker is None or claim(claims, i):
                    run(i)
                else:
                    elsewhere.append(i)
            if worker is not None:
                worker.wait(WORKER_TIMEOUT)
        except BaseException:
            if worker is not None:
                worker.kill()
                worker.wait()
            raise
    for i in elsewhere:  # loaded from the cache (or compiled here, if the worker failed)
        run(i, " (compiled by a second process)")
    return len(jobs)


def _worker(claims: str, groups: list[str]) -> int:
    """The second process of :func:`warmup`: each group ("dtype:label") it claims first,
    in order; a group this fastbp does not know is left to the caller."""
    import fastbp.layers  # noqa: F401

    known = {f"{dtype}:{label}": job for dtype in {g.split(":", 1)[0] for g in groups}
             for label, job in _jobs(dtype)}
    for i, group in enumerate(groups):
        if group in known and claim(claims, i):
            known[group]()
    return 0
