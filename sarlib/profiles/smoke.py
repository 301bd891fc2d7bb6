# Seconds, for CI: proves every path runs (data, SAR, eval, segmentation, checkpoint), measures nothing.
PRESET = dict(
    dataset="synthetic-colour-tiny",
    model="deit_tiny_patch16_224",
    model_kwargs=dict(patch_size=4, embed_dim=48, depth=2, num_heads=3),
    img_size=32,
    epochs=2,
    batch_size=32,
    lr=1e-3,
    warmup_epochs=1,
    augment="shift",
    mixup=0.0,
    cutmix=0.0,
    reg_warmup=1,
    regularizer="sar",
    num_workers=0,
    threads=2,
    device="cpu",
)
