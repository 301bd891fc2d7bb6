"""The ViTs with a locality bias (sarlib.models.local): what their names say, the [CLS] logits SAR reads
checked against a forward written out by hand, SAR's gradient reaching what makes each one local, the
no-skip block, and a short run through the training engine."""

import pytest
import torch
import torch.nn.functional as F

import sarlib
from sarlib import NoSkipBlock, create_model, forward_with_attention, patch_grid, spatial_entropy
from sarlib.models.vit import _pop_cls_row
from sarlib.train import load_profile, train

VIT_MICRO_PARAMS = 157_130  # vit_micro_patch4 at 28 px, 10 classes (sarlib/models/micro.py)
# name -> parameters at 28 px and 10 classes, as sarlib/models/local.py documents them
PARAMS = {"vit_micro_spt_lsa_patch4": 169_910, "convit_micro_patch4": 156_530, "vit_micro_convstem": 153_274}
NAMES = list(PARAMS)


def _model(name: str, *, no_skip: bool = False, img_size: int = 28, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=10, img_size=img_size, no_skip=no_skip).eval()
    if name == "vit_micro_spt_lsa_patch4":  # move the learned temperatures off head_dim ** -0.5, their start
        with torch.no_grad():
            for block in model.blocks:
                block.attn.scale.uniform_(0.05, 0.6)
    return model


# ---- the forward written out by hand, one per architecture, from the modules' weights

def _heads(attn, x):
    """q, k, v of shape (B, heads, N, head_dim) from a fused qkv projection."""
    b, n, width = x.shape[0], x.shape[1], attn.qkv.out_features // 3
    return attn.qkv(x).reshape(b, n, 3, attn.num_heads, width // attn.num_heads).permute(2, 0, 3, 1, 4)


def _attention(attn, x, lsa: bool):
    """(output, full pre-softmax logits (B, heads, N, N)). LSA: each head's learned temperature and no
    token attending to itself; otherwise 1 / sqrt(head_dim)."""
    q, k, v = _heads(attn, x)
    n = x.shape[1]
    temperature = attn.scale.view(1, -1, 1, 1) if lsa else q.shape[-1] ** -0.5
    logits = (q @ k.transpose(-2, -1)) * temperature
    if lsa:
        logits = logits.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(x.shape)
    return attn.proj(out), logits


def _block(block, x, lsa: bool, no_skip: bool):
    out, logits = _attention(block.attn, block.norm1(x), lsa)
    if no_skip:  # spec section 3: no attention residual, no norm2
        return out + block.mlp(out), logits
    x = x + out
    return x + block.mlp(block.norm2(x)), logits


def _shifted_patch_tokens(model, images):
    """SPT as the official code writes it: crops of the padded image for the four diagonal shifts, then
    patches with channels fastest (here through unfold), LayerNorm, linear."""
    embed = model.patch_embed
    p, s = embed.patch_size[0], embed.patch_size[0] // 2
    pad = F.pad(images, (s, s, s, s))
    shifted = torch.cat([images, pad[:, :, :-2 * s, :-2 * s], pad[:, :, :-2 * s, 2 * s:],
                         pad[:, :, 2 * s:, :-2 * s], pad[:, :, 2 * s:, 2 * s:]], dim=1)
    cols = F.unfold(shifted, p, stride=p)  # (B, 5C * p * p, L), channel-major
    b, _, length = cols.shape
    tokens = cols.reshape(b, -1, p * p, length).permute(0, 3, 2, 1).reshape(b, length, -1)
    norm = embed.patch_norm
    return embed.proj(F.layer_norm(tokens, tokens.shape[-1:], norm.weight, norm.bias, norm.eps))


def _conv_stem_tokens(model, images):
    """The stem as stride-2 conv -> BatchNorm (running statistics) -> ReLU layers, then the 1x1 conv."""
    *layers, last = model.patch_embed.proj
    x = images
    for layer in layers:
        conv, bn = layer.conv, layer.bn
        x = F.conv2d(x, conv.weight, stride=2, padding=1)
        x = F.relu(F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps))
    x = F.conv2d(x, last.conv.weight, last.conv.bias)
    return x.flatten(2).transpose(1, 2)


def _patchify_tokens(model, images):
    proj = model.patch_embed.proj
    return F.conv2d(images, proj.weight, proj.bias, stride=proj.stride).flatten(2).transpose(1, 2)


def _reference(name: str, model, images, no_skip: bool):
    """(class logits, the last block's [CLS]->patch pre-softmax logits (B, heads, P))."""
    lsa = name == "vit_micro_spt_lsa_patch4"
    cls = model.cls_token.expand(images.shape[0], -1, -1)
    if name == "convit_micro_patch4":
        # patches only through the GPSA blocks (timm's); [CLS] joins for the last, plain block
        x = _patchify_tokens(model, images) + model.pos_embed
        for block in model.blocks[:-1]:
            x = block(x)
        x = torch.cat([cls, x], dim=1)
    else:
        tokens = _shifted_patch_tokens(model, images) if lsa else _conv_stem_tokens(model, images)
        x = torch.cat([cls, tokens], dim=1) + model.pos_embed
        for block in model.blocks[:-1]:
            x = _block(block, x, lsa, no_skip=False)[0]
    x, logits = _block(model.blocks[-1], x, lsa, no_skip)
    return model.head(model.norm(x)[:, 0]), logits[:, :, 0, 1:]


