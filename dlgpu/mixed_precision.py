"""keras.mixed_precision: Keras's legacy names for the dtype policy functions (dlgpu/dtype_policies.py).

``set_global_policy("mixed_float16")`` before building a model makes its layers compute in float16 with
float32 variables, and ``compile`` wraps the optimizer in a LossScaleOptimizer.
"""

from dlgpu.dtype_policies import DTypePolicy, dtype_policy, set_dtype_policy
from dlgpu.optimizers.loss_scale import LossScaleOptimizer

Policy = DTypePolicy
global_policy = dtype_policy
set_global_policy = set_dtype_policy

__all__ = ["DTypePolicy", "Policy", "dtype_policy", "global_policy", "set_dtype_policy", "set_global_policy",
           "LossScaleOptimizer"]
