"""One training step of the convolutional and batch-norm shapes of scripts/compare.py
(cnn_digits, cnn_digits_bn, cnn1d, lenet, mlp_bn; cifar_small is left to compare.py, whose
steps take ~0.1 s each)."""

import numpy as np

import fastbp as fb

from . import common


def _cnn_digits(bn: bool):
    def conv(c_in, c_out):
        if bn:
            return [fb.Conv2D(c_in, c_out, 3, padding=1), fb.BatchNorm2D(c_out),
                    fb.Activation("relu")]
        return [fb.Conv2D(c_in, c_out, 3, padding=1, activation="relu")]
    return [*conv(1, 16), fb.MaxPool2D(2), *conv(16, 32), fb.MaxPool2D(2), fb.Flatten(),
            fb.Dense(128, 10)]


# name -> (per-sample input shape, batch, layers factory)
CNN_SHAPES = {
    "cnn_digits": ((1, 8, 8), 32, lambda: _cnn_digits(False)),
    "cnn_digits_bn": ((1, 8, 8), 32, lambda: _cnn_digits(True)),
    "cnn1d": ((1, 128), 64, lambda: [
        fb.Conv1D(1, 16, 7, stride=2, padding=3, activation="relu"),
        fb.Conv1D(16, 32, 5, stride=2, padding=2, activation="relu"), fb.MaxPool1D(2),
        fb.Flatten(), fb.Dense(512, 10)]),
    "lenet": ((1, 28, 28), 64, lambda: [
        fb.Conv2D(1, 6, 5, padding=2, activation="relu"), fb.MaxPool2D(2),
        fb.Conv2D(6, 16, 5, activation="relu"), fb.MaxPool2D(2), fb.Flatten(),
        fb.Dense(400, 120, activation="relu"), fb.Dense(120, 84, activation="relu"),
        fb.Dense(84, 10)]),
    "mlp_bn": ((784,), 128, lambda: [fb.Dense(784, 256), fb.BatchNorm1D(256),
                                     fb.Activation("relu"), fb.Dense(256, 10)]),
}


class ConvTrainStep:
    params = [list(CNN_SHAPES)]
    param_names = ["shape"]
    timeout = common.TIMEOUT

    def setup(self, shape):
        size, batch, layers = CNN_SHAPES[shape]
        self.net = fb.Network(layers(), input_shape=size, loss="cross_entropy",
                              dtype=common.DTYPE, seed=common.SEED)
        self.opt = common.make_optimizer()
        rng = np.random.default_rng(common.SEED)
        self.X = rng.standard_normal((batch, *size), dtype=np.float32)
        self.y = rng.integers(0, 10, size=batch)
        self.net.train_step(self.X, self.y, self.opt)  # compiles (or loads) the kernels

    def time_train_step(self, shape):
        self.net.train_step(self.X, self.y, self.opt)
