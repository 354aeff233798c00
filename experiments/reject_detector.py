"""The reject option from a separate network: an unchanged digit classifier (``fast``,
trained on digits alone, so it keeps the digits-only accuracy) beside a digit/non-digit
detector trained on the same batches, the outliers included (docs/trust.md).

Otherwise the default recipe (Adam, one-cycle, label smoothing 0.1 for the classifier,
the augmentations, one outlier per 8 digits). The detector is ``fast`` with one output,
trained with binary cross-entropy (digit 1, outlier 0). Digit scores compared: the
detector's probability, and that times the classifier's top probability; each
threshold rejects 0.2% of the validation digits, as ``fit_threshold`` starts from.

    python experiments/reject_detector.py [--seed 0] [--epochs 10] [--width 16] [--hidden 128]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import mannwhitneyu

from mnistlab.data import load_data, load_split
from mnistlab.data.normalize import normalize
from mnistlab.data.outliers import outlier_images
from mnistlab.models import create_model
from mnistlab.train.build import make_train_loader
from mnistlab.train.config import TrainConfig
from mnistlab.train.optim import make_optimizer, make_scheduler

OUT = Path(__file__).with_name("reject_detector.json")


def main() -> None:
    ap = argparse.ArgumentParser()
    for name, default in (("seed", 0), ("epochs", 10), ("width", 16), ("hidden", 128)):
        ap.add_argument(f"--{name}", type=int, default=default)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    cfg = TrainConfig(seed=args.seed, epochs=args.epochs)
    data = load_data("mnist", None, "cpu", cfg.val_size, args.seed)
    m, s = data.info.mean, data.info.std
    loader = make_train_loader(cfg, *data.train, m, s)
    digits = list("0123456789")
    clf = create_model("fast", mean=m, std=s, class_names=digits)
    det = create_model(
        "fast",
        mean=m,
        std=s,
        class_names=["digit"],
        num_classes=1,
        width=args.width,
        hidden=args.hidden,
    )
    opt = make_optimizer("adam", [*clf.parameters(), *det.parameters()], cfg.lr)
    sched = make_scheduler("onecycle", opt, args.epochs, len(loader))
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        clf.train(), det.train()
        for x, y in loader.batches(epoch):
            k = loader.rank_outliers  # the outliers come last
            loss = F.cross_entropy(clf(x[:-k]), y[:-k], label_smoothing=cfg.label_smoothing)
            loss = loss + F.binary_cross_entropy_with_logits(det(x)[:, 0], (y >= 0).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    clf.eval(), det.eval()

    def out(net, u8):  # (N, C) outputs in batches of 1,000
        with torch.no_grad():
            return torch.cat(
                [net(normalize(u8[i : i + 1000], m, s)) for i in range(0, len(u8), 1000)]
            )

    tx, ty = load_split("mnist", "test")
    sets = {"val": data.val[0], "out": torch.from_numpy(outlier_images("val"))[:, None], "test": tx}
    probs = {k: torch.softmax(out(clf, u), 1).numpy() for k, u in sets.items()}
    det_p = {k: torch.sigmoid(out(det, u)[:, 0]).numpy() for k, u in sets.items()}
    right = probs["test"].argmax(1) == ty.numpy()
    scores = {
        "detector": det_p,
        "detector x classifier": {k: det_p[k] * probs[k].max(1) for k in sets},
    }
    res = {"seed": args.seed, "epochs": args.epochs, "detector_size": [args.width, args.hidden]}
    res |= {"train_seconds": round(seconds, 1), "test_acc": float(right.mean())}
    for name, sc in scores.items():
        thr = np.sort(sc["val"])[int(0.002 * len(sc["val"]))]
        auroc = mannwhitneyu(sc["test"], sc["out"]).statistic / (len(sc["test"]) * len(sc["out"]))
        res[name] = {
            "val_outliers_caught": float((sc["out"] < thr).mean()),
            "test_rejected": float((sc["test"] < thr).mean()),
            "test_acc_rejects_wrong": float((right & (sc["test"] >= thr)).mean()),
            "auroc_test_vs_val_outliers": float(auroc),
        }
    print(json.dumps(res, indent=1))
    runs = json.loads(OUT.read_text())["runs"] if OUT.exists() else []
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    OUT.write_text(
        json.dumps({"cpu": cpu, "threads": torch.get_num_threads(), "runs": [*runs, res]}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    main()
