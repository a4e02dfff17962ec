"""A layer kind defined outside fastbp, ``out = x * weight + bias`` over the last axis:
checked, trained, saved and loaded. Run it: ``python examples/custom_layer.py``."""

import tempfile

import numpy as np

import fastbp as fb
from fastbp.layers import F_NEED_D_INPUT


@fb.kernel
def scale_forward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n = params.shape[0] // 2  # weight, then bias; inp and out are (rows, size) views
    for i in range(inp.shape[0]):
        for j in range(inp.shape[1]):
            out[i, j] = inp[i, j] * params[j % n] + params[n + j % n]


@fb.kernel
def scale_backward(args):
    ints, floats, params, grads, buffers, inp, out, d_inp, d_out, scratch, batch, flags, rng = args
    n = params.shape[0] // 2
    grads[:] = 0
    for i in range(inp.shape[0]):
        for j in range(inp.shape[1]):
            grads[j % n] += d_out[i, j] * inp[i, j]  # d weight
            grads[n + j % n] += d_out[i, j]  # d bias
            if flags & F_NEED_D_INPUT:  # every layer but the first
                d_inp[i, j] = d_out[i, j] * params[j % n]


class ScaleTwin:  # the numpy twin: the same maths, written to be read
    @staticmethod
    def forward(layer, tensors, x, training, stream, update_buffers=True):
        return x * tensors["weight"] + tensors["bias"], x

    @staticmethod
    def backward(layer, tensors, x, d_out):
        rows = tuple(range(x.ndim - 1))
        return d_out * tensors["weight"], {"weight": (d_out * x).sum(axis=rows),
                                           "bias": d_out.sum(axis=rows)}


class Scale(fb.Layer):  # x * weight + bias over the last axis; weight starts at 1, bias at 0

    kernels = fb.LayerKernels(scale_forward, scale_backward)
    twin = ScaleTwin

    def __init__(self, num_features: int):
        self.num_features = int(num_features)

    def compute_output_shape(self, input_shape):  # ValueError if the input does not fit
        if input_shape[-1] != self.num_features:
            raise ValueError(f"Scale expects {self.num_features} features, got {input_shape}")
        return input_shape

    def parameter_shapes(self):
        return {"weight": (self.num_features,), "bias": (self.num_features,)}

    def reset_parameters(self, rng):
        self.weight, self.bias = np.ones(self.num_features), np.zeros(self.num_features)

    def get_config(self):
        return {"type": "Scale", "num_features": self.num_features}


if __name__ == "__main__":
    fb.testing.check_layer(Scale(4), input_shape=(3, 4))  # gradients and twin, or raises
    X = np.random.default_rng(0).normal(size=(512, 8)).astype("float32") * np.arange(1, 9)
    y = (X[:, 0] > 0).astype(int) + (X[:, 7] > 0)  # three classes
    net = fb.Network([Scale(8), fb.Dense(8, 16, "relu"), fb.Dense(16, 3)], input_shape=(8,))
    history = net.fit(X, y, optimizer=fb.Adam(lr=1e-2), epochs=20, batch_size=32)
    with tempfile.TemporaryDirectory() as folder:
        fb.save(net, f"{folder}/scale.npz")
        back = fb.load(f"{folder}/scale.npz")  # loads once this module's Scale is imported
    assert np.array_equal(back.predict(X), net.predict(X))
    print(f"trained, saved and loaded: final loss {history.history['loss'][-1]:.3f}")
