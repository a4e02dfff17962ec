"""scikit-learn estimators on fastbp's kernels.

- :class:`MLPClassifier` and :class:`MLPRegressor`: scikit-learn's MLP, same parameters,
  defaults, meaning (L2 penalty ``alpha`` on the weights only, scaled by the batch as
  scikit-learn scales it; its losses; its stopping rules, learning-rate schedules and
  ConvergenceWarning) and fitted attributes, plus fastbp's extras: ``dtype``, ``dropout``,
  an activation per hidden layer, ``class_weight``, an ``optimizer`` object, and
  ``validation_loss_curve_``. Switching is a change of import::

      from fastbp.sklearn import MLPClassifier   # instead of sklearn.neural_network

- :class:`NeuralNetClassifier` and :class:`NeuralNetRegressor` (skorch's names): any fastbp
  architecture (``layers=[...]``, convolutional included) as an estimator, trained by
  :meth:`fastbp.Network.fit` (one kernel call per epoch).

Estimators keep the fitted :class:`fastbp.Network` as ``network_``; they pickle and clone,
so ``GridSearchCV(n_jobs=...)`` and joblib spread them over processes. When several run
at once on one machine, give each a share of the cores with :func:`fastbp.set_num_threads`.
"""

try:
    import scipy.optimize  # noqa: F401
    import sklearn  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("fastbp.sklearn needs scikit-learn >= 1.6: pip install 'fastbp[sklearn]' "
                      "(or pip install scikit-learn)") from error

from ._mlp import MLPClassifier, MLPRegressor
from ._neural_net import NeuralNetClassifier, NeuralNetRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]
