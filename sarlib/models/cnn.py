"""A small convolutional reference network: the locality bias a ViT lacks on small data, per the paper.

`SmallCNN`, registered as `cnn_micro`, has three stages of two 3x3 conv-BN-ReLU layers each and a 2x2 max-pool, then global average
pooling and a linear head (`head`, as timm's ViTs name their classifier). With the default widths (24,
48, 96) it has 162,994 parameters for 10 classes, about the cpu profile's ViT (`vit_micro_patch4`, 158,090: 3 blocks of
width 64, 4 heads, 4 px patches on 32 px images; 157,130 on Fashion-MNIST's 28 px), so the two compare at
the same budget. It has no [CLS] attention: the mechanism metrics (entropy, regions, Jaccard) do not
apply to it, and a run refuses SAR or the no-skip block with it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .vit import unwrap

__all__ = ["CNN_MODELS", "SmallCNN", "create_cnn", "has_cls_attention"]


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, *, widths: Sequence[int] = (24, 48, 96), in_chans: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for width in widths:
            for k in range(2):
                layers += [nn.Conv2d(channels if k == 0 else width, width, 3, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(images).mean(dim=(2, 3))))


# name -> constructor; a run picks one with --model and tunes it with --model-kwargs (widths, drop_rate)
CNN_MODELS = {"cnn_micro": SmallCNN}


def create_cnn(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """The CNN registered as `name`; unknown keyword arguments fail in one line naming the fix."""
    try:
        return CNN_MODELS[name](num_classes, **kwargs)
    except TypeError as err:
        raise ValueError(f"{name} cannot be built with {kwargs} ({err}); it takes widths, in_chans and drop_rate "
                         "(--model-kwargs)") from None


def has_cls_attention(model: nn.Module) -> bool:
    """Whether `model` is a ViT whose [CLS] attention sarlib reads (not one of the reference CNNs)."""
    return not isinstance(unwrap(model), tuple(CNN_MODELS.values()))
