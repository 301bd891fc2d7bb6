"""Explore a study's attention in JupyterLab: any run, any test image, any head, two runs side by side.

    from sarlib.report.explore import Explorer
    Explorer("../results").show()            # notebooks/explore.ipynb

Runs are found in a results folder under `runs/` (trained on this machine: checkpoints) and `weights/`
(committed with the results: float16 safetensors of table2's cpu-profile runs, so a fresh clone explores
them without training; `save_run_weights` writes them). A run still training is listed as such and
opens once it has finished. For the chosen image and head, each run shows the image, the post-softmax
[CLS] attention, the above-mean regions the SAR loss counts (coloured by mass, 1 the largest), DINO's
60%-mass mask and the object mask, with the spatial entropy, the regions and the Jaccard under them; the
"mean" head shows the heads' mean map, their mean entropy and regions, and the best head's Jaccard (the
protocol's). One forward pass per run over the whole image set is cached, so a new image or head only
redraws. Where both runs kept snapshots after the same epochs (`--keep-checkpoints 5,10,50`, in the run's
epochs/ folder), an epoch slider shows the maps after each. Each run's training curves come from its log.jsonl.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..data.corrupted import clean_test_set
from ..data.readers.fashion_mnist import CLASSES as FASHION_CLASSES
from ..metrics.attention import region_counts
from ..metrics.jaccard import top_mass_masks
from ..models.cnn import has_cls_attention
from ..models.vit import forward_with_attention, patch_grid
from ..sar.entropy import spatial_entropy
from ..train.rundir import CONFIG, LOCK, load_trained_model, read_metrics
from ..train.weights import WEIGHTS_FILE, kept_snapshots, load_weights, read_log, save_weights
from ..utils.files import lock_in_use
from .plots import component_maps

__all__ = ["Explorer", "RunEntry", "default_pair", "find_runs", "image_maps", "save_run_weights", "WEIGHTS_DIR"]

WEIGHTS_DIR = "weights"
# test images per class the explorer scores (the robustness target's clean subset, smaller)
PER_CLASS = 20
_MASS = 0.6


@dataclass(frozen=True)
class RunEntry:
    """One run a results folder holds: where, in what state, and from which source."""
    dataset: str
    model: str
    arm: str
    variant: str  # the path between the arm and the seed, e.g. "e50"
    seed: int
    path: Path
    source: str  # "trained" (a run directory) or "weights" (committed float16 weights)
    status: str  # "finished", "training" or "stopped"
    epochs: tuple[int, ...] = ()  # the epochs it kept a snapshot after (--keep-checkpoints)

    @property
    def label(self) -> str:
        state = "" if self.status == "finished" else f" [{self.status}]"
        where = " (committed weights)" if self.source == "weights" else ""
        return f"{self.arm}, seed {self.seed}, {self.model} {self.variant}{where}{state}"


def _status(folder: Path) -> str:
    try:
        read_metrics(folder)
        return "finished"
    except (OSError, ValueError, RuntimeError):
        return "training" if lock_in_use(folder / LOCK) else "stopped"


def find_runs(results_dir: str | Path) -> list[RunEntry]:
    """Every run under `<results>/runs/<profile>/` and `<results>/weights/<profile>/`; a run present in both
    is listed once, from its run directory when that finished (full precision), else from the weights."""
    results = Path(results_dir)
    found: dict[tuple, RunEntry] = {}
    for source, base in (("weights", results / WEIGHTS_DIR), ("trained", results / "runs")):
        for config in sorted(base.glob(f"*/*/*/*/**/seed*/{CONFIG}")):
            parts = config.parent.relative_to(base).parts  # profile, dataset, model, arm, ..., seed<k>
            if not parts[-1][4:].isdigit():
                continue
            entry = RunEntry(dataset=parts[1], model=parts[2], arm=parts[3], variant="/".join(parts[4:-1]),
                             seed=int(parts[-1][4:]), path=config.parent, source=source, status=_status(config.parent),
                             epochs=tuple(kept_snapshots(config.parent)))
            key = parts
            if key in found and entry.status != "finished":
                found[key + ("trained",)] = entry  # listed beside the finished weights, as training
            else:
                found[key] = entry
    return sorted(found.values(), key=lambda e: (e.dataset, e.arm, e.seed, e.model, e.variant, e.source))


def save_run_weights(runs, results_dir: str | Path) -> list[Path]:
    """Copy finished runs (a study's `runs`) into `<results>/weights/` as float16 safetensors with their
    config, metrics and log: what the explorer needs on a fresh clone (table2's notebook does it)."""
    results = Path(results_dir)
    return [save_weights(run.run_dir, results / WEIGHTS_DIR / run.run_dir.relative_to(results / "runs"))
            for run in runs]


@lru_cache(maxsize=16)
def _load(path: Path, source: str, epoch: int | None = None) -> tuple[torch.nn.Module, Any]:
    """A run's final model (its checkpoint, or the committed weights) or the snapshot it kept after `epoch`."""
    if epoch is not None:
        return load_weights(path, epoch=epoch)
    return load_weights(path) if source == "weights" else load_trained_model(path)


@lru_cache(maxsize=4)
def _images(dataset: str, img_size: int, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    clean = _test_set(dataset, img_size, data_root)
    return clean.to_tensor(clean.images), torch.as_tensor(clean.labels), torch.as_tensor(clean.masks), clean.images


@lru_cache(maxsize=4)
def _test_set(dataset: str, img_size: int, data_root: str | None):
    return clean_test_set(dataset, per_class=PER_CLASS, img_size=img_size, root=data_root)


# an uploaded image larger than this is refused before it is decoded
MAX_UPLOAD_BYTES = 20 << 20


def uploaded_pixels(data: bytes, like: np.ndarray) -> np.ndarray:
    """A user's image file as pixels of the test set's layout (`like`: (S, S) gray or (S, S, 3)), resized to
    S x S, so the run's own test transform turns it into the model's input. Raises ValueError (one line)
    for a file that is too large or not an image."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the image is {len(data) >> 20} MiB; upload one under {MAX_UPLOAD_BYTES >> 20} MiB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("L" if like.ndim == 2 else "RGB")
            size = like.shape[0]
            return np.array(image.resize((size, size), Image.Resampling.BICUBIC), dtype=like.dtype)  # writable
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"the upload is not an image Pillow can read ({' '.join(str(err).split())[:120]})") from None


@torch.no_grad()
def image_maps(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor | None,
               mass: float = _MASS) -> dict[str, torch.Tensor]:
    """One forward pass over `images` -> probs (N, classes), and for a model with [CLS] attention: logits
    (N, heads, P) pre-softmax, heat (N, heads, h, w) post-softmax over the patches, dino (same, bool:
    the smallest patch set holding `mass`), entropy and regions (N, heads), jaccard (N, heads) per head
    against the one-object masks at the mask's resolution (NaN without masks)."""
    model.eval()
    if not has_cls_attention(model):
        return dict(probs=model(images).softmax(-1))
    logits, cls = forward_with_attention(model, images)
    grid = patch_grid(model)
    heat = cls.float().softmax(-1).view(*cls.shape[:2], *grid)
    dino = top_mass_masks(heat, mass)
    out = dict(probs=logits.softmax(-1), logits=cls.float(), heat=heat, dino=dino,
               entropy=spatial_entropy(cls, grid, reduction="none"), regions=region_counts(cls, grid).float())
    if masks is not None:
        keep = F.interpolate(dino.float(), size=masks.shape[-2:], mode="nearest").bool()
        obj = (masks > 0).unsqueeze(1)
        inter = (keep & obj).flatten(2).sum(-1).float()
        union = (keep | obj).flatten(2).sum(-1).clamp_min(1).float()
        out["jaccard"] = torch.where(obj.flatten(1).any(-1, keepdim=True), inter / union, torch.nan)
    return out


def default_pair(entries: list[RunEntry]) -> tuple[RunEntry, RunEntry] | None:
    """Baseline and SAR + no-skip of the same model, budget and lowest seed, from the model and budget
    with the most finished runs (table2's, in a results folder that holds several targets' runs)."""
    finished = [e for e in entries if e.status == "finished"]
    if not finished:
        return None
    groups: dict[tuple[str, str], list[RunEntry]] = {}
    for e in finished:
        groups.setdefault((e.model, e.variant), []).append(e)
    for _, group in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        for seed in sorted({e.seed for e in group}):
            base = [e for e in group if e.seed == seed and e.arm == "baseline"]
            sar = [e for e in group if e.seed == seed and e.arm == "sar+no-skip"]
            if base and sar:
                return base[0], sar[0]
    return finished[0], finished[-1]


def _class_names(dataset: str, num_classes: int) -> list[str]:
    if dataset.startswith("fashion-mnist") and num_classes == len(FASHION_CLASSES):
        return list(FASHION_CLASSES)
    if dataset == "fashion-mnist-5to9-500":
        return list(FASHION_CLASSES[5:])
    return [f"class {k}" for k in range(num_classes)]


def _panel(maps: dict[str, torch.Tensor], i: int, head: str) -> dict[str, Any]:
    """What one run draws for image i and a head ("mean" or its index)."""
    if "heat" not in maps:
        return {}
    grid = maps["heat"].shape[-2:]
    if head == "mean":
        heat = maps["heat"][i].mean(0)
        logits = heat.clamp_min(1e-12).log().flatten()
        dino = top_mass_masks(heat[None, None], _MASS)[0, 0]
        numbers = (float(maps["entropy"][i].mean()), float(maps["regions"][i].mean()),
                   float(maps["jaccard"][i].max()) if "jaccard" in maps else float("nan"))
    else:
        h = int(head)
        heat, logits, dino = maps["heat"][i, h], maps["logits"][i, h], maps["dino"][i, h]
        numbers = (float(maps["entropy"][i, h]), float(maps["regions"][i, h]),
                   float(maps["jaccard"][i, h]) if "jaccard" in maps else float("nan"))
    components = component_maps(logits.view(1, 1, -1), tuple(grid))[0, 0]
    return dict(heat=heat, components=components, dino=dino, numbers=numbers)


def draw(rows: list[tuple[str, dict[str, torch.Tensor]]], image: np.ndarray, mask: np.ndarray | None, i: int,
         head: str, label: int | None, names: list[str]) -> plt.Figure:
    """One row per run: image, attention, regions, DINO mask, object mask, with the numbers under them."""
    cols = ["image", "[CLS] attention", "above-mean regions", f"DINO {_MASS:.0%} mass", "object mask"]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.0 * len(cols), 2.6 * len(rows)), squeeze=False)
    colours = np.vstack([[0.92, 0.92, 0.92, 1.0], matplotlib.colormaps["tab10"](np.arange(8))])
    gray = image.ndim == 2
    for r, (title, maps) in enumerate(rows):
        probs = maps["probs"][i]
        pred = int(probs.argmax())
        axes[r, 0].imshow(image, cmap="gray" if gray else None, interpolation="nearest")
        truth = "your image" if label is None else f"label {names[label]}"
        axes[r, 0].set_title(f"{title}\npred {names[pred]} {float(probs[pred]):.0%}\n{truth}",
                             fontsize=8, color="black" if label is None or pred == label else "crimson")
        panel = _panel(maps, i, head)
        if panel:
            entropy, regions, jaccard = panel["numbers"]
            entropy = max(entropy, 0.0)  # one region: 0 up to rounding, never "-0.000"
            axes[r, 1].imshow(panel["heat"].numpy(), cmap="inferno", interpolation="nearest")
            axes[r, 1].set_xlabel(f"entropy {entropy:.3f}", fontsize=8)
            axes[r, 2].imshow(colours[panel["components"].clamp(max=8).numpy()], interpolation="nearest")
            axes[r, 2].set_xlabel(f"{regions:g} region{'s' if regions != 1 else ''}", fontsize=8)
            axes[r, 3].imshow(panel["dino"].numpy(), cmap="gray", interpolation="nearest")
            axes[r, 3].set_xlabel(f"Jaccard {jaccard:.3f}" if np.isfinite(jaccard) else "no object mask", fontsize=8)
        else:
            axes[r, 1].text(0.5, 0.5, "no [CLS] attention\n(a CNN)", ha="center", va="center", fontsize=8)
        if mask is not None:
            axes[r, 4].imshow(mask > 0, cmap="gray", interpolation="nearest")
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and c:
                ax.set_title(cols[c] + (f" (head {head})" if c in (1, 2, 3) else ""), fontsize=8)
    _fast_layout(fig, ("draw", len(rows)))
    return fig


# subplot parameters tight_layout found for a figure of this kind and shape: the explorer's drawings differ
# only in their pixels and numbers, so later ones reuse them (tight_layout costs about 0.2 s a figure)
_LAYOUTS: dict[tuple, dict[str, float]] = {}


def _fast_layout(fig: plt.Figure, kind: tuple) -> None:
    if kind not in _LAYOUTS:
        fig.tight_layout()
        p = fig.subplotpars
        _LAYOUTS[kind] = dict(left=p.left, right=p.right, bottom=p.bottom, top=p.top, wspace=p.wspace, hspace=p.hspace)
    fig.subplots_adjust(**_LAYOUTS[kind])


def curves(entries: list[RunEntry]) -> plt.Figure:
    """Training curves of the runs from their log.jsonl: loss and the SAR term, lambda, test and train top-1,
    and the mechanism (spatial entropy, regions) at the evaluated epochs."""
    panels = [("loss", "loss"), ("reg_term", "SAR term"), ("lambda", "lambda"), ("top1", "test top-1 (%)"),
              ("train_top1", "train top-1 (%)"), ("entropy", "spatial entropy"), ("regions", "regions")]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.1 * len(panels), 2.2))
    for k, entry in enumerate(entries):
        log = read_log(entry.path)
        for ax, (key, name) in zip(axes, panels):
            points = [(r["epoch"], r[key]) for r in log if r.get(key) is not None]
            if points:  # a baseline logs no SAR term; evaluation epochs alone carry top-1 and the mechanism
                ax.plot(*zip(*points), marker="o" if len(points) < 5 else None, markersize=4, color=f"C{k}",
                        label=f"{entry.arm} seed {entry.seed}")
                if len(points) == 1:  # a run evaluated once (at its last epoch): its value, not a lone dot
                    ax.annotate(f"{points[0][1]:.3g}", points[0], textcoords="offset points", xytext=(-6, -3),
                                fontsize=7, color=f"C{k}", ha="right")
                    ax.margins(x=0.6, y=0.3)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    # fixed margins, room for 6-character tick labels at 7 points (tight_layout costs about 0.2 s a figure)
    fig.subplots_adjust(left=0.04, right=0.995, bottom=0.2, top=0.88, wspace=0.6)
    return fig


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


