import matplotlib

matplotlib.use("Agg")

import pandas as pd
import torch

from sarlib import plots


def test_component_maps_number_regions_by_mass():
    x = torch.zeros(1, 1, 16)
    g = x.view(4, 4)
    g[0, 0] = 1.0  # small region
    g[3, 2:] = 5.0  # heavy region
    maps = plots.component_maps(x, (4, 4))
    assert maps.shape == (1, 1, 4, 4)
    assert maps[0, 0, 3, 2] == maps[0, 0, 3, 3] == 1 and maps[0, 0, 0, 0] == 2
    assert (maps[0, 0] > 0).sum() == 3 and plots.mean_regions(maps) == 2.0


def test_figures_render_and_save(tmp_path):
    images = torch.rand(2, 3, 16, 16)
    maps = {"baseline": plots.component_maps(torch.randn(2, 3, 16), (4, 4)),
            "sar": plots.component_maps(torch.randn(2, 3, 16), (4, 4))}
    fig = plots.attention_components_figure(images, maps, masks=torch.rand(2, 16, 16) > 0.5)
    assert len(fig.axes) == 2 * (1 + 3 + 3)
    assert plots.save(fig, tmp_path / "f" / "maps.png").stat().st_size > 1000
    rows = pd.DataFrame({"dataset": ["d"] * 4, "arm": ["a", "a", "b", "b"], "top1_best": [1, 2, 3, 4],
                         "train_fraction": [0.5, 1.0, 0.5, 1.0], "seed": [0, 0, 0, 0]})
    ax = plots.bars_with_seeds(rows)
    assert plots.save(ax.figure, tmp_path / "bars.png").exists()
    ax = plots.metric_vs_fraction(rows)
    assert plots.save(ax.figure, tmp_path / "frac.png").exists()
