"""timm Vision Transformers with the last block's [CLS] attention as a first-class output.

    model = sarlib.create_model("deit_small_patch16_224", num_classes=100, no_skip=True)
    logits, cls_logits = sarlib.forward_with_attention(model, images)   # cls_logits: (B, heads, P)
    loss = ce(logits, y) + lam * sarlib.spatial_entropy(cls_logits, sarlib.patch_grid(model))

The model stays a plain timm ``VisionTransformer`` (checkpoints, optimizers, EMA and DDP work as
usual). `enable_cls_attention` adds a forward hook to the last block's qkv projection that computes
the [CLS] query's pre-softmax logits against every key: one (1 x N) row per head, O(N), while the
block keeps timm's fused attention. Your own timm ViT gets the same with
``sarlib.enable_cls_attention(model)``.
"""

from __future__ import annotations

import difflib
import types
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from . import local  # registers the small ViTs with a locality bias (SPT + LSA, ConViT, conv stem) with timm
from . import micro  # registers the profiles' small ViTs (vit_micro_*, vit_nano_*) with timm

__all__ = ["check_model_name", 
    "create_model",
    "enable_cls_attention",
    "forward_with_attention",
    "cls_attention",
    "patch_grid",
    "NoSkipBlock",
    "unwrap",
    "supported_models",
]

_TAP = "_sar_cls_row"  # attribute on the last attention module holding the latest [CLS] logits row


class NoSkipBlock(nn.Module):
    """A pre-norm transformer block without the attention residual and without LN2 (spec section 3).

        x = attn(norm1(x));  x = x + drop_path(mlp(x))

    Built from an existing timm ``Block``, reusing its modules under the same names, so weights load
    by key (a checkpoint's ``norm2`` entries are simply unused). A block without layer scale (no
    ``ls1``/``ls2``) or with one drop-path for both branches (``drop_path``, as ConViT's) is the same
    block with identity scales and that drop-path on the MLP branch.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        drop_path = getattr(block, "drop_path2", getattr(block, "drop_path", None))
        missing = [n for n in ("norm1", "attn", "mlp") if not hasattr(block, n)]
        missing += ["drop_path2"] if drop_path is None else []
        if missing:
            raise TypeError(
                "no_skip needs a timm pre-norm Block (norm1, attn, mlp, drop_path2 or drop_path; ls1, ls2 optional); "
                f"{type(block).__name__} lacks {missing}"
            )
        self.norm1 = block.norm1
        self.attn = block.attn
        self.ls1 = getattr(block, "ls1", nn.Identity())
        self.mlp = block.mlp
        self.ls2 = getattr(block, "ls2", nn.Identity())
        self.drop_path2 = drop_path

    def forward(self, x: torch.Tensor, **attn_kwargs: Any) -> torch.Tensor:
        x = self.ls1(self.attn(self.norm1(x), **attn_kwargs))
        return x + self.drop_path2(self.ls2(self.mlp(x)))


def unwrap(model: nn.Module) -> nn.Module:
    """The underlying timm model of a DDP / torch.compile wrapper."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _last_attention(model: nn.Module) -> nn.Module:
    blocks = getattr(model, "blocks", None)
    if blocks is None or len(blocks) == 0:
        raise TypeError(f"{type(model).__name__} has no `blocks`: sarlib supports timm VisionTransformer models")
    attn = getattr(blocks[-1], "attn", None)
    if attn is None or not all(hasattr(attn, n) for n in ("qkv", "num_heads", "scale")) \
            or not isinstance(attn.qkv, nn.Linear):
        raise TypeError(
            "the last block's attention must be a timm `Attention` with a fused qkv projection "
            f"(found {type(attn).__name__}); models with RoPE or split q/k/v are not supported"
        )
    if not callable(getattr(attn, "cls_logits", None)) and torch.is_tensor(attn.scale) and attn.scale.numel() > 1:
        # q * scale would spread a per-head scale over the head dimension: only the module knows its logits
        raise TypeError(f"{type(attn).__name__} has a per-head scale; it must define cls_logits(qkv_out) -> "
                        "(B, heads, N), the [CLS] row of the logits its softmax sees")
    return attn


def _norm_if_any(attn: nn.Module, norm: str, x: torch.Tensor) -> torch.Tensor:
    """attn.q_norm / attn.k_norm when the module has it (timm's Attention); identity otherwise (ConViT's MHSA)."""
    module = getattr(attn, norm, None)
    return x if module is None else module(x)


