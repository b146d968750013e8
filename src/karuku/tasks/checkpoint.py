"""`task_for`: the task a checkpoint was measured with, or the one a user names instead (as `data.for_checkpoint`)."""

from __future__ import annotations

from typing import Any

from karuku.tasks.config import TaskConfig


def task_for(ckpt, task: TaskConfig | dict[str, Any] | None = None, targets: str = "classes") -> TaskConfig | None:
    """A `TaskConfig` replaces the stored task (meta "task"), a dict overrides it (another task name drops the
    stored settings); None when neither says (the data's own task then). Settings without a task name (e.g.
    only a metric) apply to the data's own task (`targets`: "classes", "values" or "none"). A user's metric
    recorded in the file is imported only when its module is trusted; one the user names now is trusted."""
    from karuku.io.checkpoint import check_trusted_name, trust_import
    from karuku.tasks.measure import DEFAULT_TASKS

    stored = ckpt.meta.get("task") if isinstance(ckpt.meta.get("task"), dict) else None
    if isinstance(task, TaskConfig):
        cfg = task
    else:
        given = {k: v for k, v in (task or {}).items() if v is not None}
        base = dict(stored or {})
        if given.get("name") and given["name"] != base.get("name"):
            base = {}
        if not base and not given:
            return None
        merged = {**base, **given}
        cfg = TaskConfig(**{**merged, "name": merged.get("name") or DEFAULT_TASKS[targets]})
    named = cfg.name == (task.name if isinstance(task, TaskConfig) else (task or {}).get("name"))
    if cfg.name and ":" in cfg.name:
        if named:
            trust_import(cfg.name)
        else:
            check_trusted_name(cfg.name, f"{getattr(ckpt, 'path', None) or 'the checkpoint'} measures its quality")
    return cfg
