"""sarlib: the spatial-entropy attention regularizer (SAR) for timm Vision Transformers.

Core API:
    label_components(mask)              batched exact 8-connected labelling, any device
    spatial_entropy(logits, grid)       the SAR loss (also SpatialEntropyLoss)
    lambda_schedule(epoch, epochs, ...)      the lambda schedule
    create_model(name, num_classes=...) timm ViT with [CLS] attention capture (forward_with_attention)
"""

from .sar.components import label_components
from .sar.entropy import SpatialEntropyLoss, spatial_entropy
from .models.vit import (
    NoSkipBlock,
    cls_attention,
    create_model,
    enable_cls_attention,
    forward_with_attention,
    patch_grid,
)
from .sar.schedule import lambda_schedule

__version__ = "0.1.0"

__all__ = [
    "label_components",
    "spatial_entropy",
    "SpatialEntropyLoss",
    "lambda_schedule",
    "create_model",
    "enable_cls_attention",
    "forward_with_attention",
    "cls_attention",
    "patch_grid",
    "NoSkipBlock",
]
