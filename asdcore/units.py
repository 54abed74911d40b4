"""Executing one unit of the four stages: train, extract, score, evaluate.

Each function takes the unit and its context, writes the unit's artifacts atomically into
``unit.directory`` and returns their names (the record lists them).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from .audio import fit_length
from .audio_cache import CachedLoad
from .combination import combine
from . import distributed
from .context import BACKEND_SEED, Context, seed_everything
from .errors import ArtifactError, AsdcoreError
from .features import FeatureSet, group_name, load_features, load_view, save_features
from .interfaces import UNKNOWN, Clip, Evaluation, Frontend, Scorer, TrainData
from .metrics import gamma_threshold
from .plan import Unit
from .backend_warnings import backend_warnings
from .store import unreadable, write_json, write_text
from .submission import DECISIONS, SCORES, TRAIN_KEY, read_groups, read_table, write_groups

log = logging.getLogger("asdcore")

TRAIN_SCORES = f"{SCORES}_{TRAIN_KEY}.csv"
EVALUATION_JSON = "evaluation.json"


def train(unit: Unit, ctx: Context) -> list[str]:
    seed, machines = unit.args["seed"], unit.args["machines"]
    r, dataset = ctx.resolved, ctx.dataset
    log.info("seed %d: training frontend %s on %s", seed, unit.args["unit"], ", ".join(machines))
    seed_everything(seed)
    frontend = ctx.new_frontend(unit.args["clip_samples"])
    cfg = r.config.frontend
    augmentations = [ctx.registry.create("augmentations", a.name, params=p)
                     for a, p in zip(cfg.augmentations, r.augmentation_params)]
    clips = [c for m in machines for c in dataset.clips(m, "train")]
    classes, num_classes = dataset.class_labels()
    work = unit.directory / "work"
    work.mkdir(parents=True, exist_ok=True)
    data = TrainData(
        clips=clips, load=_loader(ctx, unit, machines, "train"), clip_samples=unit.args["clip_samples"],
        labels=np.array([classes[c.path] for c in clips]), num_classes=num_classes, training=cfg.training,
        make_loss=_loss_factory(ctx), augmentations=augmentations, device=ctx.device, seed=seed, workdir=work,
        identity=unit.checkpoint_identity,
    )
    frontend.fit(data)
    if not distributed.is_main():  # the other processes of a data-parallel training leave the artifacts to rank 0
        return []
    _save_model(frontend, unit.directory / "model")
    write_csv(unit.directory / "train_log.csv", data.log)
    write_text(unit.directory / "config.yaml", yaml.safe_dump(ctx.config, sort_keys=False))
    if not cfg.training.keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
        log.info("training finished: removed its checkpoints (%s); frontend.training.keep_checkpoints: true keeps "
                 "them", work)
    return ["model", "train_log.csv", "config.yaml"]


def _loader(ctx: Context, unit: Unit, machines: list[str], split: str,
            channels: str | None = None) -> Callable[[Clip], np.ndarray]:
    """``load(clip)`` for the clips of ``machines``/``split`` in channel choice ``channels`` (default: the
    dataset's): through the audio cache unless it is off."""
    if not ctx.resolved.config.audio_cache:
        return ctx.channel_load(channels)
    return CachedLoad({(m, split): ctx.audio_cache(m, split, unit.inputs.get(f"data {m}/{split}"), channels)
                       for m in machines})


def _loss_factory(ctx: Context):
    r = ctx.resolved
    loss = r.config.frontend.loss
    if loss is None:
        return None

    def make(embedding_dim: int, num_classes: int):
        return ctx.registry.create("losses", loss.name, params=r.loss_params, path="frontend.loss.params",
                                   embedding_dim=embedding_dim, num_classes=num_classes)

    return make


def _save_model(frontend: Frontend, target: Path) -> None:
    tmp = target.parent / f".tmp-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    frontend.save(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def extract(unit: Unit, ctx: Context) -> list[str]:
    seed, machine = unit.args["seed"], unit.args["machine"]
    log.info("%s: extracting %s", f"seed {seed}" if seed is not None else "all seeds", machine)
    clip_samples = unit.args["clip_samples"]
    frontend = ctx.new_frontend(clip_samples)
    if ctx.trains:
        frontend.load(ctx.model_dir(seed, machine))
    path = unit.directory / unit.outputs[0]
    views = ctx.resolved.views
    save_features(path, {group_name(split, view, views): _extract_split(ctx, frontend, machine, split,
                                                                       _loader(ctx, unit, [machine], split, view),
                                                                       clip_samples)
                         for view in views for split in ("train", "test")}, views)
    return list(unit.outputs)


def _extract_split(ctx: Context, frontend: Frontend, machine: str, split: str,
                   load: Callable[[Clip], np.ndarray], clip_samples: int) -> FeatureSet:
    dataset = ctx.dataset
    clips = dataset.clips(machine, split)
    if not clips:
        raise AsdcoreError(f"{machine}: no {split} clips in {dataset.root}")
    ex = ctx.resolved.config.extraction
    cuda = ctx.device.type == "cuda"
    loader = torch.utils.data.DataLoader(_Waves(clips, load, clip_samples),
                                         batch_size=ex.batch_size, shuffle=False, num_workers=ex.num_workers,
                                         pin_memory=cuda)
    precision = (torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16) if ex.precision == "bf16-mixed"
                 else nullcontext())
    embeddings, scores = [], []
    with torch.inference_mode():
        for waves in tqdm(loader, desc=f"extract {machine}/{split}", disable=not ctx.progress, leave=False):
            with precision:
                out = frontend.extract(waves.to(ctx.device, non_blocking=True))
            embeddings.append(out.embedding.float())
            if out.score is not None:
                scores.append(out.score.double())
        embedding = torch.cat(embeddings).cpu().numpy()  # one transfer (and wait) per split, not per batch
        frontend_score = torch.cat(scores).cpu().numpy() if scores else None
    bad = ~np.isfinite(embedding).all(axis=1)
    if bad.any():
        raise AsdcoreError(
            f"{machine}/{split}: the frontend produced NaN or infinite embeddings for "
            f"{int(bad.sum())} clips, e.g. {clips[int(np.flatnonzero(bad)[0])].path}"
        )
    root = dataset.root
    return FeatureSet(
        embedding=embedding,
        path=[str(c.path.relative_to(root)) if c.path.is_relative_to(root) else str(c.path) for c in clips],
        section=[c.section for c in clips],
        domain=[c.domain for c in clips],
        is_anomaly=[c.is_anomaly for c in clips],
        attribute=[c.attribute for c in clips],
        frontend_score=frontend_score,
    )


