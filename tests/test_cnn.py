"""The convolutional reference arm: about the cpu ViT's size, trained by the same engine and recipe, with
empty mechanism columns (it has no [CLS] attention) and SAR refused."""

import json

import pytest
import torch

import sarlib
from sarlib.models.cnn import SmallCNN, create_cnn, has_cls_attention
from sarlib.study import ARMS, plan
from sarlib.train import load_profile, train
from sarlib.train.cli import main


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_cnn_has_about_the_cpu_vits_parameter_count():
    cfg = load_profile("cpu")
    vit = sarlib.create_model(cfg.model, num_classes=10, img_size=cfg.img_size, **cfg.model_kwargs)
    cnn = create_cnn("cnn_micro", num_classes=10)
    assert abs(_params(cnn) / _params(vit) - 1) < 0.05, (_params(cnn), _params(vit))
    assert create_cnn("cnn_micro", num_classes=3)(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    assert not has_cls_attention(cnn) and has_cls_attention(vit)
    with pytest.raises(ValueError, match="takes widths, in_chans and drop_rate"):
        create_cnn("cnn_micro", num_classes=10, patch_size=4)


def test_the_cnn_arm_trains_with_the_engine_and_leaves_the_mechanism_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))
    runs = plan("table2", profile="smoke", seeds=[0], arms=["baseline", "cnn"], runs_root=str(tmp_path / "runs"),
                epochs=2, overrides=dict(threads=1))
    cnn = next(r for r in runs if r.arm == "cnn")
    assert cnn.config.model == "cnn_micro" and cnn.config.model_kwargs == {} and "cnn_micro" in str(cnn.run_dir)
    assert ARMS["cnn"]["regularizer"] == "none"
    metrics = train(cnn.config)
    assert metrics["complete"] and metrics["top1_final"] >= 0 and metrics["train_top1_final"] is not None
    assert metrics["entropy"] is None and metrics["regions"] is None and metrics["jaccard"] is None
    history = [json.loads(line) for line in (cnn.run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["reg_term"] for r in history] == [None, None] and len(history) == 2
    model = sarlib.train.load_trained_model(cnn.run_dir)[0]
    assert isinstance(model, SmallCNN)


@pytest.mark.parametrize("flags", [["--regularizer", "sar"], ["--no-skip"]])
def test_sar_or_the_no_skip_block_with_the_cnn_is_refused_in_one_line(tmp_path, capsys, flags):
    rc = main(["--profile", "smoke", "--model", "cnn_micro", "--model-kwargs", "{}", "--regularizer", "none",
               *flags, "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "is a CNN without [CLS] attention" in err
    assert not (tmp_path / "run").exists()
