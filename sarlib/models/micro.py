"""The small ViTs of the smoke and cpu profiles, registered with timm under names that say what they are.

Each is a plain timm ``VisionTransformer`` with a [CLS] token (so every sarlib path, the no-skip block and
checkpoints work as for DeiT); only the size differs. The name gives the family (width x depth x heads)
and the patch size; the input size comes from ``img_size`` (32 px by default, 28 px for Fashion-MNIST):

| name | width | blocks | heads | patch | grid at 28 / 32 px | params (10 classes, 28 px) |
|---|---|---|---|---|---|---|
| ``vit_micro_patch4`` | 64 | 3 | 4 | 4 | 7x7 / 8x8 | 157,130 |
| ``vit_micro_patch2`` | 64 | 3 | 4 | 2 | 14x14 / 16x16 | 164,234 |
| ``vit_nano_patch4`` | 48 | 2 | 3 | 4 | 7x7 / 8x8 | 61,930 |
| ``vit_nano_patch2`` | 48 | 2 | 3 | 2 | 14x14 / 16x16 | 67,258 |

``vit_micro_patch2`` is the same network on 2 px patches: on 28 px images its grid is the 14x14 of
DeiT-S at 224 px, the grid the paper's loss runs on.
"""

from __future__ import annotations

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

__all__ = ["MICRO_MODELS"]

# name -> the VisionTransformer arguments it fixes (anything else, e.g. img_size, may still be passed)
MICRO_MODELS: dict[str, dict[str, int]] = {
    "vit_micro_patch4": dict(patch_size=4, embed_dim=64, depth=3, num_heads=4),
    "vit_micro_patch2": dict(patch_size=2, embed_dim=64, depth=3, num_heads=4),
    "vit_nano_patch4": dict(patch_size=4, embed_dim=48, depth=2, num_heads=3),
    "vit_nano_patch2": dict(patch_size=2, embed_dim=48, depth=2, num_heads=3),
}


# timm reads a model's pretrained config when it registers it (and warns without one): none of these has
# weights; sarlib's transforms (sarlib.data.transforms) pick the normalization, not this config
default_cfgs = generate_default_cfgs({name: dict(num_classes=10, input_size=(3, 32, 32), mean=(0.485, 0.456, 0.406),
                                                 std=(0.229, 0.224, 0.225), first_conv="patch_embed.proj",
                                                 classifier="head") for name in MICRO_MODELS})


def _create(variant: str, pretrained: bool = False, **kwargs) -> VisionTransformer:
    if pretrained:
        raise ValueError(f"{variant} has no pretrained weights; use pretrained=False or init_checkpoint")
    args = {"img_size": 32, **MICRO_MODELS[variant], **kwargs}
    return build_model_with_cfg(VisionTransformer, variant, pretrained=False,
                                pretrained_filter_fn=checkpoint_filter_fn, **args)


@register_model
def vit_micro_patch4(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Width 64, 3 blocks, 4 heads, 4 px patches: the cpu profile's ViT."""
    return _create("vit_micro_patch4", pretrained, **kwargs)


@register_model
def vit_micro_patch2(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """vit_micro_patch4 on 2 px patches: a 14x14 grid on 28 px images, as DeiT-S at 224 px."""
    return _create("vit_micro_patch2", pretrained, **kwargs)


@register_model
def vit_nano_patch2(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """vit_nano_patch4 on 2 px patches (the smoke profile's second grid)."""
    return _create("vit_nano_patch2", pretrained, **kwargs)


@register_model
def vit_nano_patch4(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Width 48, 2 blocks, 3 heads, 4 px patches: the smoke profile's ViT (proves paths run)."""
    return _create("vit_nano_patch4", pretrained, **kwargs)
