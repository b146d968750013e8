"""The integer-only reference engine: `to_integer(quant_model)` and the `IntegerModel` value object.

>>> im = to_integer(qm); im.save("model.int8.safetensors"); logits = IntegerModel.load(p).run(x)
"""

from karuku.quant.engine.convert import to_integer
from karuku.quant.engine.graph import KINDS, IntegerModel, Op, Value

__all__ = ["KINDS", "IntegerModel", "Op", "Value", "to_integer"]
