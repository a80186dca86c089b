"""keras.saving names: load_model, save_model, register_keras_serializable."""

from dlgpu.models.saving import SavedModelError, load_model, save_model  # noqa: F401


def register_keras_serializable(package="Custom", name=None):
    """Decorator making a custom class (layer, model, regularizer, initializer, constraint...) loadable by
    class name (no code is ever saved)."""
    from dlgpu.layers import register
    return register(name=name)


register_serializable = register_keras_serializable
