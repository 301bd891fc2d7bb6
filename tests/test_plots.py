import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import torch

from sarlib.report import plots
from sarlib.report import summaries as reports


def test_component_maps_number_regions_by_mass():
    x = torch.zeros(1, 1, 16)
    g = x.view(4, 4)
    g[0, 0] = 1.0  # small region
    g[3, 2:] = 5.0  # heavy region
    maps = plots.component_maps(x, (4, 4))
    assert maps.shape == (1, 1, 4, 4)
    assert maps[0, 0, 3, 2] == maps[0, 0, 3, 3] == 1 and maps[0, 0, 0, 0] == 2
    assert (maps[0, 0] > 0).sum() == 3


def _rows():
    rng = np.random.default_rng(0)
    out = []
    for frac in (0.5, 1.0):
        for arm, shift in (("baseline", 0.0), ("sar+no-skip", 1.0)):
            for seed in range(3):
                out.append(dict(dataset="d", arm=arm, seed=seed, train_fraction=frac, lambda0=0.01 * shift,
                                top1_best=50 + shift + rng.normal(), train_top1=90 + rng.normal(),
                                top1_final=49 + shift + rng.normal(),
                                entropy=0.3 - 0.1 * shift, regions=2 - shift / 2, jaccard=0.2 + 0.05 * shift))
    return pd.DataFrame(out)


def test_bar_whiskers_are_the_summary_t_intervals(tmp_path):
    rows = _rows()[lambda r: r.train_fraction == 1.0]
    summary = reports.summarize(rows)
    ax = plots.bars(rows, summary, "top1_best", chance=10.0)
    lines = [c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    assert len(lines) == 2
    for container, (_, row) in zip(lines, summary.iterrows()):
        segment = container.lines[2][0].get_segments()[0]
        assert np.allclose([segment[0][1], segment[1][1]],
                           [row.top1_best_mean - row.top1_best_ci95, row.top1_best_mean + row.top1_best_ci95])
    assert any(line.get_ydata()[0] == 10.0 for line in ax.get_lines())  # the chance level
    fig = plots.outcome_and_mechanism(rows, summary, chance=10.0)
    assert len(fig.axes) == 5
    assert plots.save(fig, tmp_path / "f" / "bars.png").stat().st_size > 1000


def test_curves_and_maps_render(tmp_path):
    rows = _rows()
    summary = reports.summarize(rows, by=("dataset", "train_fraction", "arm"))
    from sarlib.study import paired_delta

    delta = paired_delta(rows, "top1_best", "sar+no-skip", by=("dataset", "train_fraction"))
    assert plots.save(plots.fraction_curves(rows, summary, delta), tmp_path / "frac.png").exists()
    assert plots.save(plots.lambda_curves(rows[rows.train_fraction == 1.0]), tmp_path / "lam.png").exists()
    # one row of panels per budget, each titled with it, the train top-1 dashed beside the test curve
    both = pd.concat([rows.assign(budget="equal-epochs"), rows.assign(budget="equal-steps")], ignore_index=True)
    fig = plots.fraction_curves(both, reports.summarize(both, by=("dataset", "budget", "train_fraction", "arm")),
                                paired_delta(both, "top1_final", "sar+no-skip", by=("dataset", "budget", "train_fraction")))
    assert [ax.get_title() for ax in fig.axes[::2]] == ["d, equal-epochs", "d, equal-steps"]
    assert sum(line.get_linestyle() == "--" for line in fig.axes[0].get_lines()) == 2
    images = torch.rand(2, 3, 16, 16)
    attn = {"baseline": torch.rand(2, 3, 4, 4), "sar": torch.rand(2, 3, 4, 4)}
    fig = plots.attention_heatmaps(images, attn, masks=torch.rand(2, 16, 16) > 0.5)
    assert len(fig.axes) == 2 * (1 + 3 + 3)
    maps = {k: plots.component_maps(torch.randn(2, 3, 16), (4, 4)) for k in ("baseline", "sar")}
    fig = plots.attention_components_figure(images, maps, masks=torch.rand(2, 16, 16) > 0.5)
    assert plots.save(fig, tmp_path / "maps.png").stat().st_size > 1000
