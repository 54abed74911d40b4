"""``asdcore report``: one self-contained HTML page of finished runs.

Sections: the overview table of ``asdcore table`` (sortable), every metric of each machine type and section
(mean ± std over seeds), ROC curves, score histograms with the decision threshold and t-SNE maps
(:mod:`asdcore.plots`) of each run's first seed, and the training-loss curves of trained frontends. The page
fetches nothing when viewed: style and script are inline, plots PNG data URIs, loss curves inline SVG.
"""
from __future__ import annotations

import base64
import csv
import html
import importlib.util
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np
import yaml

from .errors import ArtifactError, AsdcoreError
from .overview import Overview, Row, collect, overview
from .store import write_text
from .table import ALL

log = logging.getLogger("asdcore")

PLOTS_HINT = "pip install 'asdcore[plots]'"
AUC_METRICS = ("s_auc", "s_pauc", "t_auc", "t_pauc", "smix_auc", "tmix_auc", "mix_auc", "mix_pauc")
OFFICIAL = "official"
COMPLETE = "complete"  # a flag, shown as "(incomplete)" next to the machine, not as a column
COLOURS = ("#0969da", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989", "#57606a")
SECTIONS = {"overview": "Overview", "metrics": "Metrics per machine type and section",
            "plots": "ROC curves, score histograms and embedding maps", "training": "Training loss"}


@dataclass
class Run:
    """The seed folders of one pipeline on one dataset (``<output>/<pipeline>/<dataset>``) and their rows."""

    folder: Path
    seeds: list[Path]
    rows: list[Row]

    @property
    def title(self) -> str:
        return f"{self.rows[0].pipeline} / {self.rows[0].dataset}"


def write_report(paths: Sequence[Path], output: Path, metric: str = OFFICIAL, draw: bool = True) -> Path:
    """Write the report of ``paths`` (output roots, grid, pipeline, dataset or seed folders) to ``output``
    (an HTML file); return ``output``. ``metric``: the overview table's, as for ``asdcore table``; ``draw``:
    draw the figures the runs' ``plots`` units did not (else only theirs are shown)."""
    output = Path(output)
    write_text(output, render_report(paths, metric, draw))
    return output


def render_report(paths: Sequence[Path], metric: str = OFFICIAL, draw: bool = True) -> str:
    """The report's HTML (see the module)."""
    from . import __version__

    rows = collect(expand_grids(paths))
    table = overview(rows, metric)
    runs = _runs(rows)
    sections = {"overview": _overview_section(table, runs), "metrics": _metrics_section(runs),
                "plots": _plots_section(runs, draw), "training": _training_section(runs)}
    title = f"asdcore report: {runs[0].title}" if len(runs) == 1 else f"asdcore report: {len(runs)} runs"
    seeds = sum(len(run.seeds) for run in runs)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    template = Template(resources.files(__package__).joinpath("report_template.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=_e(title),
        subtitle=_e(f"{len(runs)} run(s), {seeds} seed folder(s); generated {generated} with asdcore {__version__}"),
        nav="".join(f'<a href="#{key}">{_e(name)}</a>' for key, name in SECTIONS.items()),
        body="\n".join(f'<section id="{key}">\n<h2>{_e(SECTIONS[key])}</h2>\n{text}\n</section>'
                       for key, text in sections.items()),
    )


def expand_grids(paths: Sequence[Path]) -> list[Path]:
    """``paths`` with each grid folder (``<output>/grids/<name>``, holding the ``grid.yaml`` that ``asdcore grid``
    writes) replaced by its pipelines' folders ``<output>/<pipeline>`` (and ``<pipeline>_seeds``, the seed
    ensembles, when the grid made them)."""
    expanded = []
    for path in map(Path, paths):
        record = path / "grid.yaml"
        if not record.is_file():
            expanded.append(path)
            continue
        try:
            described = yaml.safe_load(record.read_text())
            names = list(dict.fromkeys(pipeline["name"] for pipeline in described["pipelines"]))
            ensembles = bool(described["grid"].get("seed_ensemble"))
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(f"{record}: not the grid record `asdcore grid` writes ({exc!r}); rerun the grid, "
                                "or give the folders of its pipelines instead") from None
        output = path.parent.parent
        folders = [output / name for name in names] + [output / f"{name}_seeds" for name in names if ensembles]
        found = [folder for folder in folders if folder.is_dir()]
        if not found:
            raise ArtifactError(f"{record}: none of its pipelines' folders ({', '.join(names)}) is in {output}; "
                                "run `asdcore grid` first")
        expanded += found
    return expanded


def _runs(rows: list[Row]) -> list[Run]:
    groups: dict[Path, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.run.parent, []).append(row)
    return [Run(folder, sorted({row.run for row in group}, key=lambda p: _natural(p.name)), group)
            for folder, group in groups.items()]


# -- overview ---------------------------------------------------------------------------------------------
def _overview_section(table: Overview, runs: list[Run]) -> str:
    counts = {cell.n for cells in table.cells.values() for cell in cells.values()}
    seeds = f"{min(counts)} seed(s)" if len(counts) == 1 else "n seeds per cell"
    columns = [f"{dataset} {subset}" for dataset, subset in table.columns]
    head = _head(["pipeline", "backend"], [*columns, "hmean", "amean"])
    values = {recipe: [cells.get(column) for column in table.columns] for recipe, cells in table.cells.items()}
    best = [max((v[i].mean for v in values.values() if v[i] is not None), default=None) for i in range(len(columns))]
    best += [max(table.hmean(r) for r in table.cells), max(table.amean(r) for r in table.cells)]
    body = []
    for recipe, cells in values.items():
        tds = [_td(cell and cell.mean, cell and cell.std, cell.n if cell else 0, show_std=max(counts) > 1,
                   show_n=len(counts) > 1, best=cell is not None and cell.mean == best[i])
               for i, cell in enumerate(cells)]
        tds += [_td(value, best=value == best[i]) for i, value in
                enumerate((table.hmean(recipe), table.amean(recipe)), start=len(columns))]
        body.append(f'<tr>{_text(recipe[0])}{_text(recipe[1])}{"".join(tds)}</tr>')
    runs_table = _table(_head(["pipeline / dataset", "seeds", "folder"], []), [
        f'<tr>{_text(run.title)}{_text(", ".join(s.name for s in run.seeds))}{_text(str(run.folder))}</tr>'
        for run in runs])
    return (f'<p class="note">{_e(table.metric)} (%): mean ± std over {seeds}; hmean and amean over each row\'s '
            "subset means. Click a column header to sort; the best value of each column is bold.</p>\n"
            + _table(head, body) + "\n<h3>Runs</h3>\n" + runs_table)


# -- metrics per machine type and section -----------------------------------------------------------------
def _metrics_section(runs: list[Run]) -> str:
    parts = ['<p class="note">Every metric of each run\'s summary.csv in %, mean ± std over its seeds. Rows in '
             "italics are a machine type's subset means (its official score); rows of machine <b>all</b> hold each "
             "subset's official score over all machine types.</p>"]
    for run in runs:
        values: dict[tuple[str, str, str], dict[str, list[float]]] = {}
        for row in run.rows:
            values.setdefault((row.backend, row.machine, row.section), {}).setdefault(row.metric, []).append(row.value)
        metrics = list(dict.fromkeys(row.metric for row in run.rows if row.metric != COMPLETE))
        auc = [m for m in AUC_METRICS if m in metrics] + [m for m in metrics if "auc" in m and m not in AUC_METRICS]
        auc += [OFFICIAL] if OFFICIAL in metrics else []
        other = [m for m in metrics if m not in auc]
        keys = sorted(values, key=lambda key: _row_order(key, values[key]))
        parts.append(f"<h3>{_e(run.title)}</h3>")
        parts.append(_metric_table(keys, values, auc, len(run.seeds), coloured=True))
        if other:
            parts.append(f"<details><summary>{_e(run.title)}: other metrics ({_e(', '.join(other))})</summary>"
                         f"{_metric_table(keys, values, other, len(run.seeds), coloured=False)}</details>")
    return "\n".join(parts)


def _row_order(key: tuple[str, str, str], metrics: dict[str, list[float]]) -> tuple:
    """Machine ``all`` first, then the machine types; a machine's sections before its subset rows."""
    backend, machine, section = key
    return machine != ALL, _natural(machine), OFFICIAL in metrics, _natural(section)


def _metric_table(keys, values, metrics: list[str], n_seeds: int, coloured: bool) -> str:
    body = []
    for backend, machine, section in keys:
        found = values[backend, machine, section]
        if not any(m in found for m in metrics):
            continue
        label = machine + (" (incomplete)" if min(found.get(COMPLETE, [1.0])) < 1 else "")
        cells = []
        for metric in metrics:
            cell = found.get(metric)
            mean = float(np.mean(cell)) if cell else None
            std = float(np.std(cell, ddof=1)) if cell and len(cell) > 1 else 0.0
            cells.append(_td(mean, std, len(cell or []), show_std=n_seeds > 1, colour=coloured))
        subset = ' class="subset"' if OFFICIAL in found and machine != ALL else ""
        body.append(f"<tr{subset}>{_text(backend)}{_text(label)}{_text(section)}{''.join(cells)}</tr>")
    return _table(_head(["backend", "machine", "section"], metrics), body)


# -- plots ------------------------------------------------------------------------------------------------
def _plots_section(runs: list[Run], draw: bool) -> str:
    from .plots import features_files

    can_draw = _has_matplotlib()
    draw = draw and can_draw
    parts, undrawn = [], False
    for run in runs:
        seed = next((s for s in run.seeds if features_files(s)), None)
        if seed is None:
            parts.append(f'<h3>{_e(run.title)}</h3><p class="note">No features.h5 for its seed folders, so nothing '
                         "to plot (ensembles have none).</p>")
            continue
        parts.append(f"<h3>{_e(run.title)}: {_e(seed.name)}</h3>")
        if len(run.seeds) > 1:
            parts.append(f'<p class="note">The first of {len(run.seeds)} seeds.</p>')
        for index, (machine, features) in enumerate(sorted(features_files(seed).items())):
            try:
                figures = _machine_figures(seed, machine, features, draw)
            except AsdcoreError as exc:
                log.warning("report: no plots of %s: %s", seed / machine, exc)
                parts.append(f'<p class="error">{_e(machine)}: no plots: {_e(str(exc))}</p>')
                continue
            undrawn |= any(png is None for row in figures for _, png in row)
            images = "".join(f'<div class="figures">{"".join(_image(c, png) for c, png in row if png)}</div>'
                             for row in figures if any(png for _, png in row))
            if images:
                parts.append(f'<details{" open" if index == 0 else ""}><summary>{_e(machine)}</summary>'
                             f"{images}</details>")
    if undrawn and not can_draw:
        parts.insert(0, f'<p class="hint">Plots need matplotlib: <code>{_e(PLOTS_HINT)}</code>, then rerun '
                        "<code>asdcore report</code>.</p>")
    return "\n".join(parts)


def _machine_figures(seed_dir: Path, machine: str, features: Path,
                     draw: bool) -> list[list[tuple[str, bytes | None]]]:
    """Rows of (caption, PNG): the t-SNE map of ``machine``, then per backend its ROC curves and score histogram.

    A PNG the run's ``plots`` unit wrote is taken when it is newer than its inputs; the others are drawn
    when ``draw`` (matplotlib is installed), else None."""
    from .features import load_features
    from .plots import (backend_dirs, embedding_figure, histogram_figure, read_backend_scores, read_threshold,
                        roc_figure, score_files)

    plots, machine_dir, loaded = seed_dir / "plots", seed_dir / machine, {}

    def split(name: str):
        if name not in loaded:
            loaded[name] = load_features(features, name)
        return loaded[name]

    embedding = _cached(plots / f"embedding_{machine}.png", [features])
    if embedding is None and draw:
        embedding = _png(embedding_figure(split("train"), split("test"), machine))
    figures = [[(f"{machine}: t-SNE of train and test embeddings", embedding)]]
    for backend_dir in backend_dirs(machine_dir) if machine_dir.is_dir() else []:
        backend, title = backend_dir.name, f"{machine} / {backend_dir.name}"
        inputs = [features, *score_files(backend_dir), backend_dir / "threshold.json"]
        roc = _cached(plots / f"roc_{machine}_{backend}.png", inputs)
        histogram = _cached(plots / f"hist_{machine}_{backend}.png", inputs)
        if (roc is None or histogram is None) and draw:
            scores = read_backend_scores(backend_dir, split("test"))
            roc = roc or _png(roc_figure(split("test"), scores, title))
            histogram = histogram or _png(histogram_figure(split("test"), scores, read_threshold(backend_dir), title))
        figures.append([(f"{title}: ROC", roc), (f"{title}: score histogram and decision threshold", histogram)])
    return figures


def _image(caption: str, png: bytes) -> str:
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _cached(png: Path, inputs: list[Path]) -> bytes | None:
    """The bytes of ``png`` when it exists and is at least as new as every existing input, else None."""
    if not png.is_file():
        return None
    newest = max((p.stat().st_mtime for p in inputs if p.exists()), default=0.0)
    return png.read_bytes() if png.stat().st_mtime >= newest else None


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


# -- training loss ----------------------------------------------------------------------------------------
def _training_section(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        logs: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for seed in run.seeds:
            for path in sorted(seed.glob("frontend/*/train_log.csv")):
                try:
                    logs.setdefault(path.parent.name, []).append((seed.name, *_read_log(path)))
                except ArtifactError as exc:
                    log.warning("report: %s", exc)
                    parts.append(f'<p class="error">{_e(str(exc))}</p>')
        for scope, curves in logs.items():
            legend = " ".join(f'<span style="color:{COLOURS[i % len(COLOURS)]}">&#9632;</span> {_e(name)} '
                              f"({len(epochs)} epochs, last loss {losses[-1]:.4g})"
                              for i, (name, epochs, losses) in enumerate(curves))
            parts.append(f"<figure>{_loss_svg(curves)}<figcaption><b>{_e(run.title)}</b>, frontend {_e(scope)}: "
                         f"{legend}</figcaption></figure>")
    if not parts:
        return ('<p class="note">No trained frontend in these runs (a training writes '
                "seed&lt;k&gt;/frontend/&lt;scope&gt;/train_log.csv).</p>")
    return '<div class="figures">' + "\n".join(parts) + "</div>"


def _read_log(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and losses of a ``train_log.csv`` (columns ``epoch``, ``loss``, ...)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        epochs = np.array([float(row["epoch"]) for row in rows])
        losses = np.array([float(row["loss"]) for row in rows])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a training log with columns epoch and loss ({exc!r}); "
                            "rerun the training (`asdcore train PIPELINE --force`) to write it again") from None
    if not len(rows):
        raise ArtifactError(f"{path}: a training log without epochs; rerun the training to write it again")
    return epochs, losses


def _loss_svg(curves: list[tuple[str, np.ndarray, np.ndarray]], width: int = 520, height: int = 260) -> str:
    """Loss against epoch, one polyline per curve, on shared axes."""
    left, right, top, bottom = 64, 14, 12, 38
    xs = np.concatenate([c[1] for c in curves])
    ys = np.concatenate([c[2] for c in curves])
    ys = ys[np.isfinite(ys)] if np.isfinite(ys).any() else np.zeros(1)
    x0, x1 = (xs.min(), xs.max()) if xs.max() > xs.min() else (xs.min() - 0.5, xs.max() + 0.5)
    pad = 0.05 * (ys.max() - ys.min()) or 0.05 * abs(ys.max()) or 1.0
    y0, y1 = ys.min() - pad, ys.max() + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    out = [f'<svg class="loss" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
           'fill="none" stroke="#d0d7de"/>']
    for y in (ys.min(), (ys.min() + ys.max()) / 2, ys.max()):
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.4g}</text>')
    for x in sorted({float(x) for x in np.round(np.linspace(xs.min(), xs.max(), min(5, len(set(xs)))))}):
        out.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">epoch</text>')
    out.append(f'<text x="14" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(top + height - bottom) / 2})">loss</text>')
    for i, (_, epochs, losses) in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        finite = np.isfinite(losses)
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(epochs[finite], losses[finite]))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>'
                for x, y in zip(epochs[finite], losses[finite])]
    return "".join(out) + "</svg>"


