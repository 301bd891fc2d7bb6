# The default profile: the embedded synthetic set and a tiny ViT sized so that the table2 grid
# (2 arms x 3 seeds) fits in 15 minutes on a 2-core CPU. 32x32 images with 4x4 patches give an 8x8
# attention grid. Width and depth were chosen by accuracy after 15 epochs: on 5k images a narrower,
# shallower ViT with small batches (more optimizer steps) learns faster than a DeiT-Ti-like one.
PRESET = dict(
    dataset="synthetic-5k",
    model="deit_tiny_patch16_224",
    model_kwargs=dict(patch_size=4, embed_dim=64, depth=3, num_heads=4),
    img_size=32,
    epochs=15,
    batch_size=64,
    lr=8e-3,  # DeiT's scaling rule gives 8e-3 * 64 / 512 = 1e-3
    warmup_epochs=1,
    min_lr=1e-5,
    drop_path=0.0,
    # DeiT's RandAugment, mixup and cutmix are tuned for 300 ImageNet epochs; on 15 epochs of tiny
    # images they mostly slow learning, so this profile uses random translation and label smoothing.
    augment="shift",
    mixup=0.0,
    cutmix=0.0,
    smoothing=0.1,
    reg_warmup=3,
    num_workers=0,
    threads=2,
    device="cpu",
)
