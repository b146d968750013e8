"""Knowledge distillation: a student learns a teacher's soft targets (Hinton et al. 2015).

>>> from karuku.distillation import distill, DistillConfig
>>> distill(teacher, student, splits, DistillConfig(temperature=20, alpha=0.9))

`DistillationLoss` works in any loop; `DistillHook` joins karuku's loop; `recover`
fine-tunes a compressed model with its uncompressed self as the teacher.
"""

from karuku.distillation.config import DistillConfig
from karuku.distillation.distill import distill, make_hook
from karuku.distillation.hook import DistillHook
from karuku.distillation.loss import DistillationLoss, soft_target_loss
from karuku.distillation.recovery import RECOVERY, recover

__all__ = ["RECOVERY", "DistillConfig", "DistillHook", "DistillationLoss", "distill", "make_hook", "recover",
           "soft_target_loss"]
