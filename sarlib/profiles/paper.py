# The authors' recipe (DeiT-S from scratch, spec section 4). Dataset and data root come from the
# command line; run with torchrun on 8 GPUs x 128 for the paper's global batch of 1024. Every other
# recipe field (AdamW, lr 5e-4 x batch/512, 5 warm-up epochs from 1e-6, min lr 1e-5, RandAugment,
# random erasing, mixup/cutmix, smoothing, drop-path) is a TrainConfig default; docs/fidelity.md
# compares them with the authors' code field by field.
CONFIG = dict(
    dataset="imagenet100",
    model="deit_small_patch16_224",
    img_size=224,
    epochs=300,
    batch_size=128,
    regularizer="sar",
    no_skip=True,
    augment="deit",
    num_workers=10,
    # Where the authors' settings change the numbers, use theirs:
    amp_dtype="float16",  # their AMP: fp16 autocast + gradient scaler (bf16 stays an option)
    lr_step="after_epoch",  # their loop steps the scheduler after each epoch: epoch e trains at lr(e-1)
    repeated_aug=0,  # on in their script, but the published commands pass --no-repeated-aug
    model_ema=False,  # on in their script, but its weights are never evaluated or reported
)

# The study settings. finetune_overrides: the authors fine-tune with the model in eval mode, which for a ViT
# without dropout or BatchNorm is exactly training without drop-path.
STUDY = dict(
    datasets=["cifar10", "cifar100", "flowers102", "pets", "imagenet100"],
    seeds=[0, 1, 2],
    epochs=None,
    fractions=[0.1, 0.25, 0.5, 1.0],
    budgets=["equal-epochs", "equal-steps"],  # sample efficiency at equal epochs and at equal optimizer steps
    finetune_pretrain="imagenet100",  # each seed's table2 baseline on it is the fine-tuning start
    finetune_dataset="cifar100",
    finetune_epochs=100,
    lambdas=[0.0, 0.01, 0.03, 0.1, 0.3, 1.0],  # lambda0 values of the lambda sweep (spec section 5)
    sweep_seeds=[0, 1, 2],
    # the grid target: DeiT-S's 14x14 beside a ViT-S on 32 px patches (7x7 at 224 px, the cpu profile's grid)
    grid_model="vit_small_patch32_224",
    grid_seeds=[0, 1, 2],
    # the local-bias target at DeiT-S size (sarlib/models/local.py): timm's ConViT-S (its [CLS] joins before
    # the last 2 blocks), SPT + LSA on DeiT-S, DeiT-S with a convolutional stem
    local_models={"spt-lsa": "vit_small_spt_lsa_patch16", "convit": "convit_small_patch16",
                  "conv-stem": "vit_small_convstem"},
    # the robustness target: table2's ImageNet-100 models on the released ImageNet-C and ImageNet-A under the
    # data root (imagenet-c/, imagenet-a/), every image; ImageNet-1k models the same way with DATASETS
    target_datasets={"robustness": ["imagenet100"]},
    jobs=1,
    finetune_overrides={"drop_path": 0.0},
    calibration=[("cifar100", {}), ("flowers102", {})],
)
