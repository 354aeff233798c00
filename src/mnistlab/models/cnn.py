"""Small convolutional networks: seed 000's CNN, mnistlab's fast default and speedrun.

Layers are named (``conv1``, ``pool1``, ``fc1`` ...) rather than numbered, so that
``mnistlab summary``, ``mnistlab inspect`` and the checkpoint's tensor names
(``conv1.weight``) say which layer is which. Each kind is counted on its own:
``relu3`` is the network's third ReLU, whatever it follows.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._registry import register_model


@register_model("cnn", source="seed 000: two 5x5 conv layers (10, 20 channels), fc 320-50-10")
def cnn(num_classes: int = 10) -> nn.Module:
    """Seed 000's CNN: conv 10@5x5, pool, conv 20@5x5, pool, fc 320-50-10 (21,840 parameters).

    As in the seed, there is no activation between the two linear layers.
    """
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 10, 5),  # (N, 10, 24, 24)
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),  # (N, 10, 12, 12)
            conv2=nn.Conv2d(10, 20, 5),  # (N, 20, 8, 8)
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),  # (N, 20, 4, 4)
            flatten=nn.Flatten(),  # (N, 320)
            fc1=nn.Linear(320, 50),  # (N, 50)
            fc2=nn.Linear(50, num_classes),  # (N, 10)
        )
    )


@register_model("fast", source="mnistlab: the default recipe's network, tuned for time to 99%")
def fast(num_classes: int = 10, width: int = 16, hidden: int = 128) -> nn.Module:
    """Two conv-pool-BN-ReLU stages and an MLP head (80,250 parameters at width 16).

    BatchNorm lets Adam with a one-cycle schedule use a high learning rate, which
    is what gets past 99% test accuracy in one epoch. The size was picked by time
    to 99% on a 2-core CPU: 16/32 channels cost under a third of the FLOPs of the
    first version's 32/64 (2.2 vs 7.5 MFLOPs), and the hidden layer buys back the
    accuracy for 6% more. Width 12 measured no faster than 16 (oneDNN's NHWC
    kernels favour multiples of 8).

    Pooling comes straight after each convolution, as in airbench: BatchNorm and
    ReLU then run on a quarter of the pixels. On the CPU their forward and backward
    passes had cost as much as the convolutions; moving them made an epoch 1.2x
    faster at the same one-epoch accuracy (99.20-99.24% over seeds 0-2).
    """
    w = width
    return nn.Sequential(
        OrderedDict(
            # BN's shift makes a conv bias redundant
            conv1=nn.Conv2d(1, w, 5, bias=False),  # (N, 16, 24, 24)
            pool1=nn.MaxPool2d(2),  # (N, 16, 12, 12)
            bn1=nn.BatchNorm2d(w),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(w, 2 * w, 5, bias=False),  # (N, 32, 8, 8)
            pool2=nn.MaxPool2d(2),  # (N, 32, 4, 4)
            bn2=nn.BatchNorm2d(2 * w),
            relu2=nn.ReLU(),
            flatten=nn.Flatten(),  # (N, 512)
            fc1=nn.Linear(16 * 2 * w, hidden),  # (N, 128)
            relu3=nn.ReLU(),
            fc2=nn.Linear(hidden, num_classes),  # (N, 10)
        )
    )


@register_model(
    "speedrun", source="mnistlab: the speedrun preset's network, the least work per image to 99%"
)
def speedrun(num_classes: int = 10, width1: int = 8, width2: int = 32, hidden: int = 256):
    """``fast`` reshaped for a 2-core CPU: 8 then 32 channels, no BatchNorm on the first
    stage, a wider head with BatchNorm (140,818 parameters, 1.32 MFLOPs forward against
    fast's 2.23).

    Measured on the 2-core CPU (docs/speedrun.md), accuracy on the validation split:
    the first stage works on the 24x24 map, where 8 channels cost about half of
    ``fast``'s 16 and lost no accuracy with 32 after them; its BatchNorm cost 14% of a
    step and dropping it lost none either. The wider head (256) costs little and
    bought a little accuracy back, and BatchNorm on it a little more.
    """
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, width1, 5, bias=False),  # (N, 8, 24, 24)
            pool1=nn.MaxPool2d(2),  # (N, 8, 12, 12): max-pool before the activation
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(width1, width2, 5, bias=False),  # (N, 32, 8, 8)
            pool2=nn.MaxPool2d(2),  # (N, 32, 4, 4)
            bn2=nn.BatchNorm2d(width2),
            relu2=nn.ReLU(),
            flatten=nn.Flatten(),  # (N, 512)
            fc1=nn.Linear(16 * width2, hidden, bias=False),  # (N, 256)
            bn3=nn.BatchNorm1d(hidden),
            relu3=nn.ReLU(),
            fc2=nn.Linear(hidden, num_classes),  # (N, 10)
        )
    )


@register_model("pytorch-example", source="seed 003: the canonical pytorch/examples MNIST CNN")
def pytorch_example(num_classes: int = 10) -> nn.Module:
    """conv 32@3x3, conv 64@3x3, max-pool, dropout .25, fc 9216-128, dropout .5, fc 10
    (1,199,882 parameters)."""
    # conv1, conv2, dropout1, dropout2, fc1 and fc2 are the seed's own names
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 32, 3),  # (N, 32, 26, 26)
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(32, 64, 3),  # (N, 64, 24, 24)
            relu2=nn.ReLU(),
            pool=nn.MaxPool2d(2),  # (N, 64, 12, 12)
            dropout1=nn.Dropout(0.25),
            flatten=nn.Flatten(),  # (N, 9216)
            fc1=nn.Linear(9216, 128),  # (N, 128)
            relu3=nn.ReLU(),
            dropout2=nn.Dropout(0.5),
            fc2=nn.Linear(128, num_classes),  # (N, 10)
        )
    )
