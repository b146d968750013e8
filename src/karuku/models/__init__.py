"""The model zoo (plain torch modules) and model specs.

>>> from karuku.models import build
>>> model = build("lenet300", (1, 28, 28), 10)
"""

from karuku.models.registry import MODELS, build, register_model, resolve_factory
from karuku.models.spec import ModelSpec

__all__ = ["MODELS", "ModelSpec", "build", "register_model", "resolve_factory"]
