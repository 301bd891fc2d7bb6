"""SAR helps fine-tuning a pretrained model; the same model from scratch says what pretraining gives."""

from __future__ import annotations

from dataclasses import replace

from ..runs import Run
from .base import HEADLINE, Claim, PlanRequest, Target


def _plan(req: PlanRequest) -> list[Run]:
    """Each seed's pretraining (table2's baseline on the profile's `finetune_pretrain` dataset, default its
    first, unless `init_checkpoint` is given), then its fine-tuning runs."""
    prof = req.study
    # a dataset chosen by the caller is fine-tuned on; the profile's own list means its finetune_dataset
    ft_dataset = req.datasets[0] if req.datasets and req.datasets != prof["datasets"] else prof["finetune_dataset"]
    arms = list(req.given_arms or req.target.arms_for(req.profile, "*"))
    pretraining = {k: req.call.get(k) for k in ("runs_root", "data_root", "overrides", "epochs")}
    pretraining["epochs"] = pretraining["epochs"] or prof.get("finetune_pretrain_epochs")
    pre = [] if req.init_checkpoint else [
        replace(r, pretraining=True)
        for r in req.call["plan"]("table2", profile=req.profile, datasets=[prof.get("finetune_pretrain", prof["datasets"][0])],
                                  seeds=req.seeds, arms=["baseline"], **pretraining)]
    sources = {r.seed: str(r.run_dir / "checkpoint.pth") for r in pre} or {s: req.init_checkpoint for s in req.seeds}
    before = {**req.base, **prof.get("finetune_overrides", {}), "epochs": prof["finetune_epochs"]}
    # "scratch": the baseline from random weights on the same data and budget, the yardstick of pretraining
    return pre + [replace(req, base=before).run(arm, dataset=ft_dataset, seed=seed,
                                                init_checkpoint=None if arm == "scratch" else sources[seed],
                                                warmup_epochs=min(3, prof["finetune_epochs"] - 1))
                  for seed in req.seeds for arm in arms]


TARGET = Target(
    name="finetune", order=4,
    claim="SAR helps fine-tuning a pretrained model",
    compares="a pretrained baseline fine-tuned with and without SAR, and the same model from scratch (what "
             "pretraining gives)",
    outputs="`finetune*.csv`, `figures/finetune.png`",
    # the pretrained baseline has the standard last block, so fine-tuning compares with/without the loss;
    # "scratch" (the same data and budget from random weights) measures what the pretraining gives
    arms=["baseline", "sar", "scratch"], planner=_plan,
    claims=(
        Claim("SAR helps fine-tuning", "sar - baseline", HEADLINE),
        Claim("(yardstick) pretraining helps fine-tuning", "baseline - scratch", HEADLINE, table="pretraining",
              reference=True),
    ),
    title="Fine-tuning",
)
