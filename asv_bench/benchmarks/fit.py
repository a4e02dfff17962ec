"""Training on scikit-learn's digits (1437 train / 360 test rows, 64 features, 10 classes)."""

from . import common

SIZES = (64, 32, 10)
BATCH_SIZE = 32


def _fit_epochs(net, opt, X, y, epochs):
    """``epochs`` shuffled mini-batch epochs: ``Network.fit`` (one kernel call per epoch)
    or, for the reference, its ``fit_epoch`` (one ``train_step`` per batch)."""
    if hasattr(net, "fit"):
        net.fit(X, y, optimizer=opt, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    else:
        for _ in range(epochs):
            net.fit_epoch(X, y, opt, batch_size=BATCH_SIZE)


class FitEpoch:
    params = common.IMPLEMENTATIONS
    param_names = ["implementation"]
    timeout = common.TIMEOUT

    def setup(self, implementation):
        (self.X, self.y), _ = common.digits()
        self.net = common.make_network(SIZES, implementation)
        self.opt = common.make_optimizer()
        _fit_epochs(self.net, self.opt, self.X, self.y, 1)  # compiles (or loads) the kernels

    def time_fit_epoch(self, implementation):
        _fit_epochs(self.net, self.opt, self.X, self.y, 1)


class FitAccuracy:
    """Test accuracy after a few epochs from the seeded start: a correctness tracker.

    Fully deterministic, so any change in it is a change in the maths (or the data split),
    not noise; fastbp and the reference should stay close.
    """

    params = common.IMPLEMENTATIONS
    param_names = ["implementation"]
    timeout = common.TIMEOUT
    epochs = 5

    def setup(self, implementation):
        (self.X, self.y), (self.X_test, self.y_test) = common.digits()
        self.net = common.make_network(SIZES, implementation)
        self.opt = common.make_optimizer()

    def track_test_accuracy(self, implementation):
        _fit_epochs(self.net, self.opt, self.X, self.y, self.epochs)
        return common.accuracy(self.net, self.X_test, self.y_test)

    track_test_accuracy.unit = "accuracy"
