"""Diagnostic plots of one run: ROC curves and score histograms per backend, a t-SNE map per machine type.

matplotlib and scikit-learn are imported inside the functions so that the command line starts fast.
Figures are plain ``matplotlib.figure.Figure`` objects on an Agg canvas, never registered with pyplot,
so plotting leaves no global state behind.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import click
import numpy as np

from .errors import ArtifactError, AsdcoreError
from .features import SHARED, FeatureSet, load_features
from .interfaces import ANOMALY, NORMAL, SOURCE, TARGET, UNKNOWN
from .store import atomic_path
from .submission import SCORES, TRAIN_KEY, few, read_table

MAX_TSNE_POINTS = 2000
TRAIN_SCORE_FILE = f"{SCORES}_{TRAIN_KEY}.csv"
DOMAINS = ((SOURCE, "source", "tab:blue"), (TARGET, "target", "tab:orange"))
LABELS = ((NORMAL, "normal"), (ANOMALY, "anomaly"), (UNKNOWN, "unknown"))
MARKERS = {"train": {NORMAL: "o", ANOMALY: "P", UNKNOWN: "d"}, "test": {NORMAL: "^", ANOMALY: "X", UNKNOWN: "s"}}


def plot_run(seed_dir: Path, out_dir: Path | None = None, features: Mapping[str, Path] | None = None) -> list[Path]:
    """Write ``roc_<machine>_<backend>.png`` and ``hist_<machine>_<backend>.png`` per machine type and
    backend folder, and ``embedding_<machine>.png`` per machine type, into ``out_dir`` (default
    ``seed_dir/plots``); return the written paths, sorted. ``features``: machine type -> its
    ``features.h5`` (default: :func:`features_files`)."""
    seed_dir = Path(seed_dir)
    out_dir = Path(out_dir) if out_dir is not None else seed_dir / "plots"
    features = dict(features) if features is not None else features_files(seed_dir)
    if not features:
        raise ArtifactError(f"{seed_dir}: no <machine>/features.h5 to plot")
    written = []
    for machine, path in sorted(features.items()):
        machine_dir = seed_dir / machine
        train, test = (load_features(path, split) for split in ("train", "test"))
        for backend_dir in backend_dirs(machine_dir) if machine_dir.is_dir() else []:
            backend = backend_dir.name
            scores = read_backend_scores(backend_dir, test)
            title = f"{machine} / {backend}"
            written.append(_save(roc_figure(test, scores, title), out_dir / f"roc_{machine}_{backend}.png"))
            written.append(_save(histogram_figure(test, scores, read_threshold(backend_dir), title),
                                 out_dir / f"hist_{machine}_{backend}.png"))
        written.append(_save(embedding_figure(train, test, machine), out_dir / f"embedding_{machine}.png"))
    return sorted(written)


def features_files(seed_dir: Path) -> dict[str, Path]:
    """Machine type -> ``features.h5`` of a seed folder: ``<machine>/features.h5``, or for untrained
    frontends the one set shared by every seed, ``../shared/<machine>/features.h5``."""
    seed_dir = Path(seed_dir)
    found = {}
    for folder in sorted(d for d in seed_dir.iterdir() if d.is_dir()) if seed_dir.is_dir() else []:
        for path in (folder / "features.h5", seed_dir.parent / SHARED / folder.name / "features.h5"):
            if path.is_file():
                found[folder.name] = path
                break
    return found


def backend_dirs(machine_dir: Path) -> list[Path]:
    """Sub-folders of a machine folder that hold test score files."""
    return sorted(d for d in Path(machine_dir).iterdir() if d.is_dir() and score_files(d))


def score_files(backend_dir: Path) -> list[Path]:
    """Every ``anomaly_score_*.csv`` of a backend folder except the training-clip scores."""
    return sorted(p for p in Path(backend_dir).glob(f"{SCORES}_*.csv") if p.name != TRAIN_SCORE_FILE)


def read_backend_scores(backend_dir: Path, test: FeatureSet) -> np.ndarray:
    """Scores aligned with ``test`` from the test score files of ``backend_dir``, joined by file name
    (so any grouping of files works); clips without a score are NaN."""
    index = {name: i for i, name in enumerate(test.names)}
    if len(index) != len(test):
        raise ArtifactError(f"{backend_dir}: test clips share file names, so scores cannot be joined by name")
    scores = np.full(len(test), np.nan)
    for path in score_files(backend_dir):
        table = read_table(path, written=True)
        unknown = sorted(set(table) - set(index))
        if unknown:
            raise ArtifactError(f"{path}: file names that are not test clips of this machine type: {few(unknown)}")
        for name, value in table.items():
            if not np.isnan(scores[index[name]]):
                raise ArtifactError(f"{path}: {name!r} is scored in another score file too")
            scores[index[name]] = value
    return scores


def read_threshold(backend_dir: Path) -> float | None:
    """The decision threshold from ``threshold.json``, or None when the backend wrote none."""
    path = Path(backend_dir) / "threshold.json"
    if not path.exists():
        return None
    try:
        return float(json.loads(path.read_text())["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: expected {{\"threshold\": <number>, ...}} ({exc!r})") from None


def roc_subsets(test: FeatureSet, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the clips behind AUC (source), AUC (target) (one domain's normals plus all anomalies,
    as in DCASE 2022+) and all labelled clips."""
    labelled = np.isfinite(scores) & (test.is_anomaly != UNKNOWN)
    anomalies = labelled & (test.is_anomaly == ANOMALY)
    subsets = {name: anomalies | (labelled & (test.is_anomaly == NORMAL) & (test.domain == d))
               for d, name, _ in DOMAINS}
    return {**subsets, "all": labelled}