class _Waves(torch.utils.data.Dataset):
    def __init__(self, clips: list[Clip], load: Callable[[Clip], np.ndarray], clip_samples: int):
        self.clips = clips
        self.load = load
        self.clip_samples = clip_samples

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(fit_length(self.load(self.clips[index]), self.clip_samples))


def score(unit: Unit, ctx: Context) -> list[str]:
    seed, machine, bid = unit.args["seed"], unit.args["machine"], unit.args["backend"]
    name, params = ctx.resolved.backend_params[bid]
    view = ctx.resolved.backend_views[bid]
    features_path = ctx.features_path(seed, machine)
    features = {s: load_view(features_path, s, view["view"], view["alpha"]) for s in ("train", "test")}
    backend = ctx.registry.create("backends", name, params=params, path=f"backends.{bid}.params", seed=BACKEND_SEED)
    with backend_warnings(machine, bid):
        backend.fit(features["train"])
        scores = {"test": backend.score(features["test"]), "train": backend.train_scores(features["train"])}
    for split, values in scores.items():
        scores[split] = _checked_scores(values, len(features[split]), f"backend {bid!r} on {machine} ({split})")
    return _write_scores(unit, ctx, machine, features["test"], features["train"], scores)


def _write_scores(unit: Unit, ctx: Context, machine: str, test: FeatureSet, train_set: FeatureSet,
                  scores: dict[str, np.ndarray]) -> list[str]:
    """The test scores in the official files of the scorer's groups, and the train scores."""
    shutil.rmtree(unit.directory, ignore_errors=True)  # files of other groups (another scorer) must not linger
    scorer = ctx.registry.create("scorers", ctx.resolved.scorer, path="scorer")
    files = write_groups(unit.directory, SCORES, scorer.groups(machine, test), test.names, scores["test"])
    write_groups(unit.directory, SCORES, {TRAIN_KEY: np.arange(len(train_set))}, train_set.names, scores["train"])
    return [*files, TRAIN_SCORES]


