"""ViTs with a locality bias, at the size of the cpu profile's ViT, registered with timm like the micro models.

Each keeps a [CLS] token that attends to the patches in the last block, so SAR, the mechanism metrics and
the no-skip block apply to it as to ``vit_micro_patch4`` (width 64, 3 blocks, 4 heads, 4 px patches,
157,130 parameters at 28 px and 10 classes); only the way locality enters differs:

| name | locality from | width | blocks | heads | grid at 28 / 32 px | params (10 classes, 28 px) | multiply-adds at 28 px |
|---|---|---|---|---|---|---|---|
| ``vit_micro_spt_lsa_patch4`` | shifted patch tokens, locality self-attention (Lee et al. 2021) | 64 | 3 | 4 | 7x7 / 8x8 | 169,910 | 9.09 M |
| ``convit_micro_patch4`` | gated positional self-attention in blocks 1-2 (d'Ascoli et al. 2021) | 64 | 3 | 4 | 7x7 / 8x8 | 156,530 | 8.42 M |
| ``vit_micro_convstem`` | a convolutional stem (Xiao et al. 2021) | 64 | 2 | 4 | 7x7 / 8x8 | 153,274 | 8.15 M |

``vit_micro_patch4`` has 8.49 M multiply-adds (convolutions, linear layers and attention products). The
conv stem replaces the 4 px patchify layer and one transformer block, as Xiao et al. do to keep the
compute: 2.59 M multiply-adds for the stem against 0.15 M for the patchify layer and 2.78 M for a block.
docs/fidelity.md says where each follows its paper's code.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Attention, PatchEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.convit import ConVit
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from timm.models.vision_transformer_hybrid import ConvStem
from torch import nn

__all__ = ["LOCAL_MODELS", "LocalitySelfAttention", "ShiftedPatchEmbed", "ConvStemEmbed", "MicroConVit",
           "shifted_copies"]


def shifted_copies(images: torch.Tensor, shift: int) -> torch.Tensor:
    """`images` and its four diagonal translations by `shift` pixels (zero-filled), stacked on the channel
    axis: (B, 5C, H, W). The order (unshifted, then the up-left, up-right, down-left and down-right source
    windows) is the official SPT code's, so an input channel means the same in both."""
    padded = F.pad(images, (shift, shift, shift, shift))
    h, w = images.shape[-2:]
    offsets = ((0, 0), (0, 2 * shift), (2 * shift, 0), (2 * shift, 2 * shift))
    return torch.cat([images, *(padded[..., dy:dy + h, dx:dx + w] for dy, dx in offsets)], dim=1)


