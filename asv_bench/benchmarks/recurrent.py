"""One training step of the recurrent shapes of scripts/compare.py (gru_small, lstm_seq),
and a GRU step with both directions and every step's state returned."""

import numpy as np

import fastbp as fb

from . import common

# name -> (per-sample input shape (T, F), batch, layers factory)
RECURRENT_SHAPES = {
    "gru_small": ((32, 4), 64, lambda: [fb.GRU(4, 32), fb.Dense(32, 10)]),
    "lstm_seq": ((50, 8), 64, lambda: [fb.LSTM(8, 128), fb.Dense(128, 10)]),
    "gru_bi_seq": ((32, 4), 64, lambda: [fb.GRU(4, 32, bidirectional=True,
                                                return_sequences=True), fb.Flatten(),
                                         fb.Dense(32 * 64, 10)]),
}


class RecurrentTrainStep:
    params = [list(RECURRENT_SHAPES)]
    param_names = ["shape"]
    timeout = common.TIMEOUT

    def setup(self, shape):
        size, batch, layers = RECURRENT_SHAPES[shape]
        self.net = fb.Network(layers(), input_shape=size, loss="cross_entropy",
                              dtype=common.DTYPE, seed=common.SEED)
        self.opt = common.make_optimizer()
        rng = np.random.default_rng(common.SEED)
        self.X = rng.standard_normal((batch, *size), dtype=np.float32)
        self.y = rng.integers(0, 10, size=batch)
        self.net.train_step(self.X, self.y, self.opt)  # compiles (or loads) the kernels

    def time_train_step(self, shape):
        self.net.train_step(self.X, self.y, self.opt)