# -- HTML pieces ------------------------------------------------------------------------------------------
def _e(text: str) -> str:
    return html.escape(str(text))


def _natural(text: str) -> list:
    """Sort key that orders ``seed2`` before ``seed10``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def _table(head: str, body: list[str]) -> str:
    return f'<div class="wide"><table class="sortable"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'


def _head(text_columns: list[str], value_columns: list[str]) -> str:
    return ("<tr>" + "".join(f'<th class="text">{_e(c)}</th>' for c in text_columns)
            + "".join(f"<th>{_e(c)}</th>" for c in value_columns) + "</tr>")


def _text(value: str) -> str:
    return f'<td class="text">{_e(value)}</td>'


def _td(mean: float | None, std: float = 0.0, n: int = 1, show_std: bool = False, show_n: bool = False,
        colour: bool = False, best: bool = False) -> str:
    """A cell of a value in [0, 1], shown in %; sorted by its mean; ``colour``: red at 0.5 and below to green at 1."""
    if mean is None or not np.isfinite(mean):
        return '<td data-value="">–</td>'
    spread = (f" ± {100 * std:.2f}" if show_std else "") + (f" (n={n})" if show_n else "")
    style = f' style="background:hsl({120 * min(max(2 * mean - 1, 0), 1):.0f},65%,88%)"' if colour else ""
    best_class = ' class="best"' if best else ""
    return (f'<td data-value="{mean!r}" title="n={n}"{best_class}{style}>{100 * mean:.2f}'
            + (f'<span class="std">{_e(spread)}</span>' if spread else "") + "</td>")
