# Seconds, for CI: proves every path runs (data, SAR, eval, segmentation, checkpoint), measures nothing.
CONFIG = dict(
    dataset="synthetic-colour-tiny",
    model="vit_nano_patch4",  # width 48, 2 blocks, 3 heads, 4 px patches (sarlib.models.micro)
    img_size=32,
    epochs=2,
    batch_size=32,
    lr=1e-3,
    warmup_epochs=1,
    augment="shift",
    mixup=0.0,
    cutmix=0.0,
    lambda_warmup=1,
    regularizer="sar",
    num_workers=0,
    threads=2,
    device="cpu",
)

# The study settings: datasets, paired seeds, sample-efficiency fractions, the finetune task, the lambda
# sweep's values and seeds, runs at a time (jobs) and the calibration candidates (dataset, overrides).
STUDY = dict(
    datasets=["synthetic-colour-tiny"],
    seeds=[0, 1],
    epochs=None,
    fractions=[0.5, 1.0],
    budgets=["equal-epochs", "equal-steps"],  # sample efficiency under both (sarlib.study.targets.sample_efficiency)
    finetune_dataset="synthetic-tiny",
    finetune_epochs=1,
    lambdas=[0.0, 0.01, 1.0],
    sweep_seeds=[0],
    grid_model="vit_nano_patch2",  # a 16x16 grid on 32 px beside vit_nano_patch4's 8x8
    grid_seeds=[0, 1],
    local_models={"spt-lsa": "vit_micro_spt_lsa_patch4"},  # the local-bias target's path, one architecture
    robustness_per_class=4,  # 40 of the 100 test images, clean and corrupted
    jobs=1,
    calibration=[("synthetic-tiny", {}), ("synthetic-colour-tiny", {})],
)
