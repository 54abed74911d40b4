"""Conformance checks for every kind of component, toy components, and data-parallel training of
recipes, for any plugin's tests (no pytest needed).

Each kind has a tuple of checks and a function that runs them all and raises one ``AssertionError``
listing every failure, each naming the component and what failed:

========================  ==========================  ====================================================
kind                      runs all                    checks
========================  ==========================  ====================================================
backends                  :func:`check_backend`       :data:`CHECKS` (also :data:`BACKEND_CHECKS`)
frontends                 :func:`check_frontend`      :data:`FRONTEND_CHECKS` on a :func:`prepare_frontend`
losses                    :func:`check_loss`          :data:`LOSS_CHECKS`
datasets                  :func:`check_dataset`       :data:`DATASET_CHECKS`
scorers                   :func:`check_scorer`        :data:`SCORER_CHECKS`
augmentations             :func:`check_augmentation`  :data:`AUGMENTATION_CHECKS`
executors                 :func:`check_executor`      (one check)
========================  ==========================  ====================================================

A component is given by its registered name (built through the process-wide registry) or by its class,
with optional params. Backend checks run on tiny seeded synthetic embeddings::

    from asdcore.testing import CHECKS, check_backend

    def test_conformance():
        check_backend("mahalanobis", params={"shrinkage": 0.1})

    @pytest.mark.parametrize("check", CHECKS)   # or one test per check
    def test_each(check):
        check("mahalanobis")

:class:`ToyDataset`, :class:`ToyFrontend`, :class:`ToyTrainedFrontend`, :class:`ToyLoss` and :class:`ToyBackend`
are small conforming components; :func:`only_plugins` registers them (all named ``toy``, the trained frontend
``toy_trained``) beside the core and the named plugins alone, so that a plugin's tests need only the core
and the plugin itself; :func:`run_cli` runs the command line in process.

:func:`train_data_parallel` trains the frontends of pipelines as several data-parallel CPU processes, as
``devices: N`` does, to check that a frontend (and its loss) trains under DDP.

:func:`check_executor` runs a small graph of probe units on an executor and checks the executor
contract (each unit once, after its upstream units; a failure blocks only what depends on it).
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydantic

from .errors import AsdcoreError, ConfigError
from .features import FeatureSet
from .interfaces import (
    ANOMALY, BLOCKED, DONE, FAILED, NORMAL, SOURCE, TARGET, UNKNOWN, Backend, Clip, Dataset, DatasetParams, Evaluation,
    Executor, Frontend, FrontendOutput, FrontendSpec, Outcome, TrainData,
)
from .params import Params, validate
from .registry import KINDS, LOAD_ENV, SINGULAR, TOYS, Registry, get_registry, use_registry

__all__ = [
    "AUGMENTATION_CHECKS", "BACKEND_CHECKS", "CHECKS", "DATASET_CHECKS", "FRONTEND_CHECKS", "FrontendUnderTest",
    "LOSS_CHECKS", "ProbeUnit", "SCORER_CHECKS", "Synthetic", "TOYS", "ToyBackend", "ToyDataset", "ToyFrontend",
    "ToyLoss", "ToyTrainedFrontend", "check_anomalies_score_higher", "check_augmentation",
    "check_augmentation_batch", "check_augmentation_class", "check_augmentation_deterministic", "check_backend",
    "check_constructible", "check_dataset", "check_dataset_audio", "check_dataset_class", "check_dataset_clips",
    "check_dataset_lengths", "check_dataset_scorer", "check_deterministic", "check_empty_training_is_an_error",
    "check_executor", "check_fit_score", "check_frontend", "check_frontend_batch_independent",
    "check_frontend_class", "check_frontend_deterministic", "check_frontend_devices", "check_frontend_output",
    "check_frontend_save_load", "check_frontend_scores", "check_frontend_training", "check_loss",
    "check_loss_class", "check_loss_finite", "check_missing_target_domain", "check_non_finite_is_an_error",
    "check_scorer", "check_scorer_class", "check_scorer_groups", "check_scorer_ranking", "check_train_scores",
    "create_backend", "create_component", "only_plugins", "prepare_frontend", "probe_job", "probe_units", "run_cli",
    "synthetic", "toy_tones", "toy_train_data", "toy_waves", "train_data_parallel"
]

BackendRef = str | type[Backend]
ComponentRef = str | type
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
EMPTY_WORDS = re.compile(r"\b(empty|no|zero|0|none)\b", re.IGNORECASE)
NON_FINITE_WORDS = re.compile(r"nan|finite|infinit", re.IGNORECASE)


@dataclass(frozen=True)
class Synthetic:
    """Tiny embeddings of one machine type: two sections, source and target domains.

    ``train``: normal clips; ``test``: new normal clips and far-away anomalies (``is_anomaly`` 0/1);
    ``copies_and_outliers``: copies of every training embedding (normal) followed by far-away ones.
    ``frontend_score`` is the distance to the common centre, so it too ranks anomalies higher.
    """

    train: FeatureSet
    test: FeatureSet
    copies_and_outliers: FeatureSet


def synthetic(seed: int = 0, dim: int = 12, n_source: int = 16, n_target: int = 3, n_test: int = 6) -> Synthetic:
    """Seeded embeddings clustered around a centre per section and domain; anomalies lie on the
    opposite side of the origin, so they are far in Euclidean and in cosine distance alike."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=dim)
    centre *= 4.0 / np.linalg.norm(centre)

    def cluster(section: int, domain: int, n: int) -> np.ndarray:
        shift = np.sin(np.arange(dim) * (1.0 + section) + domain) * (0.4 + 0.4 * domain)
        return centre + shift + 0.3 * rng.normal(size=(n, dim))

    def features(parts: list[tuple[np.ndarray, int, int, int]], prefix: str) -> FeatureSet:
        embedding = np.concatenate([p[0] for p in parts])
        meta = np.concatenate([np.repeat([p[1:]], len(p[0]), axis=0) for p in parts])
        names = [f"section_{s:02d}_{'source' if d == SOURCE else 'target'}_{prefix}_{i:04d}.wav"
                 for i, (s, d, _) in enumerate(meta)]
        return FeatureSet(embedding=embedding, path=names, section=meta[:, 0], domain=meta[:, 1],
                          is_anomaly=meta[:, 2], attribute=[f"a{d}" for d in meta[:, 1]],
                          frontend_score=np.linalg.norm(embedding - centre, axis=1))

    train, test = [], []
    for section in (0, 1):
        for domain, n in ((SOURCE, n_source), (TARGET, n_target)):
            train.append((cluster(section, domain, n), section, domain, NORMAL))
            test.append((cluster(section, domain, n_test), section, domain, NORMAL))
            test.append((-cluster(section, domain, n_test), section, domain, ANOMALY))
    outliers = [(-cluster(0, domain, n_test), 0, domain, ANOMALY) for domain in (SOURCE, TARGET)]
    return Synthetic(features(train, "train"), features(test, "test"), features(train + outliers, "copy"))


def create_backend(backend: BackendRef, params: Mapping[str, Any] | None = None, seed: int = 0) -> Backend:
    """A fresh instance: by registered name through the process-wide registry, or from a class."""
    return create_component("backends", backend, params, seed=seed)


def _class_of(kind: str, component: ComponentRef) -> type:
    return get_registry().get(kind, component).cls if isinstance(component, str) else component


def _params_of(kind: str, component: ComponentRef, params: Mapping[str, Any] | None) -> Params:
    """``params`` validated against the component's ``Params`` (a ConfigError names ``<kind>.<name>.params``)."""
    cls = _class_of(kind, component)
    name = component if isinstance(component, str) else cls.__name__
    return validate(cls.Params, dict(params or {}), f"{kind}.{name}.params")


def create_component(kind: str, component: ComponentRef, params: Mapping[str, Any] | None = None,
                     **context: Any) -> Any:
    """A fresh instance of a component of ``kind`` (``frontends``, ``losses``, ``datasets``, ...): by registered
    name through the process-wide registry, or from a class; ``context`` are the constructor's keyword
    arguments (``seed`` of backends, ``embedding_dim`` and ``num_classes`` of losses, ...)."""
    return _class_of(kind, component)(_params_of(kind, component, params), **context)


