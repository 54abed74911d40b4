"""Conformance checks for backends and executors, and data-parallel training of recipes, for any plugin's
tests (no pytest needed).

:func:`train_data_parallel` trains the frontends of pipelines as several data-parallel CPU processes, as
``devices: N`` does, to check that a frontend (and its loss) trains under DDP.

:func:`check_executor` runs a small graph of probe units on an executor and checks the executor
contract (each unit once, after its upstream units; a failure blocks only what depends on it).

Each check takes a registered backend name or a :class:`asdcore.Backend` subclass plus optional
params, runs it on tiny seeded synthetic embeddings, and raises ``AssertionError`` with a message
naming the backend and the problem. :func:`check_backend` runs them all::

    from asdcore.testing import CHECKS, check_backend

    def test_conformance():
        check_backend("mahalanobis", params={"shrinkage": 0.1})

    @pytest.mark.parametrize("check", CHECKS)   # or one test per check
    def test_each(check):
        check("mahalanobis")
"""
from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AsdcoreError, ConfigError
from .features import FeatureSet
from .interfaces import ANOMALY, BLOCKED, DONE, FAILED, NORMAL, SOURCE, TARGET, Backend, Executor, Outcome
from .params import validate
from .registry import get_registry

__all__ = [
    "CHECKS", "ProbeUnit", "Synthetic", "check_anomalies_score_higher", "check_backend", "check_constructible",
    "check_deterministic", "check_empty_training_is_an_error", "check_executor", "check_fit_score",
    "check_missing_target_domain", "check_non_finite_is_an_error", "check_train_scores", "create_backend",
    "probe_job", "probe_units", "synthetic", "train_data_parallel",
]

BackendRef = str | type[Backend]
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
    if isinstance(backend, str):
        return get_registry().create("backends", backend, params=dict(params or {}), seed=seed)
    return backend(validate(backend.Params, dict(params or {}), f"backends.{backend.__name__}.params"), seed=seed)


def _label(backend: BackendRef) -> str:
    return f"backend {backend!r}" if isinstance(backend, str) else f"backend class {backend.__name__}"


def _ensure(condition: Any, message: str) -> None:
    """Raise AssertionError with ``message`` unless ``condition`` holds (unlike ``assert``, kept under -O)."""
    if not condition:
        raise AssertionError(message)


def _check(func: Callable[[BackendRef, Mapping[str, Any] | None], None]) -> Callable[..., None]:
    """Turn any other exception a check meets into an AssertionError naming the backend."""

    @functools.wraps(func)
    def check(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
        try:
            func(backend, params)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"{_label(backend)}: {type(exc).__name__} raised: {exc}") from exc

    return check


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
    label = _label(backend)
    cls = backend
    if isinstance(backend, str):
        names = get_registry().names("backends")
        _ensure(backend in names, f"{label} is not registered; registered backends: {', '.join(names) or '(none)'}")
        _ensure(NAME.match(backend), f"{label}: registered names must be lower_snake_case")
        cls = get_registry().get("backends", backend).cls
    _ensure(isinstance(cls, type) and issubclass(cls, Backend), f"{label} is not a subclass of asdcore.Backend")
    instance = create_backend(backend, params)
    _ensure(isinstance(instance, Backend), f"{label}: created a {type(instance).__name__}, not an asdcore.Backend")
    try:
        create_backend(backend, {**(params or {}), "no_such_parameter_xyz": 1})
    except ConfigError:
        pass
    else:
        raise AssertionError(f"{label}: an unknown parameter was accepted; derive Params from asdcore.Params")


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


def check_backend(backend: BackendRef, params: Mapping[str, Any] | None = None) -> None:
    """Run every check in :data:`CHECKS`; raise one AssertionError listing all that failed."""
    failures = []
    for check in CHECKS:
        try:
            check(backend, params)
        except AssertionError as exc:
            failures.append(f"{check.__name__}: {exc}")
    if failures:
        raise AssertionError(
            f"{_label(backend)} failed {len(failures)} of {len(CHECKS)} conformance checks:\n- " + "\n- ".join(failures)
        )


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
    import tempfile

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
