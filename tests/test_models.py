import copy

import pytest
import torch

import sarlib
from sarlib import NoSkipBlock, cls_attention, create_model, forward_with_attention, patch_grid, spatial_entropy

# name -> kwargs; small inputs keep the CPU tests fast while covering [CLS]-only, distillation and
# register prefix tokens, non-square grids and qk-norm.
MODELS = {
    "deit_tiny_patch16_224": dict(img_size=64),
    "deit_tiny_distilled_patch16_224": dict(img_size=64),
    "vit_small_patch14_reg4_dinov2": dict(img_size=56),
    "vit_tiny_patch16_224": dict(img_size=(48, 80)),
    "vit_small_patch16_224": dict(img_size=64, qk_norm=True, depth=2),
    # the profiles' own (sarlib.models.micro), at the sizes they run: Fashion-MNIST's 28 px, the embedded 32
    "vit_micro_patch4": dict(img_size=28),
    "vit_micro_patch2": dict(img_size=28),
    "vit_nano_patch4": dict(img_size=32),
    "vit_nano_patch2": dict(img_size=32),
}


def _explicit_cls_row(model, images):
    """The last block's pre-softmax [CLS] row computed the long way, from its input, with the full N x N matrix."""
    attn = model.blocks[-1].attn
    seen = {}
    handle = attn.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    model(images)
    handle.remove()
    x = seen["x"]
    b, n, _ = x.shape
    q, k, _ = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(q), attn.k_norm(k)
    full = (q @ k.transpose(-2, -1)) * attn.scale  # (B, heads, N, N)
    return full[:, :, 0, model.num_prefix_tokens :]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("no_skip", [False, True])
def test_capture_equals_explicit_attention_row(name, no_skip):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, no_skip=no_skip, **MODELS[name]).eval()
    h, w = patch_grid(model)
    images = torch.randn(2, 3, h * model.patch_embed.patch_size[0], w * model.patch_embed.patch_size[1])
    logits, row = forward_with_attention(model, images)
    assert logits.shape == (2, 7)
    assert row.shape == (2, model.blocks[-1].attn.num_heads, h * w)
    # the capture must not switch timm's fused attention off; only the reference below is unfused
    assert all(blk.attn.fused_attn for blk in model.blocks)
    torch.testing.assert_close(row, _explicit_cls_row(model, images), rtol=1e-5, atol=1e-5)


def test_deit_tiny_default_gives_196_patches_and_gradient_reaches_qkv():
    model = create_model("deit_tiny_patch16_224", num_classes=10)
    logits, row = forward_with_attention(model, torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 10) and row.shape == (2, 3, 196) and patch_grid(model) == (14, 14)
    spatial_entropy(row, patch_grid(model)).backward()
    grad = model.blocks[-1].attn.qkv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_non_square_grid_feeds_the_loss():
    model = create_model("deit_tiny_patch16_224", num_classes=3, img_size=(192, 320))
    _, row = forward_with_attention(model, torch.randn(1, 3, 192, 320))
    assert patch_grid(model) == (12, 20)
    assert torch.isfinite(spatial_entropy(row, patch_grid(model)))


def test_no_skip_changes_only_the_last_block():
    torch.manual_seed(0)
    base = create_model("deit_tiny_patch16_224", num_classes=5, img_size=64, depth=3).eval()
    ns = create_model("deit_tiny_patch16_224", num_classes=5, img_size=64, depth=3, no_skip=True).eval()
    missing, unexpected = ns.load_state_dict(base.state_dict(), strict=False)
    assert missing == [] and set(unexpected) == {"blocks.2.norm2.weight", "blocks.2.norm2.bias"}
    assert isinstance(ns.blocks[-1], NoSkipBlock)
    assert not any(isinstance(b, NoSkipBlock) for b in ns.blocks[:-1])
    x = torch.randn(2, 3, 64, 64)
    feats = base.patch_embed(x)
    feats = base._pos_embed(feats)
    for blk in base.blocks[:-1]:
        feats = blk(feats)
    last = base.blocks[-1]
    expected = last.attn(last.norm1(feats))
    expected = expected + last.mlp(expected)  # no attention residual, no norm2
    expected = base.forward_head(base.norm(expected))
    torch.testing.assert_close(ns(x), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ns(x), base(x))


def test_deepcopy_for_ema_records_into_its_own_copy():
    model = create_model("deit_tiny_patch16_224", num_classes=4, img_size=32)
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.5)
    x = torch.randn(1, 3, 32, 32)
    _, row_ema = forward_with_attention(ema, x)
    _, row = forward_with_attention(model, x)
    assert not torch.allclose(row, row_ema)
    # the recorded row was consumed: asking again without a forward is an error, not a stale tensor
    with pytest.raises(RuntimeError, match="enable_cls_attention"):
        sarlib.models.vit._pop_cls_row(model)


def test_post_softmax_attention_maps():
    model = create_model("deit_tiny_patch16_224", num_classes=4, img_size=64).eval()
    maps = cls_attention(model, torch.randn(3, 3, 64, 64))
    assert maps.shape == (3, 3, 4, 4)
    assert ((maps > 0) & (maps < 1)).all() and (maps.sum(dim=(-1, -2)) < 1).all()


def test_user_timm_model_can_opt_in():
    import timm

    model = timm.create_model("deit_tiny_patch16_224", num_classes=2, img_size=32)
    sarlib.enable_cls_attention(model)
    sarlib.enable_cls_attention(model)  # idempotent: one hook
    assert len(model.blocks[-1].attn.qkv._forward_hooks) == 1
    assert forward_with_attention(model, torch.randn(1, 3, 32, 32))[1].shape == (1, 3, 4)


def test_bad_models_have_clear_errors():
    with pytest.raises(ValueError, match="unknown timm model"):
        create_model("deit_tinny_patch16_224", num_classes=2)
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        create_model("deit_tiny_patch16_224", num_classes=2, img_size=225)
    with pytest.raises(TypeError, match=r"\[CLS\]"):
        create_model("vit_base_patch16_reg4_gap_256", num_classes=2, img_size=64, depth=1)


@pytest.mark.parametrize("name, grid, params", [("vit_micro_patch4", (7, 7), 157_130),
                                                ("vit_micro_patch2", (14, 14), 164_234),
                                                ("vit_nano_patch4", (7, 7), 61_930),
                                                ("vit_nano_patch2", (14, 14), 67_258)])
def test_the_profiles_models_are_what_their_names_say(name, grid, params):
    # sarlib/models/micro.py documents these sizes; the name says the patch, the family the width and depth
    model = create_model(name, num_classes=10, img_size=28)
    assert patch_grid(model) == grid and sum(p.numel() for p in model.parameters()) == params
    assert model.patch_embed.patch_size[0] == int(name.split("patch")[1])
