"""keras.applications.resnet50: ResNet50 and its preprocessing, as in keras.applications.resnet."""

from dlgpu.applications.resnet import ResNet50, decode_predictions, preprocess_input  # noqa: F401