class Explorer:
    """The widgets: dataset, two runs, head, image (index, class filter, misclassified only), curves."""

    def __init__(self, results_dir: str | Path = "../results") -> None:
        import ipywidgets as w  # optional: ipywidgets (the suite's notebook stack)

        self.results = Path(results_dir)
        self.runs = find_runs(self.results)
        if not self.runs:
            raise ValueError(f"{self.results} holds no runs (runs/ or weights/); run `make reproduce-table2` or "
                             "point the explorer at another results folder")
        datasets = sorted({e.dataset for e in self.runs})
        default = "fashion-mnist-2k" if "fashion-mnist-2k" in datasets else datasets[0]
        self.dataset = w.Dropdown(options=datasets, value=default, description="dataset")
        self.left = w.Dropdown(description="left run", layout=w.Layout(width="480px"))
        self.right = w.Dropdown(description="right run", layout=w.Layout(width="480px"))
        self.head = w.Dropdown(options=["mean"], value="mean", description="head")
        # the epochs both runs kept a snapshot after, then "final"; hidden when they kept none in common
        self.epoch = w.SelectionSlider(options=["final"], value="final", description="epoch", continuous_update=False,
                                       layout=w.Layout(display="none"))
        self.index = w.IntSlider(min=0, max=0, description="image", continuous_update=False)
        self.klass = w.Dropdown(options=["all"], value="all", description="class")
        self.wrong = w.Checkbox(value=False, description="misclassified by the left run")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="your image")
        self.own = w.Text(placeholder="a run folder (config.json + checkpoint.pth) or a weights folder",
                          layout=w.Layout(width="480px"))
        self.add = w.Button(description="add run")
        self.status = w.HTML()
        self.picture = w.Image(format="png")
        self.curve = w.Image(format="png")
        self._maps: dict[tuple[Path, int | None], dict[str, torch.Tensor]] = {}
        self._order: list[int] = []
        self._busy = False
        self.dataset.observe(self._reported(self._on_dataset), names="value")
        for widget in (self.left, self.right):
            widget.observe(self._reported(self._on_runs), names="value")
        for widget in (self.klass, self.wrong, self.epoch):  # a new epoch's maps may misclassify others
            widget.observe(self._reported(self._on_filter), names="value")
        for widget in (self.head, self.index, self.upload):
            widget.observe(self._reported(self.redraw), names="value")
        self.add.on_click(lambda _: self.add_run(self.own.value))
        self.widget = w.VBox([w.HBox([self.dataset, self.head]), self.left, self.right, self.epoch,
                              w.HBox([self.index, self.klass, self.wrong]), w.HBox([self.upload, self.own, self.add]),
                              self.status, self.picture,
                              w.HTML("<b>Training curves</b> (log.jsonl)"), self.curve])
        self._on_dataset()

    def _reported(self, step):
        """`step` as a widget callback: a run's files that cannot be read (a damaged or forged weights file, a
        checkpoint that is not one) become one line in the status, not a traceback in the page's log."""
        def callback(_change=None) -> None:
            try:
                step()
            except (OSError, ValueError, RuntimeError) as err:
                self.status.value = f"cannot show this selection: {' '.join(str(err).split())[:300]}"
        return callback

    def show(self):
        from IPython.display import display  # optional: ipython (the suite's notebook stack)

        display(self.widget)

    def _choices(self) -> list[tuple[str, RunEntry]]:
        return [(e.label, e) for e in self.runs if e.dataset == self.dataset.value]

    def _on_dataset(self) -> None:
        choices = self._choices()
        left, right = default_pair([e for _, e in choices]) or (choices[0][1], choices[0][1])
        self._busy = True
        for widget in (self.left, self.right):
            widget.options = choices
        self.left.value, self.right.value = left, right
        self._busy = False
        self._on_runs()

    def _epoch(self) -> int | None:
        return None if self.epoch.value == "final" else int(self.epoch.value)

    def _epoch_of(self, entry: RunEntry) -> int | None:
        """The chosen epoch where `entry` kept a snapshot after it, else None (its final model)."""
        epoch = self._epoch()
        return epoch if epoch in entry.epochs else None

    def _data(self, entry: RunEntry) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """The test images `entry` is scored on (its dataset at its input size): labels, masks, pixels."""
        _, cfg = _load(entry.path, entry.source)
        return _images(entry.dataset, cfg.img_size, cfg.data_root)[1:]

    def _scored(self, entry: RunEntry) -> dict[str, torch.Tensor] | None:
        """The run's maps over the whole image set at the chosen epoch (one forward pass, cached)."""
        if entry.status != "finished":
            return None
        epoch = self._epoch_of(entry)
        if (entry.path, epoch) not in self._maps:
            model, cfg = _load(entry.path, entry.source, epoch)
            images, _, masks, _ = _images(entry.dataset, cfg.img_size, cfg.data_root)
            self._maps[(entry.path, epoch)] = image_maps(model, images, masks)
        return self._maps[(entry.path, epoch)]

    def _on_runs(self) -> None:
        if self._busy:
            return
        entries = [self.left.value, self.right.value]
        pending = [e.label for e in entries if e.status != "finished"]
        if pending:
            self.status.value = f"not finished yet: {'; '.join(pending)} (it opens once its metrics.json is written)"
            return
        common = sorted(set(entries[0].epochs) & set(entries[1].epochs))
        self._busy = True
        self.epoch.options = [*common, "final"]
        self.epoch.value = "final"
        self.epoch.layout.display = "" if common else "none"
        self._busy = False
        maps = [self._scored(e) for e in entries]
        heads = max((m["heat"].shape[1] for m in maps if "heat" in m), default=0)
        self._busy = True
        self.head.options = ["mean"] + [str(h) for h in range(heads)]
        names = _class_names(self.dataset.value, maps[0]["probs"].shape[1])
        self.klass.options = ["all"] + names
        self._busy = False
        self.curve.value = _png(curves(entries))
        self._on_filter()

    def _on_filter(self) -> None:
        if self._busy or self.left.value is None:
            return
        maps = self._scored(self.left.value)
        if maps is None:
            return
        labels = self._data(self.left.value)[0]
        keep = torch.ones(len(labels), dtype=torch.bool)
        if self.klass.value != "all":
            keep &= labels == list(self.klass.options).index(self.klass.value) - 1
        if self.wrong.value:
            keep &= maps["probs"].argmax(-1) != labels
        self._order = keep.nonzero().flatten().tolist()
        self._busy = True
        self.index.max = max(len(self._order) - 1, 0)
        self.index.value = min(self.index.value, self.index.max)
        self._busy = False
        self.redraw()

    def add_run(self, folder: str) -> None:
        """Add a run of the user's (a run directory or a weights folder) to the choices and show it on the right."""
        path = Path(folder.strip()).expanduser()
        source = "weights" if (path / WEIGHTS_FILE).is_file() else "trained"
        try:
            _, cfg = _load(path, source)
        except (OSError, ValueError, RuntimeError) as err:
            self.status.value = f"cannot add {path}: {' '.join(str(err).split())[:300]}"
            return
        entry = RunEntry(dataset=cfg.dataset, model=cfg.model, arm=path.name, variant="(added)", seed=cfg.seed,
                         path=path, source=source, status="finished", epochs=tuple(kept_snapshots(path)))
        self.runs.append(entry)
        if cfg.dataset not in self.dataset.options:
            self.dataset.options = [*self.dataset.options, cfg.dataset]
        self._busy = True
        self.dataset.value = cfg.dataset
        for widget in (self.left, self.right):
            widget.options = self._choices()
        self._busy = False
        self.right.value = entry
        self._on_runs()

    def _uploaded(self) -> np.ndarray | None:
        files = self.upload.value
        if not files:
            return None
        return uploaded_pixels(bytes(files[0]["content"]), self._data(self.left.value)[2][0])

    def redraw(self) -> None:
        if self._busy:
            return
        try:
            pixels = self._uploaded()
        except ValueError as err:
            self.status.value = str(err)
            return
        if pixels is not None:
            self._draw_upload(pixels)
            return
        if not self._order:
            self.status.value = "no image matches the filter"
            self.picture.value = b""
            return
        i = self._order[self.index.value]
        entries = [self.left.value, self.right.value]
        after = "" if self._epoch() is None else f", epoch {self._epoch()}"
        rows = [(f"{e.arm} seed {e.seed}{after}", self._scored(e)) for e in entries]
        labels, masks, pixels = self._data(entries[0])
        names = _class_names(self.dataset.value, rows[0][1]["probs"].shape[1])
        self.picture.value = _png(draw(rows, pixels[i], masks[i].numpy(), i, self.head.value, int(labels[i]), names))
        self.status.value = (f"test image {i} of {len(labels)} ({PER_CLASS} per class), "
                             f"{len(self._order)} match the filter")

    def _draw_upload(self, pixels: np.ndarray) -> None:
        """The user's image through both runs (no label, no object mask), with each run's test transform."""
        entries = [self.left.value, self.right.value]
        rows = []
        for e in entries:
            model, cfg = _load(e.path, e.source, self._epoch_of(e))
            x = _test_set(e.dataset, cfg.img_size, cfg.data_root).to_tensor(pixels[None])
            rows.append((f"{e.arm} seed {e.seed}", image_maps(model, x, None)))
        names = _class_names(self.dataset.value, rows[0][1]["probs"].shape[1])
        self.picture.value = _png(draw(rows, pixels, None, 0, self.head.value, None, names))
        self.status.value = f"your image ({self.upload.value[0]['name']}); clear the upload to return to the test set"
