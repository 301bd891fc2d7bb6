# The authors' recipe (DeiT-S from scratch, SPEC section 4). Dataset and data root come from the
# command line; run with torchrun on 8 GPUs x 128 for the paper's global batch of 1024.
PRESET = dict(
    dataset="imagenet100",
    model="deit_small_patch16_224",
    img_size=224,
    epochs=300,
    batch_size=128,
    regularizer="sar",
    no_skip=True,
    augment="deit",
    num_workers=10,
)
