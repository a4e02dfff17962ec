"""Inference throughput: class predictions for a large batch."""

from . import common

N_ROWS = 4096


class Predict:
    params = (["small", "medium"], common.IMPLEMENTATIONS)
    param_names = ["shape", "implementation"]
    timeout = common.TIMEOUT

    def setup(self, shape, implementation):
        sizes, _ = common.SHAPES[shape]
        self.predict = common.predictor(common.make_network(sizes, implementation))
        self.X, _ = common.make_batch(shape, n_rows=N_ROWS)
        self.predict(self.X)  # compiles (or loads) the kernels

    def time_predict(self, shape, implementation):
        self.predict(self.X)
