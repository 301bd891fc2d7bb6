# The default profile: the embedded synthetic set and a tiny ViT sized so that the table2 grid fits in
# 15 minutes on a 2-core CPU. 32x32 images with 4x4 patches give an 8x8 attention grid.
PRESET = dict(
    dataset="synthetic-5k",
    model="deit_tiny_patch16_224",
    model_kwargs=dict(patch_size=4, embed_dim=96, depth=4, num_heads=3),
    img_size=32,
    epochs=30,
    batch_size=128,
    lr=2e-3,
    warmup_epochs=3,
    min_lr=1e-5,
    drop_path=0.05,
    # DeiT's RandAugment, mixup and cutmix are tuned for 300 ImageNet epochs; on 30 epochs of tiny
    # images they mostly slow learning, so this profile uses random translation and label smoothing.
    augment="shift",
    mixup=0.0,
    cutmix=0.0,
    smoothing=0.1,
    reg_warmup=5,
    num_workers=0,
    threads=2,
    device="cpu",
)
