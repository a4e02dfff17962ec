"""One training step (forward, loss, backward, Adam update) on the standard shapes."""

from . import common


class TrainStep:
    params = (list(common.SHAPES), common.IMPLEMENTATIONS)
    param_names = ["shape", "implementation"]
    timeout = common.TIMEOUT

    def setup(self, shape, implementation):
        sizes, _ = common.SHAPES[shape]
        self.net = common.make_network(sizes, implementation)
        self.opt = common.make_optimizer()
        self.X, self.y = common.make_batch(shape)
        self.net.train_step(self.X, self.y, self.opt)  # compiles (or loads) the kernel

    def time_train_step(self, shape, implementation):
        self.net.train_step(self.X, self.y, self.opt)