def patchify(images: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p*p*C), patches in raster order, channels fastest within a patch."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch[0], patch[0], w // patch[1], patch[1])
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch[0]) * (w // patch[1]), patch[0] * patch[1] * c)


class ShiftedPatchEmbed(PatchEmbed):
    """Shifted patch tokenization (SPT): the image and four half-patch diagonal shifts of it, cut into
    patches, then LayerNorm and a linear embedding. Each token thus sees its neighbours' border pixels.

    timm's PatchEmbed supplies the grid bookkeeping the rest of sarlib reads (``grid_size``,
    ``num_patches``, ``patch_size``, ``img_size``); its convolution is replaced.
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, output_fmt: Optional[str] = None, device=None, dtype=None,
                 **kwargs: Any) -> None:
        if output_fmt is not None or kwargs.get("dynamic_img_pad"):  # NHWC tokens: timm's dynamic_img_size
            raise ValueError("shifted patch tokenization takes fixed-size inputs (dynamic_img_size and "
                             "dynamic_img_pad off)")
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                         device=device, dtype=dtype, **kwargs)
        dd = {"device": device, "dtype": dtype}
        patch_dim = 5 * in_chans * self.patch_size[0] * self.patch_size[1]
        self.shift = self.patch_size[0] // 2  # half a patch, as the official code
        self.patch_norm = nn.LayerNorm(patch_dim, **dd)
        self.proj = nn.Linear(patch_dim, embed_dim, **dd)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.strict_img_size and tuple(images.shape[-2:]) != tuple(self.img_size):
            raise ValueError(f"input {tuple(images.shape[-2:])} does not match the model's {tuple(self.img_size)}")
        tokens = patchify(shifted_copies(images, self.shift), self.patch_size)
        return self.norm(self.proj(self.patch_norm(tokens)))


class LocalitySelfAttention(Attention):
    """Locality self-attention (LSA): timm's Attention with a learned temperature per head (starting at
    head_dim ** -0.5, as the official code) and the diagonal masked, so no token attends to itself.

    ``scale`` is that temperature, a (heads,) parameter; ``cls_logits`` gives sarlib the [CLS] row of
    the logits this softmax sees, which the generic q . k * scale capture cannot.
    """

    def __init__(self, dim: int, num_heads: int = 8, **kwargs: Any) -> None:
        super().__init__(dim, num_heads=num_heads, **kwargs)
        device, dtype = self.qkv.weight.device, self.qkv.weight.dtype
        self.scale = nn.Parameter(torch.full((num_heads,), self.head_dim ** -0.5, device=device, dtype=dtype))

    def _temperature(self) -> torch.Tensor:
        return self.scale.view(1, -1, 1, 1)  # broadcasts over (B, heads, tokens, head_dim)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("LocalitySelfAttention masks the diagonal itself and takes no other mask")
        b, n, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q = self.q_norm(q) * self._temperature()
        k = self.k_norm(k)
        others = ~torch.eye(n, dtype=torch.bool, device=x.device)  # True where attending is allowed
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=others, scale=1.0,
                                               dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = (q @ k.transpose(-2, -1)).masked_fill(~others, float("-inf")).softmax(dim=-1)
            x = self.attn_drop(attn) @ v
        x = self.norm(x.transpose(1, 2).reshape(b, n, self.attn_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))

    def cls_logits(self, qkv_out: torch.Tensor) -> torch.Tensor:
        """The [CLS] query's logits against every key (B, heads, N) from the qkv projection's output, as
        the softmax sees them: -inf against [CLS] itself (SAR drops that column with the prefix tokens)."""
        b, n, _ = qkv_out.shape
        qkv = qkv_out.reshape(b, n, 3, self.num_heads, self.head_dim)
        q = self.q_norm(qkv[:, :1, 0].transpose(1, 2)) * self._temperature()  # (B, heads, 1, hd)
        k = self.k_norm(qkv[:, :, 1].transpose(1, 2))  # (B, heads, N, hd)
        row = (q @ k.transpose(-2, -1)).squeeze(2)
        return row.masked_fill(torch.arange(n, device=row.device) == 0, float("-inf"))


class ConvStemEmbed(PatchEmbed):
    """Xiao et al.'s convolutional stem in place of the patchify layer: stride-2 3x3 conv-BN-ReLU layers,
    one per halving of the patch size, then a 1x1 convolution to the width (timm's ConvStem).

    ``patch_size`` is the stem's total stride, so ``grid_size`` is that of a patchify layer of that size.
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 4, in_chans: int = 3,
                 embed_dim: int = 768, stem_chs: Sequence[int] = (48, 96), device=None, dtype=None,
                 **kwargs: Any) -> None:
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                         device=device, dtype=dtype, **kwargs)
        if self.patch_size != (2 ** len(stem_chs),) * 2:
            raise ValueError(f"a stem of {len(stem_chs)} stride-2 convolutions (stem_chs={list(stem_chs)}) gives "
                             f"patch_size {2 ** len(stem_chs)}, not {self.patch_size[0]}; pass one stem width per "
                             "halving")
        convs = len(stem_chs)
        self.proj = ConvStem(in_chans, depth=convs + 1, channels=(*stem_chs, embed_dim),
                             kernel_size=(3,) * convs + (1,), stride=(2,) * convs + (1,), device=device, dtype=dtype)


class MicroConVit(ConVit):
    """timm's ConVit, refusing a depth where the [CLS] token would never join (the head would then read
    a patch token), and saying that its position embedding covers the patches only (``no_embed_class``,
    read where sarlib resamples a position embedding)."""

    no_embed_class = True

    def __init__(self, *, depth: int = 3, local_up_to_layer: int = 2, **kwargs: Any) -> None:
        if local_up_to_layer >= depth:
            raise ValueError(f"ConViT inserts the [CLS] token after its first local_up_to_layer={local_up_to_layer} "
                             f"(GPSA) blocks; with depth={depth} it never joins and the head reads a patch token: "
                             f"use local_up_to_layer <= {depth - 1}")
        super().__init__(depth=depth, local_up_to_layer=local_up_to_layer, **kwargs)


