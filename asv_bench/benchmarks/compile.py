"""First-call latency in a fresh process: ``import fastbp``, build a net, first train_step.

``timeraw_`` benchmarks time ``stmt`` in a new interpreter, after running their ``setup``
code there untimed. The first ``train_step`` either compiles the fused kernel (cold: numba's
cache directory is a fresh, empty one) or loads it from numba's on-disk cache (warm: a fixed
directory that ``setup_cache`` filled by running the same code once in a subprocess).
"""

import os
import subprocess
import sys

from . import common

SHAPE = "tiny"

# Untimed, in the child. NUMBA_CACHE_DIR must be set before numba is imported (by
# ``import fastbp`` in CHILD_STMT); numpy only makes the data.
CHILD_SETUP = """\
import atexit, os, shutil, tempfile
{cache_line}
import numpy as np
rng = np.random.default_rng({seed})
X = rng.standard_normal(({batch}, {n_in}), dtype=np.float32).astype({dtype!r}, copy=False)
y = rng.integers(0, {n_out}, size={batch}, dtype=np.int64)
"""
# A fresh empty cache directory, removed at the child's exit (outside the timing).
COLD = """\
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastbp-asv-numba-cold-")
atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], True)"""
WARM = 'os.environ["NUMBA_CACHE_DIR"] = {cache_dir!r}'

# Timed, in the child.
CHILD_STMT = """\
import fastbp
net = fastbp.Network.mlp({sizes!r}, activation="relu", loss="cross_entropy", dtype={dtype!r},
                         seed={seed})
net.train_step(X, y, fastbp.Adam(lr={lr!r}))
"""


def _code(cache_line: str) -> tuple[str, str]:
    """(stmt, setup) for a timeraw benchmark."""
    sizes, batch = common.SHAPES[SHAPE]
    fields = {"sizes": list(sizes), "batch": batch, "n_in": sizes[0], "n_out": sizes[-1],
              "dtype": common.DTYPE, "seed": common.SEED, "lr": common.LR}
    return CHILD_STMT.format(**fields), CHILD_SETUP.format(cache_line=cache_line, **fields)


class FirstTrainStep:
    timeout = 300
    # A cold sample is a whole compile (~20 s): few samples and no warm-up calls.
    number = 1
    repeat = (1, 3, 45.0)
    min_run_count = 1
    warmup_time = 0

    def setup_cache(self):
        """Fill a fixed numba cache directory by running the same code once; return its path.

        asv runs this in a temporary directory that lives as long as this class's benchmarks.
        """
        cache_dir = os.path.abspath("numba-cache")
        stmt, setup = _code(WARM.format(cache_dir=cache_dir))
        subprocess.run([sys.executable, "-c", setup + stmt], check=True)
        return cache_dir

    setup_cache.timeout = 300

    def timeraw_first_train_step_cold(self, cache_dir):
        return _code(COLD)

    def timeraw_first_train_step_warm(self, cache_dir):
        return _code(WARM.format(cache_dir=cache_dir))
