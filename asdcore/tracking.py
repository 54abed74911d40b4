"""Optional MLflow tracking (``tracking: {mlflow: {uri, experiment}}``): one MLflow run per seed.

A run named ``<pipeline>/<dataset>/seed<k>`` holds the resolved config flattened into parameters (and
the seed), each training unit's ``train_log.csv`` as metrics with step = epoch (``train/<column>``, or
``train/<machine>/<column>`` when each machine type trains its own model), and every official score
of ``summary.csv`` (``official/<backend>/<subset>/all`` over the machine types,
``official/<backend>/<subset>/<machine>`` per machine type); ``table.md`` and the report are its
artifacts.

Everything is logged from the files the units wrote, by the reductions: a seed's summary unit writes
the seed's MLflow run afresh and deletes the one it replaces (so that no metric holds a step twice after
a rerun), the table unit adds the artifacts to every seed's run. Units that are up to date log nothing:
tracking is no input of any unit, so changing it redoes nothing.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import re
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import MLFLOW_MISSING, MlflowConfig
from .context import Context
from .errors import ArtifactError, AsdcoreError, ConfigError
from .store import fingerprint
from .table import read_summary

log = logging.getLogger("asdcore")

NOT_LOGGED = ("name", "output", "seeds", "audio_cache", "executor", "tracking")  # not what a run computes
SEED_TAG = "asdcore.seed_key"  # fingerprint of the seed folder: finds the MLflow run of a seed
FOLDER_TAG = "asdcore.folder"
_UNSAFE = re.compile(r"[^\w\-. /:]")  # characters MLflow refuses in names of metrics and parameters


def log_seed(ctx: Context, seed: int, machines: list[str]) -> None:
    """Write the MLflow run of ``seed`` afresh from its files (no-op without ``tracking.mlflow``): the
    config, the training logs of ``machines``' training units and the official scores."""
    cfg = ctx.resolved.config.tracking.mlflow
    if cfg is None:
        return
    with _errors(cfg, f"logging seed {seed}"):
        client = _client(cfg)
        experiment = _experiment(client, cfg, ctx)
        old = _runs(client, experiment, ctx, seed)
        run_id = client.create_run(experiment, run_name=run_name(ctx, seed), tags={
            SEED_TAG: _seed_key(ctx, seed), FOLDER_TAG: str(ctx.seed_dir(seed).absolute())}).info.run_id
        try:
            _write_run(client, run_id, ctx, seed, machines)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        for run in old:
            client.delete_run(run.info.run_id)
    log.info("seed %d: logged to MLflow run %s of %s", seed, run_id, cfg.uri)


def log_table(ctx: Context) -> None:
    """Add ``table.md`` and the report of the run folder to the MLflow run of every seed (written first
    where a seed has none); no-op without ``tracking.mlflow``."""
    cfg = ctx.resolved.config.tracking.mlflow
    if cfg is None:
        return
    from .report import write_report

    with tempfile.TemporaryDirectory(prefix="asdcore-tracking-") as folder:
        write_report([ctx.root], Path(folder) / "report.html", draw=False)  # no t-SNE per table rerun
        with _errors(cfg, "logging table.md and the report"):
            client = _client(cfg)
            experiment = _experiment(client, cfg, ctx)
            for seed in ctx.resolved.config.seeds:
                runs = _runs(client, experiment, ctx, seed)
                if not runs:
                    log_seed(ctx, seed, ctx.dataset.machines())
                    runs = _runs(client, experiment, ctx, seed)
                client.log_artifact(runs[0].info.run_id, str(ctx.root / "table.md"))
                client.log_artifacts(runs[0].info.run_id, folder)


def run_name(ctx: Context, seed: int) -> str:
    """``<pipeline>/<dataset>/seed<k>``: the name of the MLflow run of ``seed``."""
    return f"{ctx.resolved.config.name}/{ctx.dataset.id}/seed{seed}"