@pytest.mark.parametrize("name", NAMES)
def test_each_model_is_what_its_name_and_docstring_say(name):
    model = _model(name)
    params = sum(p.numel() for p in model.parameters())
    assert params == PARAMS[name] and abs(params / VIT_MICRO_PARAMS - 1) <= 0.15, params
    assert patch_grid(model) == (7, 7) and patch_grid(_model(name, img_size=32)) == (8, 8)
    logits, row = forward_with_attention(model, torch.randn(3, 3, 28, 28))
    assert logits.shape == (3, 10) and row.shape == (3, 4, 49)
    assert name in sarlib.models.vit.supported_models()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("no_skip", [False, True])
def test_captured_cls_logits_equal_the_forward_written_out_by_hand(name, no_skip):
    model = _model(name, no_skip=no_skip)
    images = torch.randn(2, 3, 28, 28)
    logits, row = forward_with_attention(model, images)
    with torch.no_grad():
        ref_logits, ref_row = _reference(name, model, images, no_skip)
    torch.testing.assert_close(row, ref_row, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    assert isinstance(model.blocks[-1], NoSkipBlock) == no_skip


def test_lsa_masks_every_token_from_itself_in_the_fused_and_the_explicit_path():
    model = _model("vit_micro_spt_lsa_patch4")
    images = torch.randn(2, 3, 28, 28)
    fused, _ = forward_with_attention(model, images)
    model(images)
    full = _pop_cls_row(model)  # the whole [CLS] row the softmax sees, [CLS] column included
    assert torch.isneginf(full[..., 0]).all() and torch.isfinite(full[..., 1:]).all()
    for block in model.blocks:
        block.attn.fused_attn = False
    explicit, _ = forward_with_attention(model, images)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    maps = sarlib.cls_attention(model, images)  # post-softmax over patches: the masked [CLS] takes no mass
    torch.testing.assert_close(maps.sum(dim=(-1, -2)), torch.ones(2, 4))


# what makes each architecture local; SAR on the last block's [CLS] logits must train it
LOCALITY_PARAMETERS = {
    "vit_micro_spt_lsa_patch4": ["patch_embed.proj.weight", "patch_embed.patch_norm.weight", "blocks.0.attn.scale",
                                 "blocks.2.attn.scale"],
    "convit_micro_patch4": ["blocks.0.attn.gating_param", "blocks.0.attn.pos_proj.weight",
                            "blocks.1.attn.gating_param", "blocks.1.attn.pos_proj.weight", "pos_embed"],
    "vit_micro_convstem": ["patch_embed.proj.0.conv.weight", "patch_embed.proj.0.bn.weight",
                           "patch_embed.proj.1.conv.weight", "patch_embed.proj.2.conv.weight"],
}


@pytest.mark.parametrize("name", NAMES)
def test_sar_gradient_reaches_what_makes_the_model_local(name):
    model = _model(name, no_skip=True)
    _, row = forward_with_attention(model, torch.randn(4, 3, 28, 28))
    loss = spatial_entropy(row, patch_grid(model))
    assert loss > 0
    loss.backward()
    params = dict(model.named_parameters())
    for key in LOCALITY_PARAMETERS[name]:
        grad = params[key].grad
        assert grad is not None and grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", NAMES)
def test_a_short_sar_no_skip_run_trains_through_the_engine(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))
    cfg = load_profile("smoke", model=name, output_dir=str(tmp_path / "run"), epochs=1, max_steps_per_epoch=2,
                       threads=1, no_skip=True, regularizer="sar", lambda_warmup=0, train_eval_images=64,
                       seg_max_images=32)
    metrics = train(cfg)
    assert metrics["complete"] and metrics["reg_term"] is not None and metrics["reg_term"] > 0
    assert metrics["entropy"] is not None and metrics["regions"] is not None


def test_convit_refuses_a_depth_where_cls_never_joins():
    with pytest.raises(ValueError, match="never joins"):
        create_model("convit_micro_patch4", num_classes=10, img_size=28, local_up_to_layer=3)


def test_conv_stem_refuses_a_patch_size_its_strides_do_not_give():
    with pytest.raises(ValueError, match="gives patch_size 4, not 8"):
        create_model("vit_micro_convstem", num_classes=10, img_size=32, patch_size=8)


def test_a_per_head_scale_without_its_own_cls_logits_is_refused():
    # the generic capture multiplies q by a scalar scale; a (heads,) one would silently scale the wrong axis
    model = create_model("vit_micro_patch4", num_classes=10, img_size=28)
    attn = model.blocks[-1].attn
    attn.scale = torch.nn.Parameter(torch.full((attn.num_heads,), attn.head_dim ** -0.5))
    with pytest.raises(TypeError, match="cls_logits"):
        sarlib.enable_cls_attention(model)


@pytest.mark.parametrize("name, params", [("vit_small_spt_lsa_patch16", 22_891_564), ("convit_small_patch16", 27_387_622),
                                          ("vit_small_convstem", 20_655_892)])
def test_the_paper_profiles_local_models_are_deit_s_sized_and_run_sar_at_smoke_size(name, params):
    # full size on the meta device (no memory): within 30% of DeiT-S's 21.7M parameters (100 classes)
    with torch.device("meta"):
        full = sarlib.create_model(name, num_classes=100)
    assert sum(p.numel() for p in full.parameters()) == params and sarlib.patch_grid(full) == (14, 14)
    # the same architecture shallow and on 64 px (a 4x4 grid), with the no-skip block: SAR's gradient flows
    shallow = dict(depth=2, local_up_to_layer=1) if name.startswith("convit") else dict(depth=2)
    model = sarlib.create_model(name, num_classes=10, img_size=64, no_skip=True, **shallow)
    logits, cls = sarlib.forward_with_attention(model, torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 10) and cls.shape[-1] == 16 and torch.isfinite(cls).all()
    sarlib.spatial_entropy(cls, sarlib.patch_grid(model)).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.patch_embed.parameters())
