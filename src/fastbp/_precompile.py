"""A network's first run on a cold kernel cache compiles in two processes at once.

numba compiles one function at a time in a process, and a network's first run compiles, each
for seconds, the walkers (``train_step``, and ``run_dataset`` for fit, evaluate and
inference; the split step's entry points when its batches split over threads), each layer
kind's kernel pair and the loss. When at least two of these are missing from numba's on-disk
cache, :func:`compile_missing` starts a worker process (``_main``: CLAIMS DTYPE JOB...) and
both take jobs from the one list in its order, the costliest first (the walkers), whichever
is free taking the next (the costliest first balances the two processes better than
taking from opposite ends of the list), each claiming a job before compiling it (an
exclusively created file in a directory of its own, CLAIMS), so that none is compiled twice.
This process then waits for the worker, and its kernels load what the worker compiled from
the cache. A worker that fails or is killed only costs the time: whatever is still missing
compiles here as before.

Set ``FASTBP_COMPILE_WORKER=0`` to compile everything in the calling process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numba

from . import _codes as codes
from . import _dispatch
from ._threads import _available_cpus as available_cpus
from .kernels import dispatch as kernel_types
from .kernels import losses, optimizers, step, synced

WORKER_TIMEOUT = 600  # seconds: far above any first compile; then this process goes on
# The worker's program (not ``-m``: importing fastbp imports this module, which runpy would
# then run a second time).
WORKER_CODE = "import sys; from fastbp._precompile import _main; sys.exit(_main(sys.argv[1:]))"


def _kind_number(module_name: str) -> int | None:
    for kind, module in _dispatch.KERNEL_MODULES.items():
        if getattr(module, "__name__", None) == module_name:
            return kind
    return None


# The split step's entry points, each a job (compiled through _dispatch, which starts numba's
# threads before the parallel one); a part runs train_step itself, the "step" job.
SPLIT_ENTRIES = {"run_part": (step.run_part, kernel_types.part_args_types),
                 "split_gradient": (step.split_gradient, kernel_types.part_args_types),
                 "parts_at_once": (step.parts_at_once, kernel_types.part_args_types),
                 "synced_round": (synced.synced_round, kernel_types.part_args_types),
                 "synced_gradient": (synced.synced_gradient, kernel_types.part_args_types)}


def _targets(job: str, dtype) -> list[tuple]:
    """The (dispatcher, signature) pairs a job compiles."""
    what, _, arg = job.partition(":")
    if what == "step":
        return [(step.train_step, kernel_types.step_args_types(dtype))]
    if what == "dataset":
        return [(step.run_dataset, kernel_types.dataset_args_types(dtype))]
    if what in SPLIT_ENTRIES:
        kernel, types = SPLIT_ENTRIES[what]
        return [(kernel, types(dtype))]
    if what == "update":
        return [(optimizers.UPDATES[int(arg)], kernel_types.update_args_type(dtype))]
    if what == "loss":
        return [(losses.LOSS_KERNELS[int(arg)], kernel_types.loss_args_types(dtype))]
    if what == "kind":  # kind:<kernels module>:<variant>:<0 forward, 1 backward>
        module_name, variant, which = arg.rsplit(":", 2)
        kind = _kind_number(module_name)
        if kind is None:
            return []
        kernel = _dispatch.kernel_pair(kind, int(variant))[int(which)]
        return [(kernel, (kernel_types.layer_args_type(dtype),))]
    raise ValueError(f"unknown compile job {job!r}")


def run_job(job: str, dtype) -> None:
    """Compile (or load from the cache) what ``job`` names, as a network's first run would."""
    if job in SPLIT_ENTRIES:
        getattr(_dispatch, f"{job}_address")(dtype)
        return
    for kernel, signature in _targets(job, dtype):
        kernel.compile(signature)