def _cls_logits(attn: nn.Module, qkv_out: torch.Tensor) -> torch.Tensor:
    """The [CLS] query's pre-softmax logits against every key, (B, heads, N), from the qkv projection's output.

    An attention whose softmax sees more than q . k * scale (a learned temperature per head, a mask)
    says so by defining ``cls_logits(qkv_out)``, used in preference.
    """
    own = getattr(attn, "cls_logits", None)
    if callable(own):
        return own(qkv_out)
    batch, tokens, width = qkv_out.shape
    head_dim = getattr(attn, "head_dim", width // (3 * attn.num_heads))
    qkv = qkv_out.reshape(batch, tokens, 3, attn.num_heads, head_dim)
    q = _norm_if_any(attn, "q_norm", qkv[:, :1, 0].transpose(1, 2))  # (B, heads, 1, hd): the [CLS] query only
    k = _norm_if_any(attn, "k_norm", qkv[:, :, 1].transpose(1, 2))  # (B, heads, N, hd)
    return ((q * attn.scale) @ k.transpose(-2, -1)).squeeze(2)


def _capture_cls_row(attn: nn.Module, _qkv: nn.Module, _args: tuple, qkv_out: torch.Tensor) -> None:
    """Forward hook on attn.qkv (bound to `attn`, so deep copies such as EMA rebind to their own copy)."""
    setattr(attn, _TAP, _cls_logits(attn, qkv_out))


def enable_cls_attention(model: nn.Module) -> nn.Module:
    """Make a timm ViT record its last block's [CLS] attention logits on every forward (idempotent)."""
    model = unwrap(model)
    if getattr(model, "cls_token", None) is None:
        raise TypeError(
            f"{type(model).__name__} has no [CLS] token (class_token=False, as in *_gap_* models); SAR regularizes "
            "the [CLS] attention: pick a model with one, e.g. vit_small_patch16_224 or vit_small_patch14_reg4_dinov2"
        )
    attn = _last_attention(model)
    if not getattr(attn, "_sar_hooked", False):
        attn.qkv.register_forward_hook(types.MethodType(_capture_cls_row, attn))
        attn._sar_hooked = True
    setattr(attn, _TAP, None)
    return model


def patch_grid(model: nn.Module) -> tuple[int, int]:
    """(h, w) patch grid of the model's patch embedding."""
    grid = unwrap(model).patch_embed.grid_size
    return int(grid[0]), int(grid[1])


def _pop_cls_row(model: nn.Module) -> torch.Tensor:
    attn = _last_attention(unwrap(model))
    row = getattr(attn, _TAP, None)
    if row is None:
        raise RuntimeError("no [CLS] attention was recorded: call sarlib.enable_cls_attention(model) before forward")
    setattr(attn, _TAP, None)  # do not keep the autograd graph alive past this step
    return row


def forward_with_attention(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass -> (class logits, pre-softmax [CLS]->patch logits (B, heads, P)).

    `model` may be wrapped in DDP or torch.compile; prefix tokens ([CLS], distillation, registers) are
    excluded, so P = h * w of `patch_grid(model)`. Gradients flow into the last block's qkv weights.
    """
    logits = model(images)
    row = _pop_cls_row(model)
    return logits, row[..., unwrap(model).num_prefix_tokens :]


@torch.no_grad()
def cls_attention(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Post-softmax [CLS] attention of the last block over the patches, (B, heads, h, w).

    The softmax runs over all keys (prefix tokens included) before the prefix columns are dropped, as in
    DINO's attention maps; rows therefore sum to slightly less than 1.
    """
    model(images)
    inner = unwrap(model)
    probs = _pop_cls_row(model).float().softmax(dim=-1)[..., inner.num_prefix_tokens :]
    return probs.reshape(*probs.shape[:2], *patch_grid(inner))


# timm modules whose models end in a fused-qkv attention with a [CLS] query: VisionTransformer (sub)classes,
# and sarlib.models.local (whose ConViT ends in such a block once its [CLS] token has joined)
SUPPORTED_MODULES = ("vision_transformer", "deit", "vision_transformer_hybrid", "micro", "local")
# families refused before anything is built, with the reason
_UNSUPPORTED = {
    "eva": "EVA / EVA-02 attention applies rotary position embeddings (RoPE) to q and k, which the [CLS] "
           "logit capture does not reproduce",
}


def supported_models() -> list[str]:
    """timm model names create_model accepts (models without a [CLS] token are refused when built)."""
    return timm.list_models(module=list(SUPPORTED_MODULES))


def check_model_name(name: str) -> None:
    """Refuse unknown and unsupported names before building anything, suggesting close supported ones."""
    arch = timm.models.get_arch_name(name)
    close = difflib.get_close_matches(arch, supported_models(), n=4, cutoff=0.6)
    hint = f"close supported names: {', '.join(close)}" if close else "e.g. deit_small_patch16_224 or vit_small_patch16_224"
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r}; {hint}")
    for module, reason in _UNSUPPORTED.items():
        if timm.models.is_model_in_modules(arch, [module]):
            raise ValueError(f"{name} is not supported: {reason}; use a timm VisionTransformer ({hint})")
    if not timm.models.is_model_in_modules(arch, list(SUPPORTED_MODULES)):
        raise ValueError(f"{name} is not a timm VisionTransformer (sarlib reads the [CLS] attention of "
                         f"vit_*/deit_* models); {hint}")


def _local_weights(name: str) -> str:
    """Path of the pretrained weights of `name` in the local caches; ValueError at once if they are absent.

    Loading from the resolved file means timm never contacts the hub, so an offline machine fails in
    milliseconds instead of retrying the download.
    """
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.file or cfg.hf_hub_id or cfg.url):
        raise ValueError(f"timm has no pretrained weights for {name}; use pretrained=False")
    if cfg.file:
        return cfg.file
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache  # optional: huggingface_hub, only for pretrained=True

        repo = cfg.hf_hub_id.split("@")[0]
        for filename in [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]:
            hit = try_to_load_from_cache(repo, filename)
            if isinstance(hit, str):
                return hit
    if cfg.url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
        if cached.is_file():
            return str(cached)
    where = f"hf-hub:{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url
    raise ValueError(
        f"pretrained weights of {name} ({where}) are not in the local cache and are never downloaded here; "
        f"fetch them once where there is network (python -c \"import timm; timm.create_model('{name}', "
        "pretrained=True)\"), or use pretrained=False"
    )


