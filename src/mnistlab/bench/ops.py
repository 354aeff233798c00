"""``mnistlab ops-bench``: the from-scratch layers against torch's, side by side.

Times LeNet-5 forward and forward+backward per batch for each implementation,
with the ratio to torch. All three run the same weights on the same batch in
the same process, one after another, so the ratios compare like with like.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from ..models import create_model
from .timing import median_time

__all__ = ["MAX_BATCH", "bench_ops"]

MAX_BATCH = 4096  # im2col unfolds a batch to 25x its size: 4096 images take ~0.4 GB


def bench_ops(batches=(1, 64), repeats: int = 5, loops_batch_cap: int = 8) -> list[dict]:
    """Rows of {ops, batch, forward_ms, train_ms, forward_x, train_x} (x = times torch's).

    ``loops`` runs at most ``loops_batch_cap`` images per call and is scaled up to
    the full batch (its cost is linear in the batch), to keep the run short.
    """
    if not batches or not all(1 <= b <= MAX_BATCH for b in batches):
        raise UsageError(
            f"must be batch sizes from 1 to {MAX_BATCH}, got {list(batches)}", option="batches"
        )
    torch.manual_seed(0)
    ref = create_model("lenet5")
    models = {"torch": ref}
    for ops in ("im2col", "loops"):
        m = create_model("lenet5", ops=ops)
        m.load_state_dict(ref.state_dict())
        models[ops] = m
    rows = []
    for batch in batches:
        base = {}
        for ops, model in models.items():
            n = min(batch, loops_batch_cap) if ops == "loops" else batch
            x = torch.randn(n, 1, 28, 28)
            y = torch.randint(0, 10, (n,))

            def forward(model=model, x=x):
                with torch.no_grad():
                    model(x)

            def train_step(model=model, x=x, y=y):
                model.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x), y).backward()

            reps = 2 if ops == "loops" else repeats
            scale = batch / n
            fwd, trn = median_time(forward, reps) * scale, median_time(train_step, reps) * scale
            if ops == "torch":
                base = {"fwd": fwd, "trn": trn}
            rows.append(
                {
                    "ops": ops,
                    "batch": batch,
                    "measured_batch": n,
                    "forward_ms": 1000 * fwd,
                    "train_ms": 1000 * trn,
                    "forward_x": fwd / base["fwd"],
                    "train_x": trn / base["trn"],
                }
            )
    return rows