def _label(component: ComponentRef, kind: str = "backend") -> str:
    return f"{kind} {component!r}" if isinstance(component, str) else f"{kind} class {component.__name__}"


def _ensure(condition: Any, message: str) -> None:
    """Raise AssertionError with ``message`` unless ``condition`` holds (unlike ``assert``, kept under -O)."""
    if not condition:
        raise AssertionError(message)


def _guarded(describe: Callable[[Any], str]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a check so that any other exception it meets becomes an AssertionError naming the component
    (``describe(first argument)``)."""

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(func)
        def check(subject: Any, *args: Any, **kwargs: Any) -> None:
            try:
                func(subject, *args, **kwargs)
            except AssertionError:
                raise
            except Exception as exc:
                raise AssertionError(f"{describe(subject)}: {type(exc).__name__} raised: {exc}") from exc

        return check

    return decorate


_check = _guarded(_label)


def _check_class(kind: str, component: ComponentRef, params: Mapping[str, Any] | None) -> type:
    """Registered under a lower_snake name as a subclass of the kind's base class, with ``Params`` that
    accept ``params`` and reject an unknown key with a ConfigError. Returns the class."""
    label, base = _label(component, SINGULAR[kind]), KINDS[kind][1]
    cls = component
    if isinstance(component, str):
        names = get_registry().names(kind)
        _ensure(component in names, f"{label} is not registered; registered {kind}: {', '.join(names) or '(none)'}")
        _ensure(NAME.match(component), f"{label}: registered names must be lower_snake_case")
        cls = get_registry().get(kind, component).cls
    _ensure(isinstance(cls, type) and issubclass(cls, base), f"{label} is not a subclass of asdcore.{base.__name__}")
    _params_of(kind, component, params)
    try:
        _params_of(kind, component, {**(params or {}), "no_such_parameter_xyz": 1})
    except ConfigError:
        pass
    else:
        raise AssertionError(f"{label}: an unknown parameter was accepted; derive Params from asdcore.Params")
    return cls


def _run_checks(label: str, checks: Sequence[Callable[..., None]], *args: Any, **kwargs: Any) -> None:
    """Run every check; raise one AssertionError listing all that failed."""
    failures = []
    for check in checks:
        try:
            check(*args, **kwargs)
        except AssertionError as exc:
            failures.append(f"{check.__name__}: {exc}")
    if failures:
        raise AssertionError(
            f"{label} failed {len(failures)} of {len(checks)} conformance checks:\n- " + "\n- ".join(failures)
        )


def _fitted(backend: BackendRef, params: Mapping[str, Any] | None, train: FeatureSet, seed: int = 0) -> Backend:
    instance = create_backend(backend, params, seed)
    instance.fit(train)
    return instance


def _check_scores(scores: Any, n: int, what: str) -> np.ndarray:
    _ensure(isinstance(scores, np.ndarray), f"{what}: expected a numpy array, got {type(scores).__name__}")
    _ensure(scores.shape == (n,), f"{what}: expected shape ({n},) (one score per clip), got {scores.shape}")
    _ensure(np.issubdtype(scores.dtype, np.floating), f"{what}: expected float scores, got dtype {scores.dtype}")
    bad = int((~np.isfinite(scores)).sum())
    _ensure(bad == 0, f"{what}: {bad} of {n} scores are NaN or infinite")
    return scores


def _expect_error(call: Callable[[FeatureSet], Any], features: FeatureSet, words: re.Pattern, what: str) -> None:
    try:
        call(features)
    except AsdcoreError as exc:
        _ensure(words.search(str(exc)), f"{what}: the AsdcoreError does not name the problem: {str(exc)!r}")
    except Exception as exc:
        raise AssertionError(f"{what}: expected an asdcore.AsdcoreError, got {type(exc).__name__}: {exc}") from exc
    else:
        raise AssertionError(f"{what}: expected an asdcore.AsdcoreError, nothing was raised")


@_check
def check_constructible(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """Registered under a lower_snake name as a Backend subclass; builds from ``params`` and rejects an
    unknown parameter with a ConfigError."""
    _check_class("backends", backend, params)
    instance = create_backend(backend, params)
    _ensure(isinstance(instance, Backend), f"{_label(backend)}: created a {type(instance).__name__}, not an "
                                           "asdcore.Backend")


@_check
def check_fit_score(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """``fit`` then ``score`` gives one finite float per test clip and leaves the inputs unchanged."""
    label, data = _label(backend), synthetic()
    train_before, test_before = data.train.embedding.copy(), data.test.embedding.copy()
    instance = _fitted(backend, params, data.train)
    _check_scores(instance.score(data.test), len(data.test), f"{label}: score()")
    _ensure(np.array_equal(data.train.embedding, train_before), f"{label}: fit() modified the train embeddings")
    _ensure(np.array_equal(data.test.embedding, test_before), f"{label}: score() modified the test embeddings")


@_check
def check_deterministic(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """Two fresh instances with the same seed give identical scores; refitting gives them again."""
    label, data = _label(backend), synthetic()
    first = _fitted(backend, params, data.train, seed=3)
    scores = _check_scores(first.score(data.test), len(data.test), f"{label}: score()")
    fresh = synthetic()
    again = _fitted(backend, params, fresh.train, seed=3).score(fresh.test)
    again = _check_scores(again, len(fresh.test), f"{label}: score()")
    _ensure(np.array_equal(scores, again),
            f"{label}: two fresh instances with seed 3 gave different scores (largest difference "
            f"{np.max(np.abs(scores - again)):.4g}); draw every random number from a generator seeded with self.seed")
    fresh = synthetic()
    first.fit(fresh.train.select(fresh.train.section == 0))
    first.fit(fresh.train)
    _ensure(np.array_equal(scores, first.score(fresh.test)),
            f"{label}: fitting the same instance again gave different scores; fit() must replace the previous state")


@_check
def check_anomalies_score_higher(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """Every far-away embedding scores higher than every copy of a training embedding."""
    label, data = _label(backend), synthetic()
    probe = data.copies_and_outliers
    scores = _check_scores(_fitted(backend, params, data.train).score(probe), len(probe), f"{label}: score()")
    anomaly = probe.is_anomaly == ANOMALY
    _ensure(scores[anomaly].min() > scores[~anomaly].max(),
            f"{label}: far-away embeddings should score higher than copies of training embeddings "
            f"(lowest far-away {scores[anomaly].min():.4g}, highest copy {scores[~anomaly].max():.4g})")


@_check
def check_missing_target_domain(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """Fits on source-domain clips only and still scores test clips of both domains."""
    data = synthetic()
    source = data.train.select(data.train.domain == SOURCE)
    scores = _fitted(backend, params, source).score(data.test)
    _check_scores(scores, len(data.test), f"{_label(backend)}: score() after fitting without target clips")


@_check
def check_train_scores(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """``train_scores`` gives one finite float per training clip."""
    data = synthetic()
    scores = _fitted(backend, params, data.train).train_scores(data.train)
    _check_scores(scores, len(data.train), f"{_label(backend)}: train_scores()")


@_check
def check_empty_training_is_an_error(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """Fitting on zero clips raises an AsdcoreError saying so."""
    train = synthetic().train
    empty = train.select(np.zeros(len(train), dtype=bool))
    _expect_error(create_backend(backend, params).fit, empty, EMPTY_WORDS,
                  f"{_label(backend)}: fit() on zero training clips")


@_check
def check_non_finite_is_an_error(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """NaN or infinite embeddings raise an AsdcoreError saying so, in ``fit`` and in ``score``."""
    label, data = _label(backend), synthetic()
    for bad in (np.nan, np.inf):
        train = data.train.select(np.arange(len(data.train)))
        train.embedding[2, 1] = bad
        _expect_error(create_backend(backend, params).fit, train, NON_FINITE_WORDS,
                      f"{label}: fit() on train embeddings containing {bad}")
        test = data.test.select(np.arange(len(data.test)))
        test.embedding[0, 0] = bad
        _expect_error(_fitted(backend, params, data.train).score, test, NON_FINITE_WORDS,
                      f"{label}: score() of test embeddings containing {bad}")


CHECKS: tuple[Callable[..., None], ...] = (
    check_constructible, check_fit_score, check_deterministic, check_anomalies_score_higher,
    check_missing_target_domain, check_train_scores, check_empty_training_is_an_error, check_non_finite_is_an_error,
)


BACKEND_CHECKS = CHECKS


def check_backend(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """Run every check in :data:`CHECKS`; raise one AssertionError listing all that failed."""
    _run_checks(_label(backend), CHECKS, backend, params)


@dataclass(frozen=True)
class ProbeUnit:
    """A stand-in for a plan's unit with what executors use (id, kind, deps, needs_device, log, lock):
    :func:`probe_job` on it writes ``<folder>/<id>.json`` after checking that its upstream units wrote theirs."""

    id: str
    kind: str
    deps: tuple[str, ...]
    folder: str
    fail: bool = False
    seconds: float = 0.05

    @property
    def needs_device(self) -> bool:
        return self.kind in ("train", "extract")

    @property
    def log(self) -> Path:
        return Path(self.folder) / "logs" / f"{self.id}.log"

    @property
    def lock(self) -> Path:
        return Path(self.folder) / ".locks" / f"{self.id}.lock"


def probe_job(unit: ProbeUnit) -> Outcome:
    """The job :func:`check_executor` runs: fails where asked, else records its process, its
    ``CUDA_VISIBLE_DEVICES``, start and end; a unit started before its upstream units finished fails."""
    started = time.time()
    missing = [d for d in unit.deps if not (Path(unit.folder) / f"{d}.json").is_file()]
    if missing or unit.fail:
        return Outcome(FAILED, error=f"upstream {missing[0]} not done" if missing else "asked to fail",
                       log=str(unit.log))
    time.sleep(unit.seconds)
    record = {"pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": started, "end": time.time()}
    target = Path(unit.folder) / f"{unit.id}.json"
    if target.exists():
        return Outcome(FAILED, error="run twice", log=str(unit.log))
    target.write_text(json.dumps(record))
    return Outcome(DONE, time.time() - started)


def probe_units(folder: Path, seconds: float = 0.05) -> list[ProbeUnit]:
    """A small graph: two chains train → extract → score, a unit that fails and the ones below it,
    and a reduction over both chains."""
    f = str(folder)
    return [
        ProbeUnit("train-a", "train", (), f, seconds=seconds), ProbeUnit("train-b", "train", (), f, seconds=seconds),
        ProbeUnit("extract-a", "extract", ("train-a",), f, seconds=seconds),
        ProbeUnit("extract-b", "extract", ("train-b",), f, seconds=seconds),
        ProbeUnit("score-a", "score", ("extract-a",), f, seconds=seconds),
        ProbeUnit("score-b", "score", ("extract-b",), f, seconds=seconds),
        ProbeUnit("broken", "extract", (), f, fail=True),
        ProbeUnit("after-broken", "score", ("broken",), f), ProbeUnit("further", "summary", ("after-broken",), f),
        ProbeUnit("summary", "summary", ("score-a", "score-b"), f, seconds=seconds),
    ]


def check_executor(executor: str | type[Executor], params: Mapping[str, Any] | None = None,
                   folder: Path | None = None, units: list[ProbeUnit] | None = None) -> dict[str, dict]:
    """Run :func:`probe_units` (or ``units``) on an executor and check the contract: every unit runs
    once, after its upstream units; a failing unit blocks exactly the units below it, and the others
    run. Returns what each executed unit recorded (process, GPU, start, end)."""
    folder = Path(folder or tempfile.mkdtemp(prefix="asdcore-executor-"))
    folder.mkdir(parents=True, exist_ok=True)
    units = units or probe_units(folder)
    if isinstance(executor, str):
        instance = get_registry().create("executors", executor, params=dict(params or {}))
    else:
        instance = executor(validate(executor.Params, dict(params or {}), "executor.params"))
    outcomes = instance.run(units, probe_job, progress=False)
    label = f"executor {executor if isinstance(executor, str) else executor.__name__}"
    _ensure(set(outcomes) == {u.id for u in units}, f"{label}: outcomes for {sorted(outcomes)}, not every unit")
    failing = {u.id for u in units if u.fail}
    below = _downstream(units, failing)
    for unit in units:
        outcome = outcomes[unit.id]
        expected = FAILED if unit.id in failing else BLOCKED if unit.id in below else DONE
        _ensure(outcome.status == expected, f"{label}: {unit.id} is {outcome.status} ({outcome.error}), "
                                            f"expected {expected}")
    records = {u.id: json.loads((folder / f"{u.id}.json").read_text()) for u in units
               if outcomes[u.id].status == DONE}
    for unit in units:
        for dep in unit.deps:
            if unit.id in records and dep in records:
                _ensure(records[dep]["end"] <= records[unit.id]["start"], f"{label}: {unit.id} started before "
                                                                          f"its upstream unit {dep} ended")
    return records


def _downstream(units: list[ProbeUnit], roots: set[str]) -> set[str]:
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for unit in units:
            if unit.id not in found and any(d in roots or d in found for d in unit.deps):
                found.add(unit.id)
                changed = True
    return found


# ---------------------------------------------------------------------------------------------------------
# Toy components and data


def toy_waves(n: int, samples: int, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """``[n, samples]`` float32 clips: a tone (one of four frequencies, by row) in a little seeded noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    freqs = sample_rate * np.array([0.02, 0.035, 0.05, 0.08])[np.arange(n) % 4]
    tones = 0.3 * np.sin(2 * np.pi * freqs[:, None] * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    return (tones + 0.05 * rng.standard_normal((n, samples))).astype(np.float32)


@functools.cache
def _toy_loss() -> type:
    """:class:`ToyLoss`, made on first use so that importing this module does not import torch."""
    import torch

    from .interfaces import Loss

    class ToyLoss(Loss, torch.nn.Module):
        """Cross-entropy (with class-probability targets) of a linear layer; ``scale`` multiplies the logits."""

        class Params(Params):
            scale: float = 1.0

        def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
            torch.nn.Module.__init__(self)
            Loss.__init__(self, params, embedding_dim=embedding_dim, num_classes=num_classes)
            self.head = torch.nn.Linear(embedding_dim, num_classes)

        def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            logits = self.params.scale * self.head(embedding)
            return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()

    ToyLoss.__module__ = __name__
    ToyLoss.__qualname__ = "ToyLoss"
    return ToyLoss


@functools.cache
def _toy_trained_frontend() -> type:
    """:class:`ToyTrainedFrontend`, made on first use so that importing this module does not import torch."""
    import torch

    from .training import TorchFrontend

    class Bands(torch.nn.Module):
        def __init__(self, bins: int):
            super().__init__()
            self.bins = bins

        def forward(self, waves: torch.Tensor) -> torch.Tensor:
            return _band_spectrum(waves, self.bins)

    class ToyTrainedFrontend(TorchFrontend):
        """A trained frontend: :class:`ToyFrontend`'s ``bins`` log band energies through a linear layer
        to ``dim`` dimensions, fitted with the pipeline's loss."""

        class Params(Params):
            bins: int = pydantic.Field(16, ge=1)
            dim: int = pydantic.Field(8, ge=1)

        def __init__(self, params: Params, **context: Any):
            Frontend.__init__(self, params, **context)
            _check_bins(params.bins, self.clip_samples)
            super().__init__(params, **context)

        @property
        def embedding_dim(self) -> int:
            return self.params.dim

        def build_model(self) -> torch.nn.Module:
            return torch.nn.Sequential(Bands(self.params.bins), torch.nn.Linear(self.params.bins, self.params.dim))

    ToyTrainedFrontend.__module__ = __name__
    ToyTrainedFrontend.__qualname__ = "ToyTrainedFrontend"
    return ToyTrainedFrontend


ToyLoss: type  # :class:`ToyLoss` and :class:`ToyTrainedFrontend` are made by the module's ``__getattr__``
ToyTrainedFrontend: type  # on first use (they need torch)


def __getattr__(name: str) -> Any:
    if name == "ToyLoss":
        return _toy_loss()
    if name == "ToyTrainedFrontend":
        return _toy_trained_frontend()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_toy_loss(embedding_dim: int, num_classes: int) -> Any:
    loss = _toy_loss()
    return loss(loss.Params(), embedding_dim=embedding_dim, num_classes=num_classes)


def toy_train_data(workdir: Path, *, sample_rate: int = 16000, clip_samples: int = 16000, epochs: int = 1,
                   n: int = 8, num_classes: int = 2, seed: int = 0,
                   make_loss: Callable[[int, int], Any] | None = _make_toy_loss) -> TrainData:
    """:class:`~asdcore.TrainData` of ``n`` in-memory clips of ``clip_samples`` (:func:`toy_waves`) in
    ``num_classes`` classes, the last quarter of the target domain; batches of 4, AdamW (no weight decay)
    at lr 0.001 on the CPU, no augmentations. ``make_loss`` builds a :class:`ToyLoss` unless given
    (None: no loss); checkpoints go to ``workdir``."""
    import torch

    from .config import TrainingConfig

    waves = toy_waves(n, clip_samples, sample_rate, seed)
    clips = [Clip(Path(f"toy_{i:03d}.wav"), "toy", "train", 0, TARGET if i >= n - n // 4 else SOURCE, NORMAL)
             for i in range(n)]
    by_path = {clip.path: wave for clip, wave in zip(clips, waves)}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return TrainData(
        clips=clips, load=lambda clip: by_path[clip.path], clip_samples=clip_samples,
        labels=np.arange(n) % num_classes, num_classes=num_classes,
        training=TrainingConfig(epochs=epochs, batch_size=4, lr=1e-3, weight_decay=0.0, num_workers=0),
        make_loss=make_loss, augmentations=[], device=torch.device("cpu"), seed=seed, workdir=workdir,
    )


def _check_bins(bins: int, clip_samples: int) -> None:
    if bins > clip_samples // 2 + 1:
        raise ConfigError(f"frontend.params.bins: {bins} bands exceed the {clip_samples // 2 + 1} "
                          f"frequencies of clips of {clip_samples} samples; choose fewer bins")


def _band_spectrum(waves: Any, bins: int) -> Any:
    """``[B, L]`` waveforms -> ``[B, bins]``: the log magnitude spectrum averaged in ``bins`` bands."""
    import torch

    spectrum = torch.log1p(torch.fft.rfft(waves.float()).abs())
    return torch.stack([band.mean(dim=1) for band in torch.tensor_split(spectrum, bins, dim=1)], dim=1)


class ToyFrontend(Frontend):
    """An untrained frontend: the log magnitude spectrum averaged in ``bins`` bands."""

    class Params(Params):
        bins: int = pydantic.Field(16, ge=1)

    def __init__(self, params: Params, **context: Any):
        super().__init__(params, **context)
        _check_bins(params.bins, self.clip_samples)

    @property
    def spec(self) -> FrontendSpec:
        return FrontendSpec(embedding_dim=self.params.bins)

    def extract(self, waves: Any) -> FrontendOutput:
        return FrontendOutput(_band_spectrum(waves, self.params.bins))


class ToyBackend(Backend):
    """The Euclidean distance to the nearest training embedding, whatever the domain or section."""

    def fit(self, train: FeatureSet) -> None:
        if len(train) == 0:
            raise AsdcoreError("backend 'toy': no training embeddings to fit on")
        self.reference = _finite(train.embedding, "training")

    def score(self, test: FeatureSet) -> np.ndarray:
        queries = _finite(test.embedding, "test")
        squared = ((queries ** 2).sum(1)[:, None] - 2 * queries @ self.reference.T
                   + (self.reference ** 2).sum(1)[None, :])
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def _finite(embedding: np.ndarray, what: str) -> np.ndarray:
    embedding = np.asarray(embedding, dtype=np.float64)
    if not np.isfinite(embedding).all():
        raise AsdcoreError(f"backend 'toy': {what} embeddings hold NaN or infinite values")
    return embedding


def toy_tones(root: Path, machines: Sequence[str], n_train: int, n_target: int, n_test: int,
              rng: np.random.Generator) -> Iterator[tuple[int, Path, float]]:
    """(machine index, path, tone frequency) of every clip of :class:`ToyDataset`'s layout, making the
    folders: ``n_train`` source and ``n_target`` target training clips per machine type, ``n_test // 4``
    test clips of each domain and label; target tones 1.3 times higher, anomalies shifted by 8–13 %."""
    for m_index, machine in enumerate(machines):
        for split in ("train", "test"):
            (root / machine / split).mkdir(parents=True, exist_ok=True)
        specs = [("train", "source", "normal", n_train), ("train", "target", "normal", n_target)]
        specs += [("test", d, lab, n_test // 4) for d in ("source", "target") for lab in ("normal", "anomaly")]
        for split, domain, label, n in specs:
            for i in range(n):
                f = (300 + 100 * m_index) * (1.3 if domain == "target" else 1.0) * (1 + 0.02 * rng.standard_normal())
                if label == "anomaly":
                    f *= 1.08 + 0.05 * rng.random()
                yield m_index, root / machine / split / f"{domain}_{label}_{i:03d}.wav", f


class ToyDataset(Dataset):
    """Tiny tones at 8 kHz, 0.25 s each, in ``<root>/<machine>/{train,test}/<domain>_<label>_<i>.wav``; one
    section, all ``dev``, scored with ``hmean``. :meth:`write` makes them; with ``generate: true``,
    :meth:`prepare` does so when the root holds no machine folder."""

    scorer = "hmean"
    sample_rate = 8000
    clip_seconds = 0.25

    class Params(DatasetParams):
        generate: bool = False

    @property
    def id(self) -> str:
        return "toy"

    @classmethod
    def write(cls, root: Path, machines: Sequence[str] = ("alpha", "beta"), n_train: int = 12, n_target: int = 3,
              n_test: int = 8, seed: int = 0) -> Path:
        """Write the clips (normal: tone + noise; anomaly: a shifted tone; target: another tone) into ``root``."""
        import soundfile as sf

        root = Path(root)
        rng = np.random.default_rng(seed)
        t = np.arange(round(cls.sample_rate * cls.clip_seconds)) / cls.sample_rate
        for _, path, f in toy_tones(root, machines, n_train, n_target, n_test, rng):
            wave = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(path, wave.astype(np.float32), cls.sample_rate)
        return root

    def prepare(self, progress: bool = True, force: bool = False) -> None:
        if self.params.generate and (force or not self.root.is_dir() or not any(self.root.iterdir())):
            self.write(self.root)
        super().prepare(progress, force)

    def available_machines(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def clips(self, machine: str, split: str) -> list[Clip]:
        out = []
        for path in sorted((self.root / machine / split).glob("*.wav")):
            domain, label, _ = path.stem.split("_")
            is_anomaly = {"normal": NORMAL, "anomaly": ANOMALY}.get(label, UNKNOWN)
            out.append(Clip(path, machine, split, 0, int(domain == "target"), is_anomaly))
        return out


# ---------------------------------------------------------------------------------------------------------
# A plugin's tests on the core and the plugin alone


@contextlib.contextmanager
def only_plugins(*plugins: str, toys: bool = True) -> Iterator[Registry]:
    """Inside the block only the core's components, the named plugins (entry point names) and, with
    ``toys``, the toy components are loaded: dataset ``toy`` (:class:`ToyDataset`), frontends ``toy``
    (:class:`ToyFrontend`) and ``toy_trained`` (:class:`ToyTrainedFrontend`), loss ``toy`` (:class:`ToyLoss`),
    backend ``toy`` (:class:`ToyBackend`). ``ASDCORE_LOAD_PLUGINS`` is set, so processes started inside
    the block (executors' workers, the ``asdcore`` program) load the same, and the process-wide registry
    is one that loads just these. A plugin's ``tests/conftest.py`` uses it so that its tests pass with
    the core and the plugin alone, also beside other plugins' tests in one pytest session::

        @pytest.fixture(autouse=True)
        def only_this_plugin():
            with only_plugins("asd_backends"):
                yield
    """
    selection = ",".join([*plugins, *([TOYS] if toys else [])])
    previous = os.environ.get(LOAD_ENV)
    os.environ[LOAD_ENV] = selection
    try:
        with use_registry(_registry_loading(selection)) as registry:
            yield registry
    finally:
        if previous is None:
            os.environ.pop(LOAD_ENV, None)
        else:
            os.environ[LOAD_ENV] = previous


@functools.cache
def _registry_loading(selection: str) -> Registry:
    """One registry per selection, built while ``ASDCORE_LOAD_PLUGINS`` is ``selection``."""
    return Registry()


def run_cli(*args: str, **kwargs: Any) -> Any:
    """Run ``asdcore ARGS`` in this process with the process-wide registry's plugins and their commands;
    returns click's ``Result`` (``exit_code``, ``output``, ``exception``). ``kwargs`` go to
    ``click.testing.CliRunner.invoke`` (``input``, ``env``, ...)."""
    from click.testing import CliRunner

    from .cli import cli

    get_registry().add_commands(cli)
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Frontends


BATCH_TOLERANCE = 1e-4  # relative difference allowed between a batch's embeddings and each clip's alone
CPU_TOLERANCE = 1e-5  # between two instances on the CPU
DEVICE_TOLERANCE = 1e-2  # between the CPU and an accelerator (TF32, other kernels)


@dataclass
class FrontendUnderTest:
    """What the frontend checks examine, made by :func:`prepare_frontend`.

    ``frontend``: built with the params on the CPU under seed 0 and, when it trains, fitted on
    :func:`toy_train_data` for one epoch (``log`` is that data's log) and saved into ``model_dir``;
    ``build(device=None, seed=0)``: a fresh instance with the same params; ``waves``: four seeded probe
    clips ``[4, clip_samples]``.
    """

    label: str
    frontend: Frontend
    build: Callable[..., Frontend]
    trains: bool
    model_dir: Path
    waves: Any
    log: list[dict] = field(default_factory=list)


def prepare_frontend(frontend: ComponentRef, params: Mapping[str, Any] | None = None, *, workdir: Path,
                     sample_rate: int = 16000, clip_samples: int = 16000) -> FrontendUnderTest:
    """Build ``frontend`` (a registered name or a class) and, when it trains, fit it for one epoch on
    :func:`toy_train_data` (written under ``workdir``) and save it, as the engine does."""
    import torch

    from .context import seed_everything

    cls = _class_of("frontends", frontend)
    checked = _params_of("frontends", frontend, params)

    def build(device: Any = None, seed: int = 0) -> Frontend:
        seed_everything(seed)
        return cls(checked, sample_rate=sample_rate, clip_samples=clip_samples, device=torch.device(device or "cpu"))

    instance = build()
    trains = bool(cls.trains(checked))
    model_dir = Path(workdir) / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    if trains:
        data = toy_train_data(Path(workdir) / "work", sample_rate=sample_rate, clip_samples=clip_samples)
        instance.fit(data)
        instance.save(model_dir)
        log = data.log
    waves = torch.from_numpy(toy_waves(4, clip_samples, sample_rate, seed=1))
    return FrontendUnderTest(_label(frontend, "frontend"), instance, build, trains, model_dir, waves, log)


def _extract(frontend: Frontend, waves: Any, what: str) -> Any:
    """``frontend.extract(waves)`` as the engine calls it (inference mode), checked to be a FrontendOutput."""
    import torch

    with torch.inference_mode():
        out = frontend.extract(waves)
    _ensure(isinstance(out, FrontendOutput), f"{what}: extract() returned a {type(out).__name__}, not an "
                                             "asdcore.FrontendOutput")
    return out


def _embeddings(frontend: Frontend, waves: Any, what: str) -> Any:
    return _extract(frontend, waves, what).embedding.detach().float().cpu()


def _difference(reference: Any, other: Any) -> float:
    """The largest absolute difference, relative to the largest magnitude of ``reference``."""
    scale = max(float(reference.abs().max()), 1e-12)
    return float((reference - other).abs().max()) / scale


def _frontend_label(subject: FrontendUnderTest) -> str:
    return subject.label


_frontend_check = _guarded(_frontend_label)


@_frontend_check
def check_frontend_output(subject: FrontendUnderTest) -> None:
    """The spec is a FrontendSpec whose ``needs_training`` agrees with the class; ``extract`` of ``[B, L]``
    gives finite float32 embeddings ``[B, spec.embedding_dim]``."""
    import torch

    label, frontend = subject.label, subject.frontend
    spec = frontend.spec
    _ensure(isinstance(spec, FrontendSpec), f"{label}: spec is a {type(spec).__name__}, not an asdcore.FrontendSpec")
    _ensure(isinstance(spec.embedding_dim, int) and spec.embedding_dim >= 1,
            f"{label}: spec.embedding_dim must be a positive int, got {spec.embedding_dim!r}")
    _ensure(spec.needs_training == subject.trains,
            f"{label}: spec.needs_training is {spec.needs_training} but the class says {subject.trains}; set "
            "`needs_training` (or `trains`) on the class to match")
    embedding = _extract(frontend, subject.waves, label).embedding
    batch = len(subject.waves)
    _ensure(torch.is_tensor(embedding), f"{label}: extract() gave embeddings of type {type(embedding).__name__}, "
                                        "not a torch.Tensor")
    _ensure(embedding.shape == (batch, spec.embedding_dim),
            f"{label}: extract() of {batch} clips gave embeddings of shape {tuple(embedding.shape)}, the spec "
            f"declares ({batch}, {spec.embedding_dim})")
    _ensure(embedding.dtype.is_floating_point and embedding.dtype.itemsize == 4,
            f"{label}: extract() gave embeddings of dtype {embedding.dtype}, expected torch.float32")
    _ensure(bool(embedding.isfinite().all()), f"{label}: extract() gave NaN or infinite embeddings")


@_frontend_check
def check_frontend_deterministic(subject: FrontendUnderTest) -> None:
    """Two extracts of the same clips give identical embeddings (eval mode: no dropout, no random crop)."""
    first = _embeddings(subject.frontend, subject.waves, subject.label)
    second = _embeddings(subject.frontend, subject.waves, subject.label)
    _ensure(bool((first == second).all()),
            f"{subject.label}: two extracts of the same clips differ (largest relative difference "
            f"{_difference(first, second):.3g}); extract() must be deterministic: eval mode, no random draws")


@_frontend_check
def check_frontend_batch_independent(subject: FrontendUnderTest) -> None:
    """Each clip's embedding is the same in a batch as alone (no batch statistics in ``extract``)."""
    import torch

    batch = _embeddings(subject.frontend, subject.waves, subject.label)
    alone = torch.cat([_embeddings(subject.frontend, wave[None], subject.label) for wave in subject.waves])
    difference = _difference(batch, alone)
    _ensure(difference <= BATCH_TOLERANCE,
            f"{subject.label}: a clip's embedding depends on the other clips of its batch (largest relative "
            f"difference {difference:.3g} > {BATCH_TOLERANCE:g}); use no batch statistics in extract() (eval mode)")


def _compare(reference: Any, other: Any, tolerance: float, what: str) -> None:
    _ensure(tuple(other.shape) == tuple(reference.shape),
            f"{what} gives embeddings of shape {tuple(other.shape)}, not {tuple(reference.shape)}")
    difference = _difference(reference, other)
    _ensure(difference <= tolerance, f"{what} gives other embeddings (largest relative difference {difference:.3g} > "
                                     f"{tolerance:g})")


@_frontend_check
def check_frontend_save_load(subject: FrontendUnderTest) -> None:
    """A fresh instance built under another seed gives the same embeddings once it has loaded what ``save``
    wrote; an untrained frontend gives them as built (its features are shared by every seed)."""
    reference = _embeddings(subject.frontend, subject.waves, subject.label)
    fresh = subject.build(seed=1)
    if subject.trains:
        fresh.load(subject.model_dir)
        what = "after load() of what save() wrote, a fresh instance"
        remedy = "save() must write, and load() restore, every tensor that extract() uses"
    else:
        what = "a fresh instance built under another seed"
        remedy = "an untrained frontend's features are extracted once for all seeds, so they must not depend on it"
    try:
        _compare(reference, _embeddings(fresh, subject.waves, subject.label), CPU_TOLERANCE, f"{subject.label}: {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {remedy}") from None


@_frontend_check
def check_frontend_devices(subject: FrontendUnderTest) -> None:
    """Built for a device (the CPU, and CUDA where available) and loaded, an instance extracts clips on that
    device as the CPU instance does."""
    import torch

    reference = _embeddings(subject.frontend, subject.waves, subject.label)
    for device, tolerance in (("cpu", CPU_TOLERANCE), ("cuda", DEVICE_TOLERANCE)):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        what = f"{subject.label} on {device}"
        fresh = subject.build(device=device, seed=1)
        if subject.trains:
            fresh.load(subject.model_dir)
        _compare(reference, _embeddings(fresh, subject.waves.to(device), what), tolerance,
                 f"{what}: an instance built with device={device!r}")


@_frontend_check
def check_frontend_scores(subject: FrontendUnderTest) -> None:
    """With ``spec.emits_scores``, ``extract`` gives one finite score per clip (``[B]``); without, none."""
    import torch

    label, batch = subject.label, len(subject.waves)
    score = _extract(subject.frontend, subject.waves, label).score
    if not subject.frontend.spec.emits_scores:
        _ensure(score is None, f"{label}: extract() gives scores but spec.emits_scores is false; declare them")
        return
    _ensure(torch.is_tensor(score), f"{label}: spec.emits_scores is true but extract() gives no score tensor "
                                    f"(got {type(score).__name__})")
    _ensure(tuple(score.shape) == (batch,), f"{label}: extract() of {batch} clips gave scores of shape "
                                            f"{tuple(score.shape)}, expected ({batch},)")
    _ensure(bool(score.isfinite().all()), f"{label}: extract() gave NaN or infinite scores")


@_frontend_check
def check_frontend_training(subject: FrontendUnderTest) -> None:
    """A trained frontend's ``fit`` for one epoch appended one dict to ``data.log``, its numbers finite."""
    if not subject.trains:
        return
    label, rows = subject.label, subject.log
    _ensure(len(rows) == 1 and isinstance(rows[0], dict),
            f"{label}: fit() for one epoch left {len(rows)} rows in data.log; append one dict per epoch")
    bad = [key for key, value in rows[0].items()
           if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value)]
    _ensure(not bad, f"{label}: after one epoch the training log's {', '.join(bad)} is NaN or infinite")


FRONTEND_CHECKS: tuple[Callable[[FrontendUnderTest], None], ...] = (
    check_frontend_output, check_frontend_deterministic, check_frontend_batch_independent, check_frontend_save_load,
    check_frontend_devices, check_frontend_scores, check_frontend_training,
)


@_guarded(lambda frontend: _label(frontend, "frontend"))
def check_frontend_class(frontend: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """Registered under a lower_snake name as a Frontend subclass whose Params accept ``params`` and reject an
    unknown key."""
    _check_class("frontends", frontend, params)


def check_frontend(frontend: ComponentRef, params: Mapping[str, Any] | None = None, *, sample_rate: int = 16000,
                   clip_samples: int = 16000) -> None:
    """Check the class, build the frontend for clips of ``clip_samples`` at ``sample_rate`` (a trained one
    fitted for one epoch on toy clips, with a :class:`ToyLoss`), then run every check in
    :data:`FRONTEND_CHECKS`; raise one AssertionError listing all that failed."""
    label = _label(frontend, "frontend")
    check_frontend_class(frontend, params)
    with tempfile.TemporaryDirectory(prefix="asdcore-frontend-") as workdir:
        try:
            subject = prepare_frontend(frontend, params, workdir=Path(workdir), sample_rate=sample_rate,
                                       clip_samples=clip_samples)
        except Exception as exc:
            raise AssertionError(f"{label}: building it (and training it for one epoch, where it trains) on clips of "
                                 f"{clip_samples} samples at {sample_rate} Hz failed: {type(exc).__name__}: {exc}"
                                 ) from exc
        _run_checks(label, FRONTEND_CHECKS, subject)


# ---------------------------------------------------------------------------------------------------------
# Losses


def _loss_label(loss: ComponentRef) -> str:
    return _label(loss, "loss")


@_guarded(_loss_label)
def check_loss_class(loss: ComponentRef, params: Mapping[str, Any] | None = None, *, embedding_dim: int = 8,
                     num_classes: int = 3) -> None:
    """Registered under a lower_snake name as a Loss subclass with strict Params; builds as a torch.nn.Module."""
    import torch

    _check_class("losses", loss, params)
    instance = create_component("losses", loss, params, embedding_dim=embedding_dim, num_classes=num_classes)
    _ensure(isinstance(instance, torch.nn.Module),
            f"{_loss_label(loss)} is not a torch.nn.Module; subclass it too (call torch.nn.Module.__init__ first)")


@_guarded(_loss_label)
def check_loss_finite(loss: ComponentRef, params: Mapping[str, Any] | None = None, *, embedding_dim: int = 8,
                      num_classes: int = 3) -> None:
    """In train and eval mode, with one-hot and with soft (mixed-up) labels: a finite scalar loss with finite
    gradients w.r.t. the embeddings and the loss's own parameters."""
    import torch

    label = _loss_label(loss)
    torch.manual_seed(0)
    instance = create_component("losses", loss, params, embedding_dim=embedding_dim, num_classes=num_classes)
    batch = 2 * num_classes
    generator = torch.Generator().manual_seed(0)
    embedding = 2 * torch.randn(batch, embedding_dim, generator=generator)
    one_hot = torch.nn.functional.one_hot(torch.arange(batch) % num_classes, num_classes).float()
    mix = 0.2 + 0.6 * torch.rand(batch, 1, generator=generator)
    soft = mix * one_hot + (1 - mix) * one_hot.roll(1, dims=0)
    for mode in ("train", "eval"):
        instance.train(mode == "train")
        for kind, target in (("one-hot", one_hot), ("soft", soft)):
            where = f"{label} in {mode} mode with {kind} labels"
            instance.zero_grad(set_to_none=True)
            x = embedding.clone().requires_grad_(True)
            value = instance(x, target.clone())
            _ensure(torch.is_tensor(value) and value.dim() == 0,
                    f"{where}: expected a scalar tensor, got {type(value).__name__} {getattr(value, 'shape', '')}")
            _ensure(bool(value.isfinite()), f"{where}: the loss is {value.item()}")
            value.backward()
            _ensure(x.grad is not None, f"{where}: no gradient reaches the embeddings")
            _ensure(bool(x.grad.isfinite().all()), f"{where}: NaN or infinite gradient w.r.t. the embeddings")
            bad = [name for name, p in instance.named_parameters() if p.grad is not None
                   and not bool(p.grad.isfinite().all())]
            _ensure(not bad, f"{where}: NaN or infinite gradient of its parameters {', '.join(bad)}")


LOSS_CHECKS: tuple[Callable[..., None], ...] = (check_loss_class, check_loss_finite)


def check_loss(loss: ComponentRef, params: Mapping[str, Any] | None = None, *, embedding_dim: int = 8,
               num_classes: int = 3) -> None:
    """Run every check in :data:`LOSS_CHECKS`; raise one AssertionError listing all that failed."""
    _run_checks(_loss_label(loss), LOSS_CHECKS, loss, params, embedding_dim=embedding_dim, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------------------
# Augmentations


def _augmentation_label(augmentation: ComponentRef) -> str:
    return _label(augmentation, "augmentation")


def _augmented(augmentation: ComponentRef, params: Mapping[str, Any] | None, seed: int = 0) -> tuple[Any, Any, Any]:
    """The input batch (four clips of 4000 samples, one-hot targets of three classes) and the augmentation's
    output under torch seed ``seed``."""
    import torch

    instance = create_component("augmentations", augmentation, params)
    waves = torch.from_numpy(toy_waves(4, 4000, seed=2))
    target = torch.nn.functional.one_hot(torch.arange(4) % 3, 3).float()
    torch.manual_seed(seed)
    return (waves, target), instance(waves.clone(), target.clone()), instance


@_guarded(_augmentation_label)
def check_augmentation_class(augmentation: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """Registered under a lower_snake name as an Augmentation subclass with strict Params; builds."""
    _check_class("augmentations", augmentation, params)
    create_component("augmentations", augmentation, params)


@_guarded(_augmentation_label)
def check_augmentation_batch(augmentation: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """Waves ``[B, L]`` and class probabilities ``[B, C]`` (float32) come back in the same shapes, dtypes and
    device, finite, each target row still summing to 1 with no negative entry."""
    import torch

    label = _augmentation_label(augmentation)
    inputs, out, _ = _augmented(augmentation, params)
    _ensure(isinstance(out, (tuple, list)) and len(out) == 2,
            f"{label}: expected (waves, targets), got {type(out).__name__}")
    for name, before, after in zip(("waves", "targets"), inputs, out):
        _ensure(torch.is_tensor(after), f"{label}: the {name} it returns are a {type(after).__name__}, not a tensor")
        _ensure(after.shape == before.shape, f"{label}: {name} of shape {tuple(before.shape)} came back as "
                                             f"{tuple(after.shape)}")
        _ensure(after.dtype == before.dtype, f"{label}: {name} of dtype {before.dtype} came back as {after.dtype}")
        _ensure(after.device == before.device, f"{label}: {name} on {before.device} came back on {after.device}")
        _ensure(bool(after.isfinite().all()), f"{label}: the {name} it returns hold NaN or infinite values")
    target = out[1]
    sums = target.sum(dim=1)
    _ensure(bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-5)),
            f"{label}: target rows sum to {[round(float(s), 6) for s in sums]}, not 1; mix targets as the waves")
    _ensure(bool((target >= 0).all()), f"{label}: targets hold negative class probabilities")


@_guarded(_augmentation_label)
def check_augmentation_deterministic(augmentation: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """The same torch seed gives the same output: every random draw comes from the global torch generator."""
    _, first, _ = _augmented(augmentation, params, seed=3)
    _, second, _ = _augmented(augmentation, params, seed=3)
    same = all(bool((a == b).all()) for a, b in zip(first, second))
    _ensure(same, f"{_augmentation_label(augmentation)}: two calls under torch seed 3 gave different outputs; draw "
                  "every random number from the global torch generator (torch.rand, torch.randperm, ...)")


AUGMENTATION_CHECKS: tuple[Callable[..., None], ...] = (
    check_augmentation_class, check_augmentation_batch, check_augmentation_deterministic,
)


def check_augmentation(augmentation: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """Run every check in :data:`AUGMENTATION_CHECKS`; raise one AssertionError listing all that failed."""
    _run_checks(_augmentation_label(augmentation), AUGMENTATION_CHECKS, augmentation, params)


# ---------------------------------------------------------------------------------------------------------
# Datasets


def _dataset_label(dataset: ComponentRef) -> str:
    return _label(dataset, "dataset")


def _prepared(dataset: ComponentRef, params: Mapping[str, Any]) -> Dataset:
    instance = create_component("datasets", dataset, params)
    instance.prepare(progress=False)
    return instance


@_guarded(_dataset_label)
def check_dataset_class(dataset: ComponentRef, params: Mapping[str, Any]) -> None:
    """Registered under a lower_snake name as a Dataset subclass whose Params derive from DatasetParams; builds
    with a non-empty ``id``, a positive ``sample_rate`` and one or two ``recorded_channels``."""
    label = _dataset_label(dataset)
    cls = _check_class("datasets", dataset, params)
    _ensure(isinstance(cls.Params, type) and issubclass(cls.Params, DatasetParams),
            f"{label}: Params must derive from asdcore.DatasetParams (root, machines, channels)")
    instance = _prepared(dataset, params)
    _ensure(isinstance(instance.id, str) and NAME.match(instance.id),
            f"{label}: id must be a lower_snake name (it names the results folder), got {instance.id!r}")
    rate = instance.sample_rate
    _ensure(isinstance(rate, int) and rate > 0, f"{label}: sample_rate must be a positive int, got {rate!r}")
    _ensure(instance.recorded_channels in (1, 2),
            f"{label}: recorded_channels must be 1 or 2 (near, far), got {instance.recorded_channels!r}")


@_guarded(_dataset_label)
def check_dataset_clips(dataset: ComponentRef, params: Mapping[str, Any]) -> None:
    """After ``prepare``, every machine type lists train and test clips: existing files of unique names, of
    that machine type and split, domain source or target, normal training clips, test labels normal, anomaly
    or unknown, subsets dev or eval; ``class_labels`` covers every training clip."""
    label = _dataset_label(dataset)
    instance = _prepared(dataset, params)
    machines = instance.machines()
    _ensure(machines, f"{label}: no machine types in {instance.root}")
    labels = {"train": (NORMAL,), "test": (NORMAL, ANOMALY, UNKNOWN)}
    for machine in machines:
        for split in ("train", "test"):
            where = f"{label}: {machine}/{split}"
            clips = instance.clips(machine, split)
            _ensure(len(clips) > 0, f"{where}: no clips listed")
            for clip in clips:
                _ensure(isinstance(clip, Clip), f"{where}: lists a {type(clip).__name__}, not an asdcore.Clip")
                _ensure((clip.machine, clip.split) == (machine, split),
                        f"{where}: {clip.path} is listed as {clip.machine}/{clip.split}")
                _ensure(Path(clip.path).is_file(), f"{where}: {clip.path} does not exist")
                _ensure(clip.domain in (SOURCE, TARGET),
                        f"{where}: {clip.name} has domain {clip.domain!r}; expected 0 (source) or 1 (target)")
                _ensure(clip.is_anomaly in labels[split],
                        f"{where}: {clip.name} has is_anomaly {clip.is_anomaly!r}; expected one of {labels[split]}"
                        + (" (training clips are normal)" if split == "train" else ""))
                _ensure(clip.subset in ("dev", "eval"), f"{where}: {clip.name} has subset {clip.subset!r}")
            names = [clip.name for clip in clips]
            twice = sorted({name for name in names if names.count(name) > 1})
            _ensure(not twice, f"{where}: several clips named {', '.join(twice[:3])}; score files are keyed by file "
                               "name")
        subsets = instance.subsets(machine)
        _ensure(set(subsets.values()) <= {"dev", "eval"}, f"{label}: subsets({machine!r}) gives {subsets}")
    classes, count = instance.class_labels()
    for machine in machines:
        for clip in instance.clips(machine, "train"):
            _ensure(clip.path in classes and 0 <= classes[clip.path] < count,
                    f"{label}: class_labels() gives no class in range({count}) to {clip.path}")


@_guarded(_dataset_label)
def check_dataset_scorer(dataset: ComponentRef, params: Mapping[str, Any]) -> None:
    """The scorer the dataset names is registered."""
    instance = create_component("datasets", dataset, params)
    names = get_registry().names("scorers")
    _ensure(instance.scorer in names, f"{_dataset_label(dataset)} names scorer {instance.scorer!r}, which is not "
                                      f"registered; registered scorers: {', '.join(names)}")


@_guarded(_dataset_label)
def check_dataset_audio(dataset: ComponentRef, params: Mapping[str, Any]) -> None:
    """The first and last clip of each split load as finite mono float32 at the dataset's ``sample_rate`` (as
    many samples as the file's duration gives); of two-channel datasets every channel choice loads, one-channel
    datasets refuse all but ``near``."""
    from .audio import CHANNELS, duration

    label = _dataset_label(dataset)
    instance = _prepared(dataset, params)
    rate = instance.sample_rate
    for machine in instance.machines():
        for split in ("train", "test"):
            clips = instance.clips(machine, split)
            for clip in clips[:1] + clips[1:][-1:]:
                where = f"{label}: load() of {clip.path}"
                wave = instance.load(clip)
                _ensure(isinstance(wave, np.ndarray) and wave.dtype == np.float32 and wave.ndim == 1,
                        f"{where}: expected a 1-D float32 numpy array, got {type(wave).__name__} "
                        f"{getattr(wave, 'dtype', '')} {getattr(wave, 'shape', '')}")
                _ensure(len(wave) > 0 and np.isfinite(wave).all(), f"{where}: empty, NaN or infinite audio")
                expected = duration(clip.path) * rate
                _ensure(abs(len(wave) - expected) <= max(2.0, 1e-3 * expected),
                        f"{where}: {len(wave)} samples, but the file's {expected / rate:.4g} s are {expected:.0f} "
                        f"samples at the dataset's sample_rate {rate} Hz; resample to sample_rate")
                if instance.recorded_channels == 2:
                    for choice in CHANNELS:
                        other = instance.load(clip, choice)
                        _ensure(other.shape == wave.shape, f"{where}: channel choice {choice!r} gives shape "
                                                           f"{other.shape}, not {wave.shape}")
    if instance.recorded_channels == 1:
        _ensure(instance.channel_error("far") is not None,
                f"{label}: a one-channel dataset must refuse channel choice 'far' (channel_error)")


@_guarded(_dataset_label)
def check_dataset_lengths(dataset: ComponentRef, params: Mapping[str, Any]) -> None:
    """``clip_samples_of`` every machine type is a positive number of samples."""
    instance = _prepared(dataset, params)
    for machine in instance.machines():
        samples = instance.clip_samples_of(machine)
        _ensure(isinstance(samples, (int, np.integer)) and samples > 0,
                f"{_dataset_label(dataset)}: clip_samples_of({machine!r}) is {samples!r}, not a positive int")


DATASET_CHECKS: tuple[Callable[..., None], ...] = (
    check_dataset_class, check_dataset_clips, check_dataset_scorer, check_dataset_audio, check_dataset_lengths,
)


def check_dataset(dataset: ComponentRef, params: Mapping[str, Any]) -> None:
    """Run every check in :data:`DATASET_CHECKS` on the data ``params`` point to (``prepare`` first); raise one
    AssertionError listing all that failed."""
    _run_checks(_dataset_label(dataset), DATASET_CHECKS, dataset, params)


# ---------------------------------------------------------------------------------------------------------
# Scorers


AUC = re.compile(r"(^|_)auc$")
SCORER_SUBSETS = {0: "dev", 1: "eval"}


def _scorer_label(scorer: ComponentRef) -> str:
    return _label(scorer, "scorer")


def _scorer_test() -> FeatureSet:
    """Test clips of sections 00 (dev) and 01 (eval): four normal and four anomalous clips per domain."""
    rows = [(section, domain, label, i) for section in SCORER_SUBSETS for domain in (SOURCE, TARGET)
            for label in (NORMAL, ANOMALY) for i in range(4)]
    names = [f"section_{s:02d}_{'source' if d == SOURCE else 'target'}_test_{'normal' if a == NORMAL else 'anomaly'}_"
             f"{i:04d}.wav" for s, d, a, i in rows]
    return FeatureSet(embedding=np.zeros((len(rows), 1)), path=names, section=[r[0] for r in rows],
                      domain=[r[1] for r in rows], is_anomaly=[r[2] for r in rows], attribute=[""] * len(rows))


def _perfect_scores(test: FeatureSet, seed: int) -> np.ndarray:
    """Scores that rank every anomaly above every normal clip."""
    return np.random.default_rng(seed).uniform(size=len(test)) + 2.0 * test.is_anomaly


@_guarded(_scorer_label)
def check_scorer_class(scorer: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """Registered under a lower_snake name as a Scorer subclass with strict Params; builds."""
    _check_class("scorers", scorer, params)
    create_component("scorers", scorer, params)


@_guarded(_scorer_label)
def check_scorer_ranking(scorer: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """Every per-section AUC is 1 for a perfect ranking and 0 for the reversed one; the official score of each
    subset is finite and higher for the perfect ranking; ``aggregate`` gives a finite official score."""
    label = _scorer_label(scorer)
    instance = create_component("scorers", scorer, params)
    test = _scorer_test()
    perfect = _perfect_scores(test, seed=0)
    results: dict[str, Evaluation] = {}
    for name, scores, expected in (("perfect", perfect, 1.0), ("reversed", -perfect, 0.0)):
        where = f"{label}: evaluate() of a {name} ranking"
        decisions = (scores > np.median(scores)).astype(int)
        evaluation = instance.evaluate("fan", test, scores, SCORER_SUBSETS, decisions)
        _ensure(isinstance(evaluation, Evaluation), f"{where}: returned a {type(evaluation).__name__}, not an "
                                                    "asdcore.Evaluation")
        aucs = [(section, metric, value) for section, metric, value in evaluation.metrics
                if AUC.search(metric) and str(section).isdigit()]
        _ensure(aucs, f"{where}: no per-section AUC among its metrics (names ending in 'auc')")
        wrong = [f"{metric} of section {section} is {value:.4g}" for section, metric, value in aucs
                 if not abs(value - expected) < 1e-9]
        _ensure(not wrong, f"{where}: expected every AUC to be {expected:g}, but " + "; ".join(wrong[:4]))
        subsets = sorted(set(SCORER_SUBSETS.values()))
        _ensure(sorted(evaluation.official) == subsets,
                f"{where}: official scores for {sorted(evaluation.official)}, expected one per subset: {subsets}")
        bad = [subset for subset, value in evaluation.official.items() if not math.isfinite(value)]
        _ensure(not bad, f"{where}: the official score of {', '.join(bad)} is NaN or infinite")
        results[name] = evaluation
    for subset, value in results["perfect"].official.items():
        _ensure(value > results["reversed"].official[subset],
                f"{label}: the official {subset} score of a perfect ranking ({value:.4g}) is not above that of the "
                f"reversed one ({results['reversed'].official[subset]:.4g})")
    other = instance.evaluate("pump", test, _perfect_scores(test, seed=1), SCORER_SUBSETS)
    summary = instance.aggregate([results["perfect"], other])
    for subset in SCORER_SUBSETS.values():
        _ensure(subset in summary and math.isfinite(summary[subset].get("official", math.nan)),
                f"{label}: aggregate() of two machine types gives no finite official score for {subset!r}: {summary}")


@_guarded(_scorer_label)
def check_scorer_groups(scorer: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """``groups`` puts every test clip into exactly one group, keyed by a non-empty name without a path
    separator (it names a score file)."""
    label = _scorer_label(scorer)
    test = _scorer_test()
    groups = create_component("scorers", scorer, params).groups("fan", test)
    _ensure(isinstance(groups, Mapping) and groups, f"{label}: groups() gave no groups: {groups!r}")
    count = np.zeros(len(test), dtype=np.int64)
    for key, index in groups.items():
        _ensure(isinstance(key, str) and key and not re.search(r"[/\\]", key),
                f"{label}: group key {key!r} must be a non-empty file name part")
        index = np.asarray(index)
        valid = index.ndim == 1 and np.issubdtype(index.dtype, np.integer)
        _ensure(valid and ((index >= 0) & (index < len(test))).all(),
                f"{label}: group {key!r} is not an array of test clip indices: {index!r}")
        np.add.at(count, index, 1)
    for problem, mask in (("in no group", count == 0), ("in several groups", count > 1)):
        index = np.flatnonzero(mask)
        _ensure(not len(index), f"{label}: groups() leaves {len(index)} of {len(test)} test clips {problem}, e.g. "
                                f"{test.path[index[0]] if len(index) else ''}")


SCORER_CHECKS: tuple[Callable[..., None], ...] = (check_scorer_class, check_scorer_ranking, check_scorer_groups)


def check_scorer(scorer: ComponentRef, params: Mapping[str, Any] | None = None) -> None:
    """Run every check in :data:`SCORER_CHECKS`; raise one AssertionError listing all that failed."""
    _run_checks(_scorer_label(scorer), SCORER_CHECKS, scorer, params)


# ---------------------------------------------------------------------------------------------------------
# Data-parallel training


def train_data_parallel(pipelines: list[tuple[str | Path | dict, list[str]]], processes: int = 2) -> None:
    """Run the training units of each pipeline (a YAML file or dict, and ``--set`` overrides) in ``processes``
    data-parallel processes on the CPU (gloo), as the engine does for ``devices: processes``; rank 0 writes the
    artifacts. The overrides should set ``frontend.training.devices`` to ``processes``, and the pipelines'
    data must be prepared. The installed plugins build the components."""
    from .distributed import spawn

    spawn(_train_pipelines, (pipelines,), processes)


def _train_pipelines(pipelines: list[tuple[str | Path | dict, list[str]]]) -> None:
    import torch

    from .config import load_config
    from .context import Context
    from .plan import plan_pipeline
    from .units import train

    torch.set_num_threads(1)
    registry = get_registry()
    for config, overrides in pipelines:
        context = Context.create(load_config(config, overrides, registry=registry), registry, progress=False)
        for unit in plan_pipeline(context):
            if unit.kind == "train":
                unit.directory.mkdir(parents=True, exist_ok=True)
                train(unit, context)