def roc_figure(test: FeatureSet, scores: np.ndarray, title: str):
    """ROC curves per domain and over all clips, AUC and pAUC in the legend, the pAUC range shaded."""
    from sklearn.metrics import roc_curve

    from .metrics import MAX_FPR, auc, pauc

    fig = _figure((6, 5.5))
    ax = fig.subplots()
    ax.axvspan(0, MAX_FPR, color="0.9", label=f"pAUC range (FPR ≤ {MAX_FPR:g})")
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    colours = {name: colour for _, name, colour in DOMAINS} | {"all": "black"}
    for name, mask in roc_subsets(test, scores).items():
        y, s = test.is_anomaly[mask], scores[mask]
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, color=colours[name],
                label=f"{name}: AUC {auc(y, s):.3f}, pAUC {pauc(y, s):.3f} (n={len(y)})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
           title=f"{title}: ROC of test clips")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def histogram_figure(test: FeatureSet, scores: np.ndarray, threshold: float | None, title: str):
    """Step histograms of the scores of normal/anomalous source/target clips on shared bins."""
    fig = _figure((7, 4.5))
    ax = fig.subplots()
    labelled = np.isfinite(scores) & (test.is_anomaly != UNKNOWN)
    bins = np.histogram_bin_edges(scores[labelled], bins=30) if labelled.any() else 30
    for d, domain, colour in DOMAINS:
        for label, name, style in ((NORMAL, "normal", "-"), (ANOMALY, "anomaly", "--")):
            mask = labelled & (test.domain == d) & (test.is_anomaly == label)
            if mask.any():
                ax.hist(scores[mask], bins=bins, histtype="step", color=colour, linestyle=style, linewidth=1.5,
                        label=f"{domain} {name} (n={int(mask.sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="anomaly score", ylabel="clips", title=f"{title}: test score histogram")
    _legend(ax, loc="best", fontsize="small")
    return fig


def embedding_figure(train: FeatureSet, test: FeatureSet, machine: str, max_points: int = MAX_TSNE_POINTS):
    """t-SNE map of the L2-normalised train and test embeddings (at most ``max_points``, a fixed subsample)."""
    from sklearn.manifold import TSNE

    split = np.repeat(np.array(["train", "test"]), [len(train), len(test)])
    domain = np.concatenate([train.domain, test.domain])
    label = np.concatenate([train.is_anomaly, test.is_anomaly])
    x = np.concatenate([train.embedding, test.embedding]).astype(np.float64)
    keep = np.arange(len(x))
    if len(x) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(x), max_points, replace=False))
    x = x[keep] / np.maximum(np.linalg.norm(x[keep], axis=1, keepdims=True), 1e-12)
    # PCA initialisation needs at least two embedding dimensions
    tsne = TSNE(2, perplexity=min(30, len(x) - 1), init="pca" if x.shape[1] >= 2 else "random", random_state=0)
    xy = tsne.fit_transform(x)
    split, domain, label = split[keep], domain[keep], label[keep]

    fig = _figure((8, 6))
    ax = fig.subplots()
    for part, size, alpha in (("train", 12, 0.4), ("test", 28, 0.9)):
        for d, domain_name, colour in DOMAINS:
            for value, label_name in LABELS:
                mask = (split == part) & (domain == d) & (label == value)
                if mask.any():
                    ax.scatter(xy[mask, 0], xy[mask, 1], s=size, alpha=alpha, color=colour, marker=MARKERS[part][value],
                               label=f"{part} {domain_name} {label_name} ({int(mask.sum())})")
    ax.set(xticks=[], yticks=[], title=f"{machine}: t-SNE of embeddings ({len(x)} clips)")
    _legend(ax, loc="center left", bbox_to_anchor=(1, 0.5), fontsize="small")
    return fig


def _figure(size: tuple[float, float]):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise AsdcoreError("plots need matplotlib: pip install 'asdcore[plots]' (or set evaluation.plots: false)") \
            from None

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _legend(ax, **kwargs) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


@click.command("plot")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the PNGs (default: <seed folder>/plots). With several seed folders, each "
                   "gets the sub-folder of its path below their common parent.")
def plot_command(runs: tuple[Path, ...], output: Path | None) -> None:
    """ROC curves, score histograms and t-SNE maps of RUNS (seed folders, or their parents)."""
    seed_dirs = list(dict.fromkeys(d.resolve() for run in runs for d in _seed_dirs(run)))
    base = Path(os.path.commonpath(seed_dirs))
    for seed_dir in seed_dirs:
        out_dir = seed_dir / "plots" if output is None else output / seed_dir.relative_to(base)
        try:
            paths = plot_run(seed_dir, out_dir)
        except AsdcoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{len(paths)} plots in {out_dir}")


def _seed_dirs(run: Path) -> list[Path]:
    if (run / "summary.csv").exists() or features_files(run):
        return [run]
    found = sorted(d for d in run.glob("seed*") if d.is_dir())
    if not found:
        raise click.ClickException(f"{run}: no features.h5 in its machine folders or in seed* folders below it")
    return found
