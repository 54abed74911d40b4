"""The core's vocabulary: the base classes every plugin component derives from."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import numpy as np

from .errors import ConfigError, DatasetError, suggest
from .params import Params

if TYPE_CHECKING:
    import torch

    from .features import FeatureSet
    from .plan import Unit

SOURCE, TARGET = 0, 1
NORMAL, ANOMALY, UNKNOWN = 0, 1, -1


@dataclass(frozen=True)
class Clip:
    """One audio clip and its metadata."""

    path: Path
    machine: str
    split: Literal["train", "test"]
    section: int
    domain: int
    is_anomaly: int
    attribute: str = ""
    subset: Literal["dev", "eval"] = "dev"

    @property
    def name(self) -> str:
        return self.path.name


class DatasetParams(Params):
    """Parameters every dataset accepts; datasets subclass this for their own.

    ``channels`` chooses what a frontend sees of two-channel recordings (channel 0 near, 1 far microphone):
    ``near`` (the default, as the official DCASE 2026 baseline), ``far``, their ``mean`` or ``diff``
    (near − far); datasets of one channel take only ``near``.
    """

    root: str
    machines: Literal["all"] | list[str] = "all"
    channels: Literal["near", "far", "mean", "diff"] = "near"


class Dataset:
    """Lists clips per machine type and split, reads audio, and names its official scorer.

    Subclasses set ``Params`` (a :class:`DatasetParams` subclass) and implement
    :meth:`available_machines` and :meth:`clips`. ``recorded_channels`` is the number of channels of
    every clip file (2: near and far microphones); ``clip_seconds`` the fixed clip length, or
    :meth:`clip_seconds_of` where it differs per machine type.
    """

    Params: ClassVar[type[DatasetParams]] = DatasetParams
    scorer: ClassVar[str] = "dcase2023"
    sample_rate: int = 16000
    clip_seconds: float = 10.0
    recorded_channels: int = 1

    def __init__(self, params: DatasetParams):
        self.params = params
        self.root = Path(params.root)

    @property
    def id(self) -> str:
        """Folder name of this dataset's results (e.g. ``dcase2023``)."""
        raise NotImplementedError

    def prepare(self, progress: bool = True, force: bool = False) -> None:
        """Make the data ready (e.g. generate it; ``force`` regenerates); by default check that the root exists."""
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {str(self.root)!r} does not exist")

    def metadata_files(self, machine: str) -> list[Path]:
        """Files besides the audio that the clips' metadata of ``machine`` comes from (label CSVs,
        ground truth, attribute files, a record of generation parameters). Their content is part of
        the identity of every unit that reads the clips; by default none."""
        return []

    def available_machines(self) -> list[str]:
        raise NotImplementedError

    def machines(self) -> list[str]:
        """The machine types selected by ``params.machines``, validated against what exists."""
        available = self.available_machines()
        if self.params.machines == "all":
            return available
        for machine in self.params.machines:
            if machine not in available:
                raise ConfigError(
                    f"dataset.machines: unknown machine type {machine!r} in {str(self.root)!r}; "
                    f"allowed: {', '.join(available)}.{suggest(machine, available)}"
                )
        return list(self.params.machines)

    def clips(self, machine: str, split: Literal["train", "test"]) -> list[Clip]:
        raise NotImplementedError

    def subsets(self, machine: str) -> dict[int, str]:
        """Map each test section of ``machine`` to its subset (``dev`` or ``eval``)."""
        return {clip.section: clip.subset for clip in self.clips(machine, "test")}

    label_fields: tuple[str, ...] = ("machine", "section", "attribute", "domain")

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def clip_seconds_of(self, machine: str) -> float:
        """The clip length of ``machine`` (by default ``clip_seconds``, the same for every type)."""
        return self.clip_seconds

    def clip_samples_of(self, machine: str) -> int:
        return round(self.clip_seconds_of(machine) * self.sample_rate)

    def channel_error(self, choice: str) -> str | None:
        """Why this dataset cannot give channel ``choice`` (None when it can)."""
        if choice != "near" and self.recorded_channels < 2:
            return (f"{choice!r} needs two-channel recordings (near and far microphones), but {self.id} has one "
                    "channel; use 'near'")
        return None

    def load(self, clip: Clip, channels: str | None = None) -> np.ndarray:
        """The clip's whole waveform (float32, mono, at ``sample_rate``): of two-channel recordings the
        ``channels`` choice (default ``params.channels``: near, far, mean or diff)."""
        from .audio import read_audio, select_channels

        choice = channels or self.params.channels
        error = self.channel_error(choice)
        if error:
            raise ConfigError(f"dataset.channels: {error}")
        if self.recorded_channels == 1:
            return read_audio(clip.path, self.sample_rate)
        return select_channels(read_audio(clip.path, self.sample_rate, self.recorded_channels), choice)

    def read(self, clip: Clip, offset: int = 0) -> np.ndarray:
        """The clip tiled/cropped to its machine type's clip length, starting at ``offset``."""
        from .audio import fit_length

        return fit_length(self.load(clip), self.clip_samples_of(clip.machine), offset)

    def expected_machines(self) -> list[str] | None:
        """The machine types this dataset will have once its data are ready, known without reading them
        (e.g. a DCASE year's official list), or None; lets a dry run list the units of missing data."""
        return None if self.params.machines == "all" else list(self.params.machines)

    def class_labels(self) -> tuple[dict[Path, int], int]:
        """Class index of every clip (path -> index) and the number of classes for discriminative
        training: ``label_fields`` joined with ``---``, classes ranked lexicographically, built on the
        train and test clips of every available machine type (as the reference toolkit does)."""
        names: dict[Path, str] = {}
        for machine in self.available_machines():
            for split in ("train", "test"):
                for clip in self.clips(machine, split):
                    values = {"machine": clip.machine, "section": str(clip.section), "attribute": clip.attribute,
                              "domain": str(clip.domain)}
                    names[clip.path] = "---".join(values[f] for f in self.label_fields)
        classes = {name: index for index, name in enumerate(sorted(set(names.values())))}
        return {path: classes[name] for path, name in names.items()}, len(classes)