def create_model(
    name: str,
    *,
    num_classes: int,
    img_size: int | None = None,
    no_skip: bool = False,
    pretrained: bool = False,
    **timm_kwargs: Any,
) -> nn.Module:
    """A timm ViT/DeiT by name, with [CLS]-attention capture enabled.

    Args:
        name: a timm VisionTransformer with a [CLS] token (``deit_tiny_patch16_224``,
            ``vit_small_patch16_224``, ``deit_small_distilled_patch16_224``, register-token models such as
            ``vit_small_patch14_reg4_dinov2``); see :func:`supported_models`. Models without a [CLS]
            token (``*_gap_*``, ``class_token=False``) and EVA / EVA-02 (rotary embeddings) are refused.
        num_classes: classifier outputs.
        img_size: input resolution (default: the model's); must be divisible by the patch size.
        no_skip: replace the last block by :class:`NoSkipBlock` (the authors' ``--use-nosn``).
        pretrained: load timm's weights from the local cache (Hugging Face or torch hub); nothing is
            downloaded, and weights missing from the cache raise ValueError at once.
        **timm_kwargs: passed to ``timm.create_model`` (``drop_path_rate``, ``embed_dim``, ``depth``...).
    """
    check_model_name(name)
    if img_size is not None:
        timm_kwargs["img_size"] = img_size
    if pretrained:
        overlay = dict(timm_kwargs.pop("pretrained_cfg_overlay", None) or {})
        overlay.setdefault("file", _local_weights(name))
        timm_kwargs["pretrained_cfg_overlay"] = overlay
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **timm_kwargs)
    except AssertionError as err:  # timm checks shapes with asserts, e.g. embed_dim divisible by num_heads
        raise ValueError(f"{name} cannot be built with {timm_kwargs}: {err}; fix --model-kwargs") from None
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is None:
        raise TypeError(f"{name} is not a patch-based VisionTransformer")
    size = getattr(model.patch_embed, "img_size", None)
    if size is not None and (size[0] % patch[0] or size[1] % patch[1]):
        raise ValueError(
            f"image size {tuple(size)} is not divisible by the patch size {tuple(patch)}: "
            f"use a multiple such as {size[0] // patch[0] * patch[0]}"
        )
    if no_skip:
        model.blocks[-1] = NoSkipBlock(model.blocks[-1])
    return enable_cls_attention(model)
