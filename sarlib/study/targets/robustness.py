"""Robustness to corrupted images: does a model whose attention sits on the object hold up better?

The authors score SAR models on ImageNet-C and ImageNet-A. This target scores table2's models (the same
runs, reused; trained first where missing) without training anything new: on the cpu profile, a
class-balanced slice of Fashion-MNIST's test set under ImageNet-C's corruptions at CIFAR-10-C's
small-image severities (`sarlib.data.corruptions`, which also lists those left out and why); on the paper
profile, the released ImageNet-C and ImageNet-A folders. Per model: top-1 per corruption and severity,
the mean under corruption, CE and mCE normalized by the ViT baseline of the same seed (AlexNet's
normalization is meaningless for a 28 px model), the relative mCE (the drop from clean), and the
attention under corruption against the clean object masks. Verdicts are paired by seed.
"""

from __future__ import annotations

from .base import Claim, Target
from .table2 import TARGET as TABLE2

SAR = "sar+no-skip - baseline"

TARGET = Target(
    name="robustness", order=10, redraws_from_rows=False,
    claim="SAR models hold up better on corrupted images, their attention staying on the object",
    compares="table2's baseline, SAR + no-skip (and CNN) runs, reused, scored on corrupted copies of the test set "
             "(cpu: Fashion-MNIST, 15 corruptions x 5 small-image severities; paper: ImageNet-C and ImageNet-A)",
    outputs="`robustness*.csv`, `figures/robustness.png`",
    # table2's runs, so nothing is trained twice; on the paper profile without SAR alone (the ablation's question)
    arms={**TABLE2.arms, "paper": ["baseline", "sar+no-skip"]},
    claims=(
        Claim("SAR + no-skip lowers the mCE on corrupted images (normalized by the seed's ViT)", SAR, "mce"),
        Claim("SAR + no-skip attention stays on the object under corruption (Jaccard vs clean masks)", SAR,
              "jaccard_corrupted"),
        Claim("(robustness) a CNN of the ViT's size has a lower mCE than the ViT", "cnn - baseline", "mce",
              reference=True),
    ),
    title="Robustness",
    delta_metrics=("top1_corrupted", "mce", "relative_mce", "jaccard_corrupted", "entropy_corrupted"),
    first_dataset_only=True,
)
