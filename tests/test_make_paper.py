"""`make reproduce-table2 PROFILE=paper` end to end at CI size: exported ImageNet/VOC files as DATA_ROOT,
the size-only OVERRIDES the README documents, one dataset and one seed. This is the command a
researcher runs on a cluster, through the notebook, papermill and the paper profile's DeiT pipeline."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from sarlib.data.synthetic.export import export_imagefolder, export_voc

REPO = Path(__file__).resolve().parents[1]
# the documented CI-size override: image and model size, batch and steps; the recipe stays the paper's
OVERRIDES = {"img_size": 32, "model_kwargs": {"patch_size": 4, "embed_dim": 48, "depth": 2, "num_heads": 3},
             "batch_size": 8, "epochs": 1, "max_steps_per_epoch": 2, "num_workers": 0, "device": "cpu",
             "threads": 1, "seg_dataset": "voc2012", "train_eval_images": 8}


@pytest.mark.skipif(shutil.which("make") is None or not (REPO / ".venv" / "bin" / "papermill").exists(),
                    reason="needs make and the project's .venv (make setup)")
def test_make_reproduce_table2_paper_profile_on_exported_files(tmp_path):
    data = tmp_path / "data"
    export_imagefolder(data, size=32, num_train=24, num_val=8, num_classes=4)
    export_voc(data, size=32, num_val=4, num_classes=4)
    results = tmp_path / "results"
    env = {**os.environ, "SARLIB_CACHE": str(tmp_path / "cache")}
    cmd = ["make", "--no-print-directory", "reproduce-table2", "PROFILE=paper", f"DATA_ROOT={data}",
           "DATASETS=[imagenet]", "SEEDS=[0]", f"RESULTS={results}", f"OVERRIDES={json.dumps(OVERRIDES)}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = pd.read_csv(results / "table2.csv")
    assert sorted(rows["arm"]) == ["baseline", "sar", "sar+no-skip"]  # the paper profile's three arms
    assert set(rows["profile"]) == {"paper"} and set(rows["dataset"]) == {"imagenet"}
    assert rows["jaccard"].between(0, 1).all() and set(rows["jaccard_protocol"]) == {"dino"}
    assert (results / "notebooks" / "table2.ipynb").is_file() and (results / "figures" / "table2.png").is_file()
    config = json.loads((Path(rows["run_dir"][0]) / "config.json").read_text())
    assert config["augment"] == "deit" and config["amp_dtype"] == "float16" and config["mixup"] > 0
