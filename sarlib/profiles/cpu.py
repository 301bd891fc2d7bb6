# The default profile: Fashion-MNIST (real garments, DATASET_CONFIG below) and the embedded colour-labelled
# set, a tiny ViT and a CNN of its size. The embedded set's recipe, calibrated by the BASELINE alone
# (notebooks/calibration.ipynb, `make reproduce-calibration`): among the candidates, the one where the
# baseline fits its training set (train top-1 >= 90%) and still reaches >= 60% test, with the widest
# train/test gap, i.e. the small-data regime the paper's claim is about. On the shape-labelled sets the
# same ViT stays near 30% within this budget. 32x32 images with 4x4 patches give an 8x8 attention grid.
CONFIG = dict(
    dataset="synthetic-colour-1k",
    model="vit_micro_patch4",  # width 64, 3 blocks, 4 heads, 4 px patches (sarlib.models.micro)
    img_size=32,
    # 40 epochs: the shortest budget at which the baseline still fits its training slice with a margin
    # (`python -m sarlib.train --profile cpu --epochs 30` stops near 87% train top-1, 40 reaches about 92%),
    # so that table2's 5 seeds x 2 arms fit 15 minutes on 2 cores
    epochs=40,
    batch_size=64,
    lr=8e-3,  # DeiT's scaling rule gives 8e-3 * 64 / 512 = 1e-3
    warmup_epochs=1,
    min_lr=1e-5,
    drop_path=0.0,
    # DeiT's RandAugment, mixup and cutmix are tuned for 300 ImageNet epochs; on tiny images they mostly
    # slow learning, so this profile uses random translation and label smoothing.
    augment="shift",
    mixup=0.0,
    cutmix=0.0,
    smoothing=0.1,
    lambda_warmup=5,  # lambda warm-up: the paper's 10 of 300 epochs, scaled up for a short run
    eval_every=5,  # top-1 on the test set and the training slice every 5 epochs (and at the last)
    num_workers=0,
    threads=2,  # per process; side-by-side runs (STUDY jobs=2 below) get 1 each
    device="cpu",
)

# Per dataset family, what its baseline needs (a key covers the dataset and every name it prefixes).
# Fashion-MNIST: its native 28 px (a 7x7 grid of 4 px patches), batch 32, no augmentation; 2,000 training
# images for 50 epochs, the calibration candidate (`make reproduce-calibration`, results/calibration.csv)
# that fits (train top-1 >= 90%), generalizes, and is converged: doubling to 100 epochs moved its final
# test top-1 by less than a point. On 1,000 images no candidate up to 200 epochs was converged. An
# evaluation scores all 10,000 test images (about as long as an epoch here), so only at the end, with the
# Jaccard on the first 2,000 of them.
DATASET_CONFIG = {
    "fashion-mnist": dict(img_size=28, batch_size=32, augment="none", epochs=50, eval_every=50, seg_max_images=2000),
}

# The study settings: 5 paired seeds, the most that keep table2 (2 arms on the embedded set, 3 on
# Fashion-MNIST, 2 runs at a time) within 30 minutes on 2 cores; the embedded calibration candidates at
# equal budgets (40 epochs x 1k images = 20 x 2k), Fashion-MNIST's with doubled-epoch checks.
STUDY = dict(
    datasets=["synthetic-colour-1k", "fashion-mnist-2k"],
    seeds=[0, 1, 2, 3, 4],
    epochs=None,
    # sample efficiency (sarlib.study.targets.sample_efficiency): 200 to 2,000 Fashion-MNIST images, each
    # slice at the full set's 50 epochs and at equal optimizer steps (50 / fraction epochs); the cheap
    # equal-epoch slices get 10 paired seeds, since their intervals were the widest (+-2.7 points at 0.2
    # with 5 seeds) and a run there takes under a minute
    fractions=[0.1, 0.2, 0.5, 1.0],
    budgets=["equal-epochs", "equal-steps"],
    sample_seeds={"equal-epochs": {0.1: 10, 0.2: 10}},
    # transfer across disjoint class halves of Fashion-MNIST: each seed's baseline pretrained on 5,000
    # images of classes 0-4 for 20 epochs, then fine-tuned (and trained from scratch) on 500 of classes 5-9
    finetune_pretrain="fashion-mnist-0to4-5k",
    finetune_pretrain_epochs=20,
    finetune_dataset="fashion-mnist-5to9-500",
    finetune_epochs=20,
    # the lambda sweep on both datasets (by default a sweep covers the first only); sample efficiency on the
    # real images only: at equal steps every slice costs a full-set run, and the embedded set's 1,000 images
    # leave 10 per class at 0.1 (`DATASETS='["synthetic-colour-1k"]'` runs it there)
    target_datasets={"lambda-sweep": ["synthetic-colour-1k", "fashion-mnist-2k"],
                     "sample-efficiency": ["fashion-mnist-2k"], "grid": ["fashion-mnist-2k"],
                     "robustness": ["fashion-mnist-2k"], "local-bias": ["fashion-mnist-2k"]},
    # the grid target: the same ViT on 2 px patches (14x14 on 28 px, the grid of DeiT-S at 224 px), about 5x
    # the compute per image, so 3 paired seeds
    grid_model="vit_micro_patch2",
    grid_seeds=[0, 1, 2],
    # the local-bias target: ViTs with an architectural local bias at vit_micro_patch4's size (within 15% of
    # its parameters, sarlib/models/local.py), trained with its recipe and budget on Fashion-MNIST (45 runs,
    # about 75 minutes on 2 cores; `DATASETS='["synthetic-colour-1k", "fashion-mnist-2k"]'` adds the
    # embedded set's 45, about 30 minutes more)
    local_models={"spt-lsa": "vit_micro_spt_lsa_patch4", "convit": "convit_micro_patch4",
                  "conv-stem": "vit_micro_convstem"},
    # the robustness target: the first 100 test images of each class (1,000), each model scored on them clean
    # and under every corruption x severity (76 copies); the embedded set adds 10 models and is left to
    # `DATASETS='["synthetic-colour-1k"]'`
    robustness_per_class=100,
    lambdas=[0.0, 0.01, 0.03, 0.1, 0.3, 1.0],  # lambda0 values of the lambda sweep (spec section 5)
    sweep_seeds=[0, 1, 2],
    jobs=2,
    # (dataset, overrides); a candidate listed again with twice its epochs is checked for convergence
    calibration=[("synthetic-1k", {}), ("synthetic-colour-1k", {}), ("synthetic-colour-2k", {"epochs": 20}),
                 ("fashion-mnist-1k", {"epochs": 25}), ("fashion-mnist-1k", {"epochs": 50}),
                 ("fashion-mnist-1k", {"epochs": 100}), ("fashion-mnist-1k", {"epochs": 200}),
                 ("fashion-mnist-2k", {"epochs": 25}),
                 ("fashion-mnist-2k", {"epochs": 50}), ("fashion-mnist-2k", {"epochs": 100})],
)