def fuse(unit: Unit, ctx: Context) -> list[str]:
    """Channel score fusion: ``alpha·z(near) + (1 − alpha)·z(far)`` of two backends' stored scores, each
    z-normalised by the mean and standard deviation of its own training scores."""
    seed, machine, fid = unit.args["seed"], unit.args["machine"], unit.args["backend"]
    fusion = ctx.resolved.fusions[fid]
    features_path = ctx.features_path(seed, machine)
    features = {s: load_features(features_path, s) for s in ("train", "test")}
    groups = ctx.registry.create("scorers", ctx.resolved.scorer, path="scorer").groups(machine, features["test"])
    train_groups = {TRAIN_KEY: np.arange(len(features["train"]))}
    members = [ctx.backend_dir(seed, machine, member) for member in (fusion.near, fusion.far)]
    try:
        test, train = combine("mean_z", [read_groups(d, SCORES, groups, features["test"].names, written=True)
                                         for d in members],
                              [read_groups(d, SCORES, train_groups, features["train"].names, written=True)
                               for d in members],
                              [fusion.alpha, 1.0 - fusion.alpha])
    except ArtifactError as exc:
        raise ArtifactError(f"fusion {fid!r} on {machine}: {exc}") from None
    return _write_scores(unit, ctx, machine, features["test"], features["train"], {"test": test, "train": train})


def _checked_scores(values, n: int, where: str) -> np.ndarray:
    scores = np.asarray(values, dtype=np.float64)
    if scores.shape != (n,) or not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum()) if scores.ndim else 0
        raise AsdcoreError(f"{where}: expected {n} finite scores, got shape {scores.shape} with {bad} non-finite values")
    return scores


def evaluate(unit: Unit, ctx: Context) -> list[str]:
    """Decisions from the gamma-fitted threshold, then every metric of the machine type from the score
    files as they are on disk (exactly what a submission would contain)."""
    seed, machine = unit.args["seed"], unit.args["machine"]
    scorer = ctx.registry.create("scorers", ctx.resolved.scorer, path="scorer")
    test = load_features(ctx.features_path(seed, machine), "test")
    return evaluate_scores(unit.directory, scorer, machine, test, lambda: ctx.dataset.subsets(machine),
                           ctx.resolved.config.evaluation.decision_percentile, f"seed {seed}")


def evaluate_scores(directory: Path, scorer: Scorer, machine: str, test: FeatureSet,
                    subsets: Callable[[], dict[int, str]], percentile: float, where: str) -> list[str]:
    """Decisions and every metric of ``machine`` from the score files in ``directory`` (the test groups of
    ``scorer`` and the train scores); ``subsets()`` gives the section -> subset map. Returns the files
    written; test clips without labels get decisions but no evaluation."""
    groups = scorer.groups(machine, test)
    for stale in ("evaluation.csv", EVALUATION_JSON):
        (directory / stale).unlink(missing_ok=True)
    train_scores = np.array(list(read_table(directory / TRAIN_SCORES, written=True).values()))
    threshold = gamma_threshold(train_scores, percentile)
    write_json(directory / "threshold.json", threshold)
    scores = read_groups(directory, SCORES, groups, test.names, written=True)
    written = ["threshold.json", *write_groups(directory, DECISIONS, groups, test.names,
                                               (scores > threshold["threshold"]).astype(int))]
    decisions = read_groups(directory, DECISIONS, groups, test.names, written=True)
    labelled = test.is_anomaly != UNKNOWN
    if not labelled.any():
        log.info("%s: %s has no labelled test clips: scores and decisions written, not evaluated", where, machine)
        return written
    evaluation = scorer.evaluate(machine, test.select(labelled), scores[labelled], subsets(), decisions[labelled])
    write_csv(directory / "evaluation.csv",
              [{"section": s, "metric": m, "value": repr(float(v))} for s, m, v in evaluation.metrics])
    write_text(directory / EVALUATION_JSON, json.dumps(_evaluation_data(evaluation)))
    return [*written, "evaluation.csv", EVALUATION_JSON]


def _evaluation_data(evaluation: Evaluation) -> dict:
    return {"machine": evaluation.machine, "metrics": [list(m) for m in evaluation.metrics],
            "official": evaluation.official, "pooled": evaluation.pooled,
            "clips": {k: [y.tolist(), s.tolist()] for k, (y, s) in evaluation.clips.items()}}


def read_evaluation(path: Path) -> Evaluation:
    """The :class:`Evaluation` an evaluate unit stored; a damaged file is an :class:`ArtifactError` saying how
    to redo it."""
    try:
        data = json.loads(Path(path).read_text())
        return Evaluation(data["machine"], [tuple(m) for m in data["metrics"]], data["official"], data["pooled"],
                          {k: (np.asarray(y), np.asarray(s, dtype=np.float64)) for k, (y, s) in data["clips"].items()})
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable, not JSON, or not an evaluation's
        raise unreadable(path, exc) from None


def write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text(path, buffer.getvalue())


RUNNERS = {"train": train, "extract": extract, "score": score, "fuse": fuse, "evaluate": evaluate}
