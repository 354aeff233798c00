"""Training state to and from safetensors + JSON: optimiser, scheduler and RNG.

``torch.save`` would pickle all of this; we keep tensors in safetensors and the
rest (param groups, scheduler counters) in JSON, so resuming never unpickles.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import MnistlabError

__all__ = ["capture_state", "check_resume_doc", "check_saved_recipe", "restore_state"]


def capture_state(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (tensors for safetensors, JSON-able dict)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    scalars: dict[str, object] = {}
    for pid, per_param in sd["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    doc = {
        "param_groups": sd["param_groups"],
        "optim_scalars": scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    return tensors, doc


def restore_state(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    tensors: dict[str, torch.Tensor],
    doc: dict,
) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in doc["optim_scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = doc["param_groups"]
    for g in groups:  # JSON turned tuples such as Adam's betas into lists
        for k, v in g.items():
            if isinstance(v, list) and k != "params":
                g[k] = tuple(v)
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    _match_param_layouts(optimizer)
    if scheduler is not None and doc.get("scheduler") is not None:
        scheduler.load_state_dict(doc["scheduler"])
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


def _match_param_layouts(optimizer: torch.optim.Optimizer) -> None:
    # safetensors stores contiguous (NCHW) tensors, but a channels_last model's
    # weights are NHWC. Fused optimiser kernels walk param, grad and state as flat
    # memory, so a state tensor must have its parameter's strides, or a resumed run
    # updates the wrong elements.
    for group in optimizer.param_groups:
        for p in group["params"]:
            per_param = optimizer.state.get(p, {})
            for key, value in per_param.items():
                same_shape = torch.is_tensor(value) and value.shape == p.shape
                if same_shape and value.stride() != p.stride():
                    per_param[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


_RESUME_FIELDS = {  # the resume position in last.json, and the types it must have
    **{k: int for k in ("epoch", "step", "correct", "seen", "win_correct", "win_seen")},
    **{k: float for k in ("loss_sum", "seconds", "win_loss_sum", "best_val_acc")},
    "done": bool,
}


def check_resume_doc(doc: dict, path: Path) -> dict:
    """``doc["resume"]``, checked: a last.json edited by hand is refused in one line."""
    r = doc.get("resume")
    if not isinstance(r, dict):
        raise MnistlabError(
            f"{path}: holds no resume position; it is not a last.json of `mnistlab train`, "
            "or it was edited: train again"
        )
    for key, kind in _RESUME_FIELDS.items():
        value = r.get(key)
        ok = isinstance(value, bool) if kind is bool else not isinstance(value, bool)
        ok = ok and isinstance(value, (int, float) if kind is float else kind)
        if ok and kind is not bool:
            ok = math.isfinite(value) and (value >= (1 if key == "epoch" else 0) or kind is float)
        if not ok:
            what = {int: "a count", float: "a number", bool: "true or false"}[kind]
            raise MnistlabError(
                f"{path}: resume.{key} is {value!r}, not {what}; "
                "the file was edited or damaged: train again"
            )
    return r


def check_saved_recipe(
    doc: dict, resume: dict, recipe: dict, epochs: int, config: Path, last: Path
) -> None:
    """A run resumes only under the recipe its state was saved with (``doc["config"]``,
    last.json's copy): a schedule or a position made for another number of epochs or
    steps cannot go on. ``recipe``: config.json's, as it is now."""
    then = doc.get("config")
    if isinstance(then, dict):
        edited = sorted(k for k in recipe if k in then and then[k] != recipe[k])
        if edited:
            k = edited[0]
            raise MnistlabError(
                f"{config}: {k} is {recipe[k]!r} but the run was saved with {then[k]!r}; "
                f"the file was edited: restore it, or train again with --{k.replace('_', '-')}"
            )
    if resume["epoch"] > epochs:
        raise MnistlabError(
            f"{last}: resume.epoch {resume['epoch']} is past the run's {epochs} epochs; "
            "the file was edited or damaged: train again"
        )
