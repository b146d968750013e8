"""Training: one loop for any nn.Module, with hooks, resume and data parallelism.

>>> from karuku.training import train, TrainConfig
>>> result = train(model, splits, TrainConfig(epochs=3))
"""

from karuku.training.config import TrainConfig
from karuku.training.evaluate import Score, predict, score
from karuku.training.hooks import Hook
from karuku.training.loop import TrainResult, lr_factor, train
from karuku.training.state import TrainState

__all__ = ["Hook", "Score", "TrainConfig", "TrainResult", "TrainState", "lr_factor", "predict", "score", "train"]
