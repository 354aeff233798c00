"""Section 5 of ``mnistlab bench``: what the trainer's speed choices buy.

The issue behind the benchmark lists ways to go faster and asks to keep what
pays. Two of them are not visible in the other sections, so they are measured
here, on the ``fast`` recipe, against the alternative in the same run:

- the optimiser implementation: torch's for-loop, foreach and fused Adam;
- ``torch.compile`` for training (the first epoch pays for compiling).

NHWC against NCHW is in the scaling section.
"""

from __future__ import annotations

import statistics
import warnings

import torch

from ..data.loader import MnistData
from ..train.config import TrainConfig
from ..train.fitting import make_train_loader
from ..train.optim import make_scheduler
from .sections import _recipe, _train_split
from .timing import median_time, time_epoch

__all__ = ["choices_markdown", "trainer_choices"]

# optimiser keyword arguments per variant; "fused" is what make_optimizer picks
_OPTIMISERS = {
    "fused": {"fused": True},
    "foreach": {"foreach": True},
    "for-loop": {"foreach": False},
}


def trainer_choices(data: MnistData, device, budget) -> dict:
    """Epoch time of ``--preset fast`` per optimiser implementation, and compiled."""
    cfg = TrainConfig.from_preset("fast")
    x, y = _train_split(data, budget)
    loader = make_train_loader(cfg, x, y, data.info.mean, data.info.std)
    epochs: dict[str, list[float]] = {k: [] for k in _OPTIMISERS}
    step_ms: dict[str, float] = {}
    for rep in range(budget.repeats):
        for name, kw in _OPTIMISERS.items():
            cfg.seed = rep  # the model's initial weights; the loader keeps its own seed
            model, _, _, loss_fn = _recipe(cfg, len(loader), device, data.info)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, **kw)
            sched = make_scheduler(cfg.schedule, opt, 1, len(loader))
            seconds, _ = time_epoch(model, loader.batches(1), opt, loss_fn, device, sched)
            epochs[name].append(seconds)
            if rep == 0:  # the update alone, on the gradients the last step left
                step_ms[name] = 1000 * median_time(opt.step, 50)
    rows = [
        {
            "variant": f"{name} Adam",
            "epoch_s": statistics.median(v),
            "runs": v,
            "step_ms": step_ms[name],
        }
        for name, v in epochs.items()
    ]
    cfg.seed = 0
    return {
        "preset": "fast",
        "images": len(x),
        "repeats": budget.repeats,
        "rows": rows,
        "compile": _compiled(cfg, loader, device, data.info),
    }


def _compiled(cfg: TrainConfig, loader, device, info) -> dict:
    """Two epochs of the compiled model: the first includes compiling."""
    model, opt, sched, loss_fn = _recipe(cfg, len(loader), device, info, epochs=2)
    try:
        import torch._inductor.config as inductor_config

        compiled = torch.compile(model)
        # a cold compile, as a user's first run pays it, not one served from the disk
        # cache an earlier run (or the inference section) left behind
        with inductor_config.patch(force_disable_caches=True), warnings.catch_warnings():
            # torch warns that disabling caches also disables profile-guided recompiles
            warnings.simplefilter("ignore", UserWarning)
            first, _ = time_epoch(compiled, loader.batches(1), opt, loss_fn, device, sched)
            second, _ = time_epoch(compiled, loader.batches(2), opt, loss_fn, device, sched)
    except Exception as e:  # inductor needs a C++ compiler; report, do not fail
        return {"note": f"unavailable ({type(e).__name__}: {str(e).splitlines()[0][:80]})"}
    return {"first_epoch_s": first, "second_epoch_s": second}


def choices_markdown(c: dict) -> list[str]:
    rows = c["rows"]
    base = next(r for r in rows if r["variant"] == "fused Adam")
    lines = [
        "## 5. Trainer choices",
        "",
        f"*Measured {c['measured']}.*",
        "",
        f"`--preset {c['preset']}`, one epoch of {c['images']:,} images, {c['repeats']} "
        "epochs per variant, interleaved; median training seconds. *Update alone* is the "
        "median of the optimiser's step on one set of gradients.",
        "",
        "| variant | median epoch | vs fused | runs (s) | update alone |",
        "|---|---:|---:|---|---:|",
    ]
    for r in rows:
        runs = ", ".join(f"{t:.2f}" for t in r["runs"])
        lines.append(
            f"| {r['variant']} | {r['epoch_s']:.2f} s | {r['epoch_s'] / base['epoch_s']:.2f}x "
            f"| {runs} | {r['step_ms']:.2f} ms |"
        )
    comp = c["compile"]
    lines.append("")
    if "note" in comp:
        lines.append(f"torch.compile for training: {comp['note']}.")
    else:
        lines.append(
            f"**torch.compile for training** (the same recipe over two epochs): the first "
            f"epoch took {comp['first_epoch_s']:.2f} s, a cold compile included, the second "
            f"{comp['second_epoch_s']:.2f} s, against {base['epoch_s']:.2f} s eager. "
            + (
                "It is not used for training: compiling costs more than it saves here."
                if comp["second_epoch_s"] + comp["first_epoch_s"] > 2 * base["epoch_s"]
                else "Over two epochs it pays for its compile time."
            )
        )
    lines.append("")
    return lines
