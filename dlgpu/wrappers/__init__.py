"""keras.wrappers: scikit-learn estimators around dlgpu models (needs ``pip install scikit-learn``)."""

from dlgpu.wrappers.sklearn_wrapper import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]