def params(config: Mapping[str, Any], seed: int) -> dict[str, str]:
    """The resolved config as ``dotted.key -> text`` (lists of mappings by index), without what does
    not change results (output folder, executor, tracking), and the seed."""
    flat = dict(_flatten({k: v for k, v in config.items() if k not in NOT_LOGGED}))
    flat["seed"] = str(seed)
    return flat


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}{_safe(key)}.")
    elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}{index}.")
    else:
        yield prefix[:-1], str(value)


def _write_run(client, run_id: str, ctx: Context, seed: int, machines: list[str]) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for key, value, step in _training_metrics(ctx, seed, machines)]
    metrics += [Metric(key, value, now, 0) for key, value in official_scores(ctx.seed_dir(seed) / "summary.csv")]
    client.log_batch(run_id, metrics=metrics,
                     params=[Param(k, v) for k, v in params(ctx.config, seed).items()])


def _training_metrics(ctx: Context, seed: int, machines: list[str]) -> Iterator[tuple[str, float, int]]:
    """``(key, value, epoch)`` of every number in the seed's training logs (epoch: the row's ``epoch``, else
    its index)."""
    if not ctx.trains:
        return
    shared = ctx.resolved.config.frontend.training.scope == "shared"
    for unit, _ in ctx.training_units(machines):
        path = ctx.train_dir(seed, unit) / "train_log.csv"
        prefix = "train/" if shared else f"train/{_safe(unit)}/"
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot read the training log ({exc.strerror}); rerun the pipeline, "
                                "which redoes its training unit") from None
        for index, row in enumerate(rows):
            step = int(float(row["epoch"])) if _is_number(row.get("epoch")) else index
            for column, text in row.items():
                if column != "epoch" and _is_number(text):
                    yield prefix + _safe(column), float(text), step


def official_scores(summary: Path) -> list[tuple[str, float]]:
    """``(key, value)`` of every official score in a ``summary.csv``: ``official/<backend>/<subset>/<machine>``,
    machine ``all`` for the score over the machine types."""
    return [("/".join(_safe(row[k]) for k in ("metric", "backend", "section", "machine")), float(row["value"]))
            for row in read_summary(summary) if row["metric"] == "official"]


def _is_number(text: str | None) -> bool:
    try:
        return text is not None and math.isfinite(float(text))
    except ValueError:
        return False


def _safe(name: Any) -> str:
    return _UNSAFE.sub("_", str(name))


def _seed_key(ctx: Context, seed: int) -> str:
    return fingerprint(str(ctx.seed_dir(seed).absolute()))


def _client(cfg: MlflowConfig):
    from mlflow.tracking import MlflowClient

    if urllib.parse.urlparse(cfg.uri).scheme in ("", "file") and cfg.uri != "databricks":
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses its file store unless asked
    return MlflowClient(cfg.uri)


def _experiment(client, cfg: MlflowConfig, ctx: Context) -> str:
    """The id of the configured experiment (default: the pipeline name), created when missing."""
    from mlflow.exceptions import MlflowException

    name = cfg.experiment or ctx.resolved.config.name
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowException:  # created meanwhile by a unit in another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise ConfigError(f"tracking.mlflow.experiment: the MLflow experiment {name!r} in {cfg.uri} is deleted; "
                          f"restore it (`mlflow experiments restore`) or name another one")
    return experiment.experiment_id


def _runs(client, experiment: str, ctx: Context, seed: int) -> list:
    """The active MLflow runs of ``seed``, newest first."""
    return client.search_runs([experiment], filter_string=f"tags.`{SEED_TAG}` = '{_seed_key(ctx, seed)}'",
                              order_by=["attributes.start_time DESC"])


@contextmanager
def _errors(cfg: MlflowConfig, what: str) -> Iterator[None]:
    """Turns the failures of MLflow (store unreachable or refusing) into an error naming the uri."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ConfigError(MLFLOW_MISSING) from None
    try:
        yield
    except MlflowException as exc:
        raise AsdcoreError(
            f"tracking.mlflow.uri {cfg.uri!r}: {what} failed: {exc.message}; check the tracking store (or remove "
            "tracking.mlflow from the pipeline) and rerun: the summaries and the table log again"
        ) from None
