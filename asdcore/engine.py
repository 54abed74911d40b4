"""The four stages (train, extract, score, evaluate) over seeds x machine types.

Each unit of work (one stage of one machine type of one seed) writes its artifacts atomically and
then a record holding the key of its inputs; a rerun skips units whose record matches and redoes
those whose inputs changed, so an interrupted run resumes without losing finished work.
"""
from __future__ import annotations

import csv
import io
import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from .config import Resolved
from .errors import ArtifactError, AsdcoreError, ConfigError
from .features import FeatureSet, load_features, save_features
from .interfaces import UNKNOWN, Clip, Dataset, Evaluation, Frontend, TrainData
from .registry import Registry, get_registry
from .store import Record, atomic_path, clean_stale, fingerprint, write_json, write_text
from .metrics import gamma_threshold
from .submission import DECISIONS, SCORES, TRAIN_KEY, read_groups, read_table, write_groups
from .table import write_summary, write_table

log = logging.getLogger("asdcore")

STAGES = ("train", "extract", "score", "evaluate")
BACKEND_SEED = 0  # backends are seeded like the reference's scoring step, independent of the run seed


def pick_device(choice: str) -> torch.device:
    """CUDA when present (``auto``), else CPU; asking for CUDA without one is an error."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device("cuda")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Pipeline:
    """A resolved pipeline bound to its dataset, ready to run stages."""

    resolved: Resolved
    registry: Registry
    dataset: Dataset
    device: torch.device
    progress: bool = True

    @classmethod
    def create(cls, resolved: Resolved, registry: Registry | None = None, progress: bool = True) -> Pipeline:
        registry = registry or get_registry()
        cfg = resolved.config
        dataset = registry.create("datasets", cfg.dataset.name, params=resolved.dataset_params, path="dataset")
        return cls(resolved, registry, dataset, pick_device(cfg.device), progress)

    @property
    def root(self) -> Path:
        cfg = self.resolved.config
        return Path(cfg.output) / cfg.name / self.dataset.id

    def run(self, stages: Sequence[str] = STAGES, force: bool = False) -> Path:
        """Run the given stages for every seed; write the table across seeds after ``evaluate``."""
        self.dataset.prepare(progress=self.progress)
        machines = self.dataset.machines()
        write_text(self.root / "config.yaml", yaml.safe_dump(self.resolved.as_dict(), sort_keys=False))
        write_json(self.root / "versions.json", self.registry.versions())
        seeds = self.resolved.config.seeds
        for seed in seeds:
            SeedRun(self, seed, machines, force).run(stages)
        if "evaluate" in stages:
            write_table(self.root, [self.root / f"seed{s}" for s in seeds])
        return self.root


class SeedRun:
    """The stages of one seed."""

    def __init__(self, pipeline: Pipeline, seed: int, machines: list[str], force: bool):
        self.p = pipeline
        self.seed = seed
        self.machines = machines
        self.force = force
        self.dir = pipeline.root / f"seed{seed}"
        cfg = pipeline.resolved.config
        self.frontend = self._new_frontend()
        self.spec = self.frontend.spec
        if not self.spec.needs_training and (cfg.frontend.loss or cfg.frontend.augmentations):
            raise ConfigError(
                f"frontend.loss/augmentations: frontend {cfg.frontend.name!r} needs no training; remove them"
            )
        data_params = {k: v for k, v in pipeline.resolved.dataset_params.items() if k != "machines"}
        self.dataset_key = fingerprint(
            cfg.dataset.name, data_params, pipeline.dataset.sample_rate, pipeline.dataset.clip_seconds
        )
        self._loaded_model: Path | None = None
        self._labels: tuple[dict, int] | None = None
        self.scorer = pipeline.registry.create("scorers", pipeline.resolved.scorer, path="scorer")

    def run(self, stages: Sequence[str]) -> None:
        clean_stale(self.dir)
        for stage in STAGES:
            if stage in stages:
                getattr(self, stage)()

    def _new_frontend(self) -> Frontend:
        r = self.p.resolved
        return self.p.registry.create(
            "frontends", r.config.frontend.name, params=r.frontend_params, path="frontend.params",
            sample_rate=self.p.dataset.sample_rate, clip_samples=self.p.dataset.clip_samples, device=self.p.device,
        )

    def _skip(self, record: Record, key: str) -> bool:
        return not self.force and record.matches(key)

    def _bar(self, items, desc: str):
        return tqdm(items, desc=f"seed {self.seed} {desc}", disable=not self.p.progress, leave=False)

    # -- train -----------------------------------------------------------------------------------
    def _train_units(self) -> list[tuple[str, list[str]]]:
        if self.p.resolved.config.frontend.training.scope == "shared":
            return [("shared", self.machines)]
        return [(m, [m]) for m in self.machines]

    def _model_dir(self, machine: str) -> Path:
        unit = "shared" if self.p.resolved.config.frontend.training.scope == "shared" else machine
        return self.dir / "frontend" / unit

    def _train_key(self, unit: str, machines: list[str]) -> str:
        r = self.p.resolved
        fe = r.as_dict()["frontend"]
        return fingerprint("train", self.dataset_key, unit, machines, fe, self.seed)

    def train(self) -> None:
        if not self.spec.needs_training:
            return
        r = self.p.resolved
        for unit, machines in self._train_units():
            directory = self.dir / "frontend" / unit
            record = Record(directory / "train.record.json")
            key = self._train_key(unit, machines)
            if self._skip(record, key):
                log.info("seed %d: frontend %s is trained; skipping", self.seed, unit)
                continue
            log.info("seed %d: training frontend %s on %s", self.seed, unit, ", ".join(machines))
            seed_everything(self.seed)
            frontend = self._new_frontend()
            cfg = r.config.frontend
            augs = [
                self.p.registry.create("augmentations", a.name, params=p)
                for a, p in zip(cfg.augmentations, r.augmentation_params)
            ]
            clips = [c for m in machines for c in self.p.dataset.clips(m, "train")]
            classes, num_classes = self._class_labels()
            work = directory / "work"
            if self.force:
                shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True, exist_ok=True)
            data = TrainData(
                clips=clips, load=self.p.dataset.load, clip_samples=self.p.dataset.clip_samples,
                labels=np.array([classes[c.path] for c in clips]), num_classes=num_classes, training=cfg.training,
                make_loss=self._loss_factory(), augmentations=augs, device=self.p.device, seed=self.seed, workdir=work,
            )
            frontend.fit(data)
            self._save_model(frontend, directory / "model")
            _write_csv(directory / "train_log.csv", data.log)
            write_text(directory / "config.yaml", yaml.safe_dump(r.as_dict(), sort_keys=False))
            record.write(key, ["model", "train_log.csv", "config.yaml"], {"frontend": r.as_dict()["frontend"]})
            self._loaded_model = None

    def _class_labels(self) -> tuple[dict, int]:
        if self._labels is None:
            self._labels = self.p.dataset.class_labels()
        return self._labels

    def _loss_factory(self):
        r = self.p.resolved
        loss = r.config.frontend.loss
        if loss is None:
            return None

        def make(embedding_dim: int, num_classes: int):
            return self.p.registry.create("losses", loss.name, params=r.loss_params, path="frontend.loss.params",
                                          embedding_dim=embedding_dim, num_classes=num_classes)

        return make

    @staticmethod
    def _save_model(frontend: Frontend, target: Path) -> None:
        tmp = target.parent / f".tmp-{target.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        frontend.save(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)

    # -- extract ---------------------------------------------------------------------------------
    def _extract_key(self, machine: str) -> str:
        r = self.p.resolved
        upstream = None
        if self.spec.needs_training:
            unit, machines = next(u for u in self._train_units() if machine in u[1])
            upstream = self._train_key(unit, machines)
        return fingerprint("extract", self.dataset_key, machine, r.config.frontend.name, r.frontend_params, upstream)

    def extract(self) -> None:
        for machine in self.machines:
            directory = self.dir / machine
            record = Record(directory / "extract.record.json")
            key = self._extract_key(machine)
            if self._skip(record, key):
                continue
            if self.spec.needs_training:
                self._require(Record(self._model_dir(machine) / "train.record.json"), self._train_key(
                    *next(u for u in self._train_units() if machine in u[1])), "train", machine)
                self._load_model(self._model_dir(machine) / "model")
            if not self._copy_from_other_seed(machine, key):
                log.info("seed %d: extracting %s", self.seed, machine)
                splits = {split: self._extract_split(machine, split) for split in ("train", "test")}
                save_features(directory / "features.h5", splits)
            record.write(key, ["features.h5"], {"machine": machine, "frontend": self.p.resolved.as_dict()["frontend"]})

    def _load_model(self, model_dir: Path) -> None:
        if self._loaded_model != model_dir:
            self.frontend.load(model_dir)
            self._loaded_model = model_dir

    def _copy_from_other_seed(self, machine: str, key: str) -> bool:
        """Features that do not depend on the seed are computed once and copied to other seeds."""
        if self.spec.needs_training:
            return False
        for other in sorted(self.p.root.glob(f"seed*/{machine}/extract.record.json")):
            if other.parent.parent != self.dir and Record(other).matches(key) and not self.force:
                with atomic_path(self.dir / machine / "features.h5") as tmp:
                    shutil.copyfile(other.parent / "features.h5", tmp)
                log.info("seed %d: %s features copied from %s", self.seed, machine, other.parent.parent.name)
                return True
        return False

    def _extract_split(self, machine: str, split: str) -> FeatureSet:
        clips = self.p.dataset.clips(machine, split)
        if not clips:
            raise AsdcoreError(f"{machine}: no {split} clips in {self.p.dataset.root}")
        ex = self.p.resolved.config.extraction
        loader = torch.utils.data.DataLoader(
            _Waves(clips, self.p.dataset), batch_size=ex.batch_size, shuffle=False, num_workers=ex.num_workers
        )
        embeddings, scores = [], []
        with torch.no_grad():
            for waves in self._bar(loader, f"extract {machine}/{split}"):
                out = self.frontend.extract(waves.to(self.p.device))
                embeddings.append(out.embedding.detach().float().cpu().numpy())
                if out.score is not None:
                    scores.append(out.score.detach().double().cpu().numpy())
        embedding = np.concatenate(embeddings)
        bad = ~np.isfinite(embedding).all(axis=1)
        if bad.any():
            raise AsdcoreError(
                f"{machine}/{split}: the frontend produced NaN or infinite embeddings for "
                f"{int(bad.sum())} clips, e.g. {clips[int(np.flatnonzero(bad)[0])].path}"
            )
        root = self.p.dataset.root
        return FeatureSet(
            embedding=embedding,
            path=[str(c.path.relative_to(root)) if c.path.is_relative_to(root) else str(c.path) for c in clips],
            section=[c.section for c in clips],
            domain=[c.domain for c in clips],
            is_anomaly=[c.is_anomaly for c in clips],
            attribute=[c.attribute for c in clips],
            frontend_score=np.concatenate(scores) if scores else None,
        )

    # -- score -----------------------------------------------------------------------------------
    def _score_key(self, machine: str, bid: str) -> str:
        name, params = self.p.resolved.backend_params[bid]
        return fingerprint("score", self._extract_key(machine), bid, name, params, self.p.resolved.scorer)

    def score(self) -> None:
        r = self.p.resolved
        for machine in self._bar(self.machines, "score"):
            directory = self.dir / machine
            self._require(Record(directory / "extract.record.json"), self._extract_key(machine), "extract", machine)
            features: dict[str, FeatureSet] = {}
            for bid, (name, params) in r.backend_params.items():
                record = Record(directory / bid / "score.record.json")
                key = self._score_key(machine, bid)
                if self._skip(record, key):
                    continue
                if not features:
                    log.info("seed %d: scoring %s", self.seed, machine)
                    features = {s: load_features(directory / "features.h5", s) for s in ("train", "test")}
                backend = self.p.registry.create("backends", name, params=params, path=f"backends.{bid}.params",
                                                 seed=BACKEND_SEED)
                backend.fit(features["train"])
                scores = {"test": backend.score(features["test"]), "train": backend.train_scores(features["train"])}
                for split, values in scores.items():
                    scores[split] = self._checked_scores(values, len(features[split]), f"backend {bid!r} on {machine} ({split})")
                test = features["test"]
                files = write_groups(directory / bid, SCORES, self.scorer.groups(machine, test), test.names, scores["test"])
                train = features["train"]
                write_groups(directory / bid, SCORES, {TRAIN_KEY: np.arange(len(train))}, train.names, scores["train"])
                record.write(key, [*files, f"{SCORES}_{TRAIN_KEY}.csv"],
                             {"machine": machine, "backend": {"name": name, "params": params}})

    @staticmethod
    def _checked_scores(values, n: int, where: str) -> np.ndarray:
        scores = np.asarray(values, dtype=np.float64)
        if scores.shape != (n,) or not np.isfinite(scores).all():
            bad = int((~np.isfinite(scores)).sum()) if scores.ndim else 0
            raise AsdcoreError(f"{where}: expected {n} finite scores, got shape {scores.shape} with {bad} non-finite values")
        return scores

    # -- evaluate --------------------------------------------------------------------------------
    def evaluate(self) -> None:
        """Decisions and official scores from the score files (always recomputed: cheap, and it
        reflects exactly the files a submission would contain)."""
        r = self.p.resolved
        percentile = r.config.evaluation.decision_percentile
        results: dict[str, list[Evaluation]] = {bid: [] for bid in r.backend_params}
        for machine in self.machines:
            test = load_features(self.dir / machine / "features.h5", "test")
            subsets = self.p.dataset.subsets(machine)
            groups = self.scorer.groups(machine, test)
            for bid in r.backend_params:
                directory = self.dir / machine / bid
                self._require(Record(directory / "score.record.json"), self._score_key(machine, bid), "score", machine)
                train_scores = np.array(list(read_table(directory / f"{SCORES}_{TRAIN_KEY}.csv").values()))
                threshold = gamma_threshold(train_scores, percentile)
                write_json(directory / "threshold.json", threshold)
                scores = read_groups(directory, SCORES, groups, test.names)
                write_groups(directory, DECISIONS, groups, test.names, (scores > threshold["threshold"]).astype(int))
                decisions = read_groups(directory, DECISIONS, groups, test.names)
                labelled = test.is_anomaly != UNKNOWN
                if not labelled.any():
                    log.info("seed %d: %s has no labelled test clips: scores and decisions written, not evaluated",
                             self.seed, machine)
                    continue
                evaluation = self.scorer.evaluate(
                    machine, test.select(labelled), scores[labelled], subsets, decisions[labelled]
                )
                _write_csv(directory / "evaluation.csv",
                           [{"section": s, "metric": m, "value": repr(float(v))} for s, m, v in evaluation.metrics])
                results[bid].append(evaluation)
        summary = {bid: (evs, self.scorer.aggregate(evs)) for bid, evs in results.items()}
        write_summary(self.dir / "summary.csv", summary)
        for bid, (_, aggregate) in summary.items():
            scores = ", ".join(f"{subset} {100 * stats['official']:.2f}%" for subset, stats in aggregate.items())
            log.info("seed %d: %s official score: %s", self.seed, bid, scores)
        if r.config.evaluation.plots:
            from .plots import plot_run

            plot_run(self.dir)

    def _require(self, record: Record, key: str, stage: str, machine: str) -> None:
        if not record.matches(key):
            raise ArtifactError(
                f"seed {self.seed}, {machine}: the {stage} stage's output is missing or stale "
                f"({record.path}); run `asdcore {stage}` (or `asdcore run`) first"
            )


class _Waves(torch.utils.data.Dataset):
    def __init__(self, clips: list[Clip], dataset: Dataset):
        self.clips = clips
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.dataset.read(self.clips[index]))


def _write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text(path, buffer.getvalue())
