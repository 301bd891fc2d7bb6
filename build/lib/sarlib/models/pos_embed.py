"""A ViT evaluated at another input size: its position embedding resampled the way the authors' evaluation
does it (DINO's `interpolate_pos_encoding`), for the authors' Jaccard protocol."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .vit import unwrap

__all__ = ["interpolate_pos_embed", "model_at_input_size"]


def interpolate_pos_embed(pos_embed: torch.Tensor, *, old_grid: tuple[int, int], new_grid: tuple[int, int],
                          num_prefix_tokens: int) -> torch.Tensor:
    """Position embedding (1, prefix + h*w, dim) resampled to `new_grid`, as the authors' evaluation does.

    Their model (DINO's `interpolate_pos_encoding`) interpolates bicubically, without antialiasing and
    with align_corners=False, by the scale factor (new + 0.1) / old; that factor, not new / old, places
    the samples. timm's `resample_abs_pos_embed` (antialiased by default, and size-based) gives
    different values, so it is not used here. Prefix tokens ([CLS]) are kept unchanged.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = grid.shape[-1]
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    scale = ((new_grid[0] + 0.1) / old_grid[0], (new_grid[1] + 0.1) / old_grid[1])
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
    if tuple(grid.shape[-2:]) != tuple(new_grid):  # the + 0.1 guards the floor; never expected to fire
        raise RuntimeError(f"position grid resampled to {tuple(grid.shape[-2:])}, expected {tuple(new_grid)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


def model_at_input_size(model: nn.Module, size: tuple[int, int]) -> nn.Module:
    """`model` itself when it already takes `size` inputs, else an eval copy that does (its position
    embedding resampled by `interpolate_pos_embed`); the original model is left untouched."""
    inner = unwrap(model)
    patch = tuple(inner.patch_embed.patch_size)
    if size[0] % patch[0] or size[1] % patch[1]:
        raise ValueError(f"input {tuple(size)} is not divisible by the patch size {patch}; resize the images "
                         f"to a multiple of {patch[0]}")
    new_grid = (size[0] // patch[0], size[1] // patch[1])
    old_grid = tuple(int(g) for g in inner.patch_embed.grid_size)
    if new_grid == old_grid:
        return model
    if getattr(inner, "dynamic_img_size", False) or getattr(inner, "pos_embed", None) is None:
        raise TypeError("protocol 'authors' needs a ViT with a fixed learned position embedding (pos_embed)")
    resized = copy.deepcopy(inner).eval()  # the [CLS] capture hook is rebound to the copy
    prefix = 0 if getattr(resized, "no_embed_class", False) else resized.num_prefix_tokens
    resized.pos_embed = nn.Parameter(
        interpolate_pos_embed(resized.pos_embed.detach(), old_grid=old_grid, new_grid=new_grid,
                              num_prefix_tokens=prefix), requires_grad=False)
    embed = resized.patch_embed
    embed.img_size, embed.grid_size, embed.num_patches = tuple(size), new_grid, new_grid[0] * new_grid[1]
    return resized