def is_cached(kernel, signature: tuple) -> bool:
    """Whether numba has ``kernel`` for ``signature`` in this process or in its on-disk
    cache's index (looked up without loading the compiled code, which the first call
    then loads once)."""
    if signature in kernel.overloads:
        return True
    try:
        cache = kernel._cache
        key = cache._index_key(signature, kernel.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # another numba's internals: assume cached (no worker, as before)
        return True


def jobs_for(engine, training: bool = True, splits: bool = False,
             dataset: bool = False, update: int | None = None) -> list[str]:
    """The compile jobs of ``engine``'s first run, the costliest first: for training the
    walker; the dataset walker (``dataset``: fit's epochs and validation, evaluate,
    inference); with batch statistics, the split step's walker (if a first batch
    ``splits`` over threads);
    each built-in layer kind's forward and backward kernel (the pair its settings choose,
    as ``_dispatch.bind_kernels``); the split step's other entry points; the optimizer's
    update (``update``: its kind, if known); the loss. (Kinds defined outside fastbp
    compile in the calling process.)"""
    # a split through batch statistics walks in rounds (kernels/synced.py), its walker the
    # costliest of its entries
    synced = getattr(engine, "synced", False)
    split = "synced_gradient" if synced else "split_gradient"
    jobs = (["step"] + (["synced_round"] if synced and splits else [])) if training else []
    if dataset:
        jobs.insert(1 if training else 0, "dataset")
    plan = engine.plan
    for row in plan.table:
        if row[codes.L_IS_VIEW]:
            continue
        module = _dispatch.KERNEL_MODULES.get(int(row[codes.L_KIND]))
        name = getattr(module, "__name__", "")
        if not name.startswith("fastbp."):
            continue
        ints = plan.ints.copy()
        for index, _ in plan.late_ints:  # an activation's address, resolved only by binding:
            ints[index] = codes.LAST_INLINE + 1  # any value past the inline ones
        kind = f"kind:{name}:{_dispatch.row_variant(row, ints)}"
        for job in (f"{kind}:0", f"{kind}:1"):  # forward and backward: jobs of their own
            if job not in jobs:
                jobs.append(job)
    rest = ([] if synced else ["run_part"]) + [split, "parts_at_once"] \
        if training and splits else []
    if update is not None:
        rest.append(f"update:{int(update)}")
    return [*jobs, *rest, f"loss:{engine.loss_code}"]


def claim(directory: str, index: int) -> bool:
    """Whether this process took job ``index`` (its file in ``directory`` created here)."""
    try:
        os.close(os.open(os.path.join(directory, str(index)), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


def _run_claimed(directory: str, jobs: list[str], dtype, order) -> None:
    for index in order:
        if claim(directory, index):
            run_job(jobs[index], dtype)


def workers_allowed() -> bool:
    """Whether compiling may take a second process: not without the JIT, with
    FASTBP_COMPILE_WORKER=0, in a frozen app (its executable is the app, not Python) or on
    one CPU (which gains nothing)."""
    return not (numba.config.DISABLE_JIT or os.environ.get("FASTBP_COMPILE_WORKER", "1") == "0"
                or getattr(sys, "frozen", False) or not sys.executable or available_cpus() < 2)


def start_worker(code: str, args: list[str]):
    """A Python process running ``code`` with ``args``, compiling into this process's
    numba cache with this fastbp (wherever it was imported from: a source tree on sys.path
    too); None if no process can be started."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR  # the same cache, whatever chose it
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    try:
        return subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return None


def compile_missing(engine, training: bool = True, splits: bool = False,
                    dataset: bool = False, update: int | None = None) -> None:
    """Compile the kernels of ``engine``'s first run (:func:`jobs_for`) that are not cached,
    in this process and a worker at once (see the module); nothing when fewer than two
    are missing."""
    if not workers_allowed():
        return
    dtype = engine.dtype
    jobs = [job for job in jobs_for(engine, training, splits, dataset, update)
            if not all(is_cached(k, s) for k, s in _targets(job, dtype))]
    if len(jobs) < 2:
        return
    with tempfile.TemporaryDirectory(prefix="fastbp-compile-") as claims:
        worker = start_worker(WORKER_CODE, [claims, dtype.name, *jobs])
        if worker is None:  # no process to start (a sandbox): all of it here, as before
            return
        try:
            _run_claimed(claims, jobs, dtype, range(len(jobs)))
            worker.wait(WORKER_TIMEOUT)
        except BaseException as error:
            worker.kill()
            worker.wait()
            if not isinstance(error, subprocess.TimeoutExpired):
                raise


def _main(argv: list[str]) -> int:
    import numpy as np

    import fastbp  # noqa: F401  (registers the built-in layer kinds)

    claims, dtype, jobs = argv[0], np.dtype(argv[1]), argv[2:]
    _run_claimed(claims, jobs, dtype, range(len(jobs)))
    return 0


