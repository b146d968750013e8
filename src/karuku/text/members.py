"""A distilled soup member's weights and history, stored as it finishes (safetensors, the history as JSON in the
file's metadata), so a soup stopped part-way resumes at its next member instead of training all again."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from karuku.io.atomic import atomic_path


def member_path(folder: str | Path, member: int) -> Path:
    """Where soup member `member` (1-based) of a stage is stored."""
    return Path(folder) / f"member-{member}.safetensors"


def save_member(path: Path, state: dict[str, torch.Tensor], history: list[dict]) -> None:
    """Write one member atomically (a stop mid-write leaves no file, and the member is trained again)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp),
                  metadata={"history": json.dumps(history)})


def load_member(path: Path, like: dict[str, torch.Tensor], log=print) -> tuple[dict, list[dict]] | None:
    """A stored member whose tensors are those of `like` (names, shapes, dtypes); None when there is none, or
    when the file is unreadable or of another student (said, then trained again)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            history = json.loads((f.metadata() or {})["history"])
            state = {k: f.get_tensor(k).clone() for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any unreadable file: train the member again, say so
        log(f"stored soup member {path} unreadable ({exc}); training it again")
        return None
    if set(state) != set(like) or any(state[k].shape != v.shape or state[k].dtype != v.dtype
                                       for k, v in like.items()) or not isinstance(history, list):
        log(f"stored soup member {path} is of another student; training it again")
        return None
    return state, history