# name -> the arguments it fixes (anything else, e.g. img_size, may still be passed)
LOCAL_MODELS: dict[str, dict[str, Any]] = {
    "vit_micro_spt_lsa_patch4": dict(patch_size=4, embed_dim=64, depth=3, num_heads=4),
    # timm's ConViT multiplies embed_dim by num_heads: 16 per head x 4 heads = width 64; a square number of
    # heads, as GPSA's local initialization places one head per offset of a sqrt(heads) x sqrt(heads) kernel
    "convit_micro_patch4": dict(patch_size=4, embed_dim=16, depth=3, num_heads=4, local_up_to_layer=2),
    "vit_micro_convstem": dict(patch_size=4, embed_dim=64, depth=2, num_heads=4, stem_chs=(48, 96)),
    # the paper profile's local-bias arms at DeiT-S size (224 px, 16 px patches, 14x14 grid): timm's
    # convit_small (48 per head x 9 heads = width 432, 12 blocks, [CLS] joins for the last 2) with
    # MicroConVit's checks; SPT + LSA on DeiT-S (width 384, 12 blocks, 6 heads); DeiT-S with a 4-conv
    # stem (stride 16) for patchify and 11 blocks, the stem's widths doubling up to the model's
    "convit_small_patch16": dict(img_size=224, patch_size=16, embed_dim=48, depth=12, num_heads=9,
                                 local_up_to_layer=10, locality_strength=1.0),
    "vit_small_spt_lsa_patch16": dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_small_convstem": dict(img_size=224, patch_size=16, embed_dim=384, depth=11, num_heads=6,
                               stem_chs=(48, 96, 192, 384)),
}

_FIRST_CONV = {"vit_micro_spt_lsa_patch4": "patch_embed.proj", "convit_micro_patch4": "patch_embed.proj",
               "vit_micro_convstem": "patch_embed.proj.0.conv", "convit_small_patch16": "patch_embed.proj",
               "vit_small_spt_lsa_patch16": "patch_embed.proj", "vit_small_convstem": "patch_embed.proj.0.conv"}

# no weights: timm only wants a config per name (sarlib's transforms pick the normalization)
default_cfgs = generate_default_cfgs({name: dict(num_classes=10, input_size=(3, 32, 32), mean=(0.485, 0.456, 0.406),
                                                 std=(0.229, 0.224, 0.225), first_conv=_FIRST_CONV[name],
                                                 classifier="head") for name in LOCAL_MODELS})


def _args(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    if pretrained:
        raise ValueError(f"{variant} has no pretrained weights; use pretrained=False or init_checkpoint")
    return {"img_size": 32, **LOCAL_MODELS[variant], **kwargs}


def _spt_lsa(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> VisionTransformer:
    return build_model_with_cfg(VisionTransformer, variant, pretrained=False, pretrained_filter_fn=checkpoint_filter_fn,
                                embed_layer=ShiftedPatchEmbed, attn_layer=LocalitySelfAttention,
                                **_args(variant, pretrained, kwargs))


def _convit(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> MicroConVit:
    return build_model_with_cfg(MicroConVit, variant, pretrained=False, **_args(variant, pretrained, kwargs))


def _convstem(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> VisionTransformer:
    args = _args(variant, pretrained, kwargs)
    embed = partial(ConvStemEmbed, stem_chs=tuple(args.pop("stem_chs")))
    return build_model_with_cfg(VisionTransformer, variant, pretrained=False, pretrained_filter_fn=checkpoint_filter_fn,
                                embed_layer=embed, **args)


@register_model
def vit_micro_spt_lsa_patch4(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """vit_micro_patch4 with shifted patch tokens and locality self-attention in every block."""
    return _spt_lsa("vit_micro_spt_lsa_patch4", pretrained, kwargs)


@register_model
def convit_micro_patch4(pretrained: bool = False, **kwargs) -> MicroConVit:
    """ConViT of width 64 (16 per head x 4 heads): 2 GPSA blocks, then [CLS] joins for one plain block."""
    return _convit("convit_micro_patch4", pretrained, kwargs)


@register_model
def convit_small_patch16(pretrained: bool = False, **kwargs) -> MicroConVit:
    """timm's ConViT-S (width 432, 12 blocks, 9 heads, GPSA in the first 10) at 224 px, from random weights."""
    return _convit("convit_small_patch16", pretrained, kwargs)


@register_model
def vit_small_spt_lsa_patch16(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """DeiT-S (width 384, 12 blocks, 6 heads, 16 px patches) with shifted patch tokens and locality
    self-attention in every block."""
    return _spt_lsa("vit_small_spt_lsa_patch16", pretrained, kwargs)


@register_model
def vit_small_convstem(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """DeiT-S with a 4-conv stem (48, 96, 192, 384 channels, stride 16) for patchify and 11 blocks."""
    return _convstem("vit_small_convstem", pretrained, kwargs)


@register_model
def vit_micro_convstem(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """vit_micro_patch4 with a 2-conv stem (48, 96 channels) for patchify and 2 blocks instead of 3."""
    return _convstem("vit_micro_convstem", pretrained, kwargs)
