"""Peak resident memory of a training run."""

from . import common

SHAPE = "medium"
N_STEPS = 200


class TrainSteps:
    """Peak RSS of the whole benchmark process after ``N_STEPS`` steps on the medium shape.

    The kernel is compiled in ``setup_cache``, which asv runs in a process of its own, so
    LLVM's compile-time memory is not counted: the benchmark process only loads the kernel
    from numba's on-disk cache. The figure still includes the interpreter, numpy and numba.
    """

    params = common.IMPLEMENTATIONS
    param_names = ["implementation"]
    timeout = common.TIMEOUT

    def setup_cache(self):
        sizes, _ = common.SHAPES[SHAPE]
        X, y = common.make_batch(SHAPE)
        common.make_network(sizes).train_step(X, y, common.make_optimizer())

    def setup(self, implementation):
        sizes, _ = common.SHAPES[SHAPE]
        self.net = common.make_network(sizes, implementation)
        self.opt = common.make_optimizer()
        self.X, self.y = common.make_batch(SHAPE)

    def peakmem_train_steps(self, implementation):
        for _ in range(N_STEPS):
            self.net.train_step(self.X, self.y, self.opt)