@dataclass(frozen=True)
class FrontendSpec:
    """What a frontend emits and needs, checked by the engine before running."""

    embedding_dim: int
    needs_training: bool = False
    emits_scores: bool = False


class FrontendOutput(NamedTuple):
    embedding: "torch.Tensor"
    score: "torch.Tensor | None" = None


@dataclass
class TrainData:
    """Everything a trainable frontend's :meth:`Frontend.fit` gets from the engine.

    ``load(clip)`` gives the whole waveform, to be tiled/cropped to ``clip_samples``; ``labels[i]`` is
    the class of ``clips[i]`` out of ``num_classes``; ``make_loss(embedding_dim, num_classes)`` builds
    the configured loss (None when none is set); ``identity`` covers every input of the training but
    the number of epochs (data, labels, config, versions): only a checkpoint of the same identity is
    continued.
    """

    clips: Sequence[Clip]
    load: Any
    clip_samples: int
    labels: np.ndarray
    num_classes: int
    training: Any
    make_loss: Any
    augmentations: Sequence["Augmentation"]
    device: "torch.device"
    seed: int
    workdir: Path
    identity: str = ""
    log: list[dict] = field(default_factory=list)


class Frontend:
    """Turns waveforms into embeddings (and optionally its own anomaly scores).

    ``needs_training`` (or :meth:`trains`, when it depends on the params) tells the engine before
    building anything whether the frontend is trained; it must agree with ``spec.needs_training``.
    """

    Params: ClassVar[type[Params]] = Params
    needs_training: ClassVar[bool] = False

    @classmethod
    def trains(cls, params: Params) -> bool:
        """Whether a frontend with these params is trained (default: ``needs_training``)."""
        return cls.needs_training

    def __init__(self, params: Params, *, sample_rate: int = 16000, clip_samples: int = 160000,
                 device: "torch.device | None" = None):
        import torch

        self.params = params
        self.sample_rate = sample_rate
        self.clip_samples = clip_samples
        self.device = device or torch.device("cpu")

    @property
    def spec(self) -> FrontendSpec:
        raise NotImplementedError

    def fit(self, data: TrainData) -> None:
        """Train on normal clips; append one dict per epoch to ``data.log``."""
        raise NotImplementedError(f"{type(self).__name__} needs no training")

    def extract(self, waves: "torch.Tensor") -> FrontendOutput:
        """Embeddings ``[B, D]`` (and optional scores ``[B]``) for a batch of waveforms ``[B, L]``."""
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        """Write the trained state into ``directory`` (only called when the spec needs training)."""

    def load(self, directory: Path) -> None:
        """Restore the state written by :meth:`save`."""


class Loss:
    """Maps (embeddings ``[B, D]``, class probabilities ``[B, C]``) to a scalar training loss.

    Implementations also subclass ``torch.nn.Module`` (call ``torch.nn.Module.__init__`` first);
    parameters they own (class centres) are trained with the frontend.
    """

    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params, *, embedding_dim: int, num_classes: int):
        self.params = params
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes


class Augmentation:
    """Transforms a training batch ``(waves [B, L], class probabilities [B, C]) -> (waves, probabilities)``
    with the global torch random generator."""

    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params):
        self.params = params


