"""Corruption-robustness scores (Hendrycks & Dietterich 2019), from top-1 errors per corruption and severity.

Errors are fractions in [0, 1], five per corruption (severities 1..5), keyed by ImageNet-C's folder names
("gaussian_noise", ...). For a corruption c:

    CE_c          = sum_s E_s / sum_s R_s                              (corruption error)
    relative CE_c = sum_s (E_s - E_clean) / sum_s (R_s - R_clean)      (relative corruption error)

where E are the model's errors and R a reference model's; mCE and relative mCE average them over corruptions.

The reference: for ImageNet-1k models, AlexNet (`ALEXNET_ERRORS`, `ALEXNET_CLEAN_ERROR`), which makes the
numbers comparable with published ones. For models of small images or other class lists (Fashion-MNIST,
the synthetic sets, CIFAR-style corruptions), AlexNet's ImageNet errors mean nothing; the caller passes a
reference model's own errors on the same corrupted images instead, e.g. the ViT baseline of the same seed, so
that CE < 1 reads "fewer errors than the baseline".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["ALEXNET_CLEAN_ERROR", "ALEXNET_ERRORS", "BENCHMARK_CORRUPTIONS", "EXTRA_CORRUPTIONS", "SEVERITIES",
           "corruption_errors", "mce", "relative_corruption_errors", "relative_mce", "unnormalized_mean_error"]


SEVERITIES = 5


# The 15 corruptions of the ImageNet-C benchmark (noise, blur, weather, digital), in the paper's order.
BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)


# Released with ImageNet-C as held-out corruptions; not part of mCE.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


# AlexNet's top-1 errors on ImageNet-C, severities 1..5. Source: UCSC-VLAA/RobustCNN, timm/utils/imagenet_c.py
# (`imagenetc_alexnet_error_rates_list`). Each value is a count out of the 50,000 validation images, written
# here to its exact 5 decimals (the source prints a few with float noise, e.g. 0.656239999999999). Their
# per-corruption means equal the table alibaba/easyrobust uses (easyrobust/benchmarks/ood/imagenet_c.py,
# `get_ce_alexnet`, e.g. gaussian_noise 0.886428), which the tests check. Neither source publishes AlexNet's
# errors on the 4 extra corruptions at this precision, so they have no entry.
ALEXNET_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}


# AlexNet's clean top-1 error, for relative mCE: the error torchvision published for the weights
# (alexnet-owt-4df8aa71.pth) that hendrycks/robustness ImageNet-C/test.py evaluates. Source: pytorch/vision,
# docs/source/models.rst, "ImageNet 1-crop error rates" table (AlexNet 43.45); the paper rounds it to 43.5.
ALEXNET_CLEAN_ERROR = 0.4345


Errors = Mapping[str, Sequence[float]]


def _error(value: float, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number; got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} is {x}; errors must be finite")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{what} is {x}; errors are fractions in [0, 1], not percentages")
    return x


def _severities(errors: Errors, who: str) -> dict[str, list[float]]:
    """`errors` checked: a non-empty mapping of corruption -> exactly 5 finite errors in [0, 1]."""
    if not errors:
        raise ValueError(f"no corruptions in the {who} errors")
    out = {}
    for corruption, values in errors.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"{who} errors of {corruption} must be a sequence of {SEVERITIES} numbers; "
                             f"got {type(values).__name__}")
        if len(values) != SEVERITIES:
            raise ValueError(f"{who} errors of {corruption} have {len(values)} severities; expected {SEVERITIES}")
        out[corruption] = [_error(v, f"{who} error of {corruption} severity {s}") for s, v in enumerate(values, 1)]
    return out


def _paired(errors: Errors, reference: Errors) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    model, ref = _severities(errors, "model"), _severities(reference, "reference")
    missing = [c for c in model if c not in ref]
    if missing:
        raise ValueError(f"the reference has no errors for {', '.join(missing)} (it covers {', '.join(ref)}); "
                         "score only the corruptions both were evaluated on")
    return model, ref


def corruption_errors(errors_by_severity: Errors, reference: Errors) -> dict[str, float]:
    """CE per corruption of ``errors_by_severity``: sum over severities of the model's errors divided by that
    of ``reference`` (`ALEXNET_ERRORS` for ImageNet-1k models). The reference may cover more corruptions."""
    model, ref = _paired(errors_by_severity, reference)
    out = {}
    for c, e in model.items():
        denominator = math.fsum(ref[c])
        if denominator <= 0.0:
            raise ValueError(f"the reference errors of {c} sum to {denominator}; a CE needs a positive sum")
        out[c] = math.fsum(e) / denominator
    return out


def relative_corruption_errors(errors_by_severity: Errors, clean_error: float, reference: Errors,
                               reference_clean_error: float) -> dict[str, float]:
    """Relative CE per corruption: the model's degradation over its clean error, summed over severities,
    divided by the reference's (`ALEXNET_ERRORS` with `ALEXNET_CLEAN_ERROR` for ImageNet-1k models).

    A model may degrade by a negative amount (fewer errors than clean); the reference must degrade."""
    model, ref = _paired(errors_by_severity, reference)
    clean = _error(clean_error, "model clean error")
    ref_clean = _error(reference_clean_error, "reference clean error")
    out = {}
    for c, e in model.items():
        denominator = math.fsum(r - ref_clean for r in ref[c])
        if denominator <= 0.0:
            raise ValueError(f"the reference's errors of {c} exceed its clean error by {denominator} in sum; "
                             "a relative CE needs a reference that degrades under the corruption")
        out[c] = math.fsum(x - clean for x in e) / denominator
    return out


def _mean_over(scores: Mapping[str, float], corruptions: Sequence[str] | None, what: str) -> float:
    if corruptions is None:
        # the benchmark's 15, the held-out extras left out as in the paper
        used = [c for c in BENCHMARK_CORRUPTIONS if c in scores]
        if not used:
            given = ", ".join(scores) or "none"
            raise ValueError(f"none of the 15 benchmark corruptions has a {what} (given: {given}); "
                             "pass corruptions=... to average over others")
    else:
        used = list(corruptions)
        if not used:
            raise ValueError("corruptions is empty: nothing to average")
        missing = [c for c in used if c not in scores]
        if missing:
            raise ValueError(f"no {what} for {', '.join(missing)}")
    values = [float(scores[c]) for c in used]
    bad = [c for c, v in zip(used, values) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"the {what} of {', '.join(bad)} is not finite")
    return math.fsum(values) / len(values)


def mce(ce: Mapping[str, float], corruptions: Sequence[str] | None = None) -> float:
    """Mean CE. By default over the 15 benchmark corruptions present in ``ce`` (`BENCHMARK_CORRUPTIONS`;
    extras such as speckle_noise are ignored); it compares with published mCEs only when all 15 are there.
    ``corruptions`` names the ones to average instead (each must be in ``ce``)."""
    return _mean_over(ce, corruptions, "CE")


def relative_mce(relative_ce: Mapping[str, float], corruptions: Sequence[str] | None = None) -> float:
    """Mean relative CE, over the same corruptions as `mce`."""
    return _mean_over(relative_ce, corruptions, "relative CE")


def unnormalized_mean_error(errors_by_severity: Errors) -> float:
    """Mean top-1 error over every corruption and severity given (no reference): what hendrycks/robustness
    ImageNet-C/test.py prints as "mCE (unnormalized by AlexNet errors)" over the corruptions it lists."""
    model = _severities(errors_by_severity, "model")
    return math.fsum(x for e in model.values() for x in e) / (SEVERITIES * len(model))