class Backend:
    """Fitted per machine type on train embeddings; scores test embeddings (higher = more anomalous)."""

    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params, *, seed: int = 0):
        self.params = params
        self.seed = seed

    def fit(self, train: "FeatureSet") -> None:
        raise NotImplementedError

    def score(self, test: "FeatureSet") -> np.ndarray:
        raise NotImplementedError

    def train_scores(self, train: "FeatureSet", folds: int = 5) -> np.ndarray:
        """Scores of the training clips, used to set the decision threshold.

        By default each of ``folds`` folds (stratified by domain) is scored by a fresh backend
        fitted on the other folds: in-sample scores of a nearest-neighbour method would all be 0.
        Backends whose in-sample scores are meaningful may override this.
        """
        rng = np.random.default_rng(self.seed)
        fold = np.empty(len(train), dtype=np.int64)
        for domain in np.unique(train.domain):
            index = np.flatnonzero(train.domain == domain)
            fold[rng.permutation(index)] = np.arange(len(index)) % folds
        scores = np.empty(len(train))
        for k in range(folds):
            held = fold == k
            if held.any():
                other = type(self)(self.params, seed=self.seed)
                other.fit(train.select(~held))
                scores[held] = other.score(train.select(held))
        return scores


@dataclass
class Evaluation:
    """Scores of one machine type.

    ``metrics``: rows (section or subset, metric, value) — every metric per section and the official
    score per subset; ``official``: subset -> official score of this machine type; ``pooled``: subset ->
    the values that enter the subset-level official score; ``clips``: subset -> (is_anomaly, score) of
    the clips in official sections (for pooled statistics such as the jackknife ci95).
    """

    machine: str
    metrics: list[tuple[str, str, float]]
    official: dict[str, float]
    pooled: dict[str, list[float]]
    clips: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


class Scorer:
    """Computes every AUC/pAUC type per section and the official score of a DCASE year.

    ``groups`` fixes the official submission file names; ``subsets`` (section -> ``dev``/``eval``)
    names the sections that count towards the official score of each subset.
    """

    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params):
        self.params = params

    def groups(self, machine: str, test: "FeatureSet") -> dict[str, np.ndarray]:
        """Submission file key (``anomaly_score_<key>.csv``) -> indices of its test clips."""
        return {
            f"{machine}_section_{section:02d}_test": np.flatnonzero(test.section == section)
            for section in sorted(np.unique(test.section).tolist())
        }

    def evaluate(
        self, machine: str, test: "FeatureSet", scores: np.ndarray, subsets: Mapping[int, str],
        decisions: np.ndarray | None = None,
    ) -> Evaluation:
        raise NotImplementedError

    def aggregate(self, evaluations: Sequence[Evaluation]) -> dict[str, dict[str, float]]:
        """Subset -> {"official": ..., and any other pooled statistic} over machine types."""
        raise NotImplementedError

    def missing_groups(self, scores_dir: Path, ground_truth_dir: Path | None) -> list[str]:
        """What the ground truth has and the submission in ``scores_dir`` lacks (e.g. ``fan section 00``);
        by default nothing is known to be missing."""
        return []

    def read_submission(self, scores_dir: Path, ground_truth_dir: Path | None) -> list["Submission"]:
        """Read a submission in this scorer's official file formats, joined with its ground truth (scorers
        that implement it are the ones ``asdcore evaluate --scores`` takes)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read submissions in an official format")

    @property
    def reads_submissions(self) -> bool:
        """Whether the scorer implements :meth:`read_submission`."""
        return type(self).read_submission is not Scorer.read_submission


@dataclass
class Submission:
    """One machine type of a submission: test metadata (``test.path`` = file names), scores,
    optional decisions, and the subset of each section."""

    machine: str
    test: "FeatureSet"
    scores: np.ndarray
    decisions: np.ndarray | None
    subsets: dict[int, str]


DONE, SKIPPED, FAILED, BLOCKED = "done", "skipped", "failed", "blocked"


@dataclass(frozen=True)
class Outcome:
    """What became of a unit: ``done`` (executed), ``skipped`` (up to date), ``failed`` (``error`` says why,
    ``log`` is its log file, ``exit_code`` is the kind of error as in :data:`asdcore.errors.EXIT_CODES`) or
    ``blocked`` (not run: an upstream unit failed); ``seconds`` it ran."""

    status: str
    seconds: float = 0.0
    reason: str | None = None
    error: str | None = None
    log: str | None = None
    exit_code: int = 1


Job = Callable[["Unit"], Outcome]


class Executor:
    """Runs the units of a plan: in this process, in worker processes, as cluster jobs or Ray tasks.

    A unit is plain picklable data and needs nothing but itself and the shared filesystem to execute,
    so ``job(unit)`` may run anywhere; it never raises for a failing unit but returns a ``failed``
    :class:`Outcome`. An executor calls ``job`` for each unit once all of its ``deps`` that are among
    ``units`` are done (:class:`asdcore.Dispatch` keeps that account and shows progress), lets units
    that do not depend on a failed one go on, and returns ``unit id -> Outcome`` for every unit.
    Subclasses declare their ``Params`` (the pipeline's ``executor.params``) and implement :meth:`run`.
    """

    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params):
        self.params = params

    def run(self, units: Sequence["Unit"], job: Job, progress: bool = True) -> dict[str, Outcome]:
        raise NotImplementedError
