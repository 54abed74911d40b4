"""The pipeline YAML schema, ``--set`` overrides, and validation of every component before work starts.

```yaml
name: raw_spec_demo                       # results go to <output>/<name>/<dataset id>/seed<k>/
dataset: {name: synth, root: data/synth, machines: all}   # other keys are the dataset's params
frontend:
  name: raw_spec
  params: {}
  loss: {name: scac, params: {}}          # trainable frontends only
  augmentations: [{name: mixup, params: {prob: 0.5}}]
  training: {epochs: 16, batch_size: 64, lr: 0.001, scope: shared,
             precision: 32, devices: 1}     # 32 | bf16-mixed | 16-mixed; devices > 1: DDP
backends: [{name: knn, params: {}}]       # optional `id:` names the result folder (default: name);
                                          # `view:` near|far|mean|diff|concat|residual (`alpha:` of residual)
fusions: []                               # [{id: knn_fused, near: knn_near, far: knn_far, alpha: 0.5}]
scorer: null                              # default: the dataset's official scorer
seeds: [0, 1]
output: results
device: auto                              # auto (CUDA when present), cpu or cuda
audio_cache: true                         # decoded clips kept as memory-mapped arrays under <output>/audio_cache
extraction: {batch_size: 64, num_workers: 0, precision: 32, views: null}   # views: e.g. [near, far]
evaluation: {decision_percentile: 90, plots: false}   # threshold: percentile of a gamma fit to train scores
executor: {name: local, params: {}}       # what runs the units: local, processes, slurm, ray (asd-executors)
tracking: {mlflow: null}                  # {uri: file:///abs/mlruns, experiment: <name>}: docs/tracking.md
```
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from .errors import ConfigError, suggest
from .params import Params, validate
from .registry import Registry, get_registry


class Component(Params):
    name: str
    params: dict[str, Any] = {}


ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
CHANNEL_VIEWS = ("near", "far", "mean", "diff")  # extracted views: what the frontend saw of each clip
DERIVED_VIEWS = ("concat", "residual")  # computed from the near and far views' embeddings


class BackendComponent(Component):
    """A backend; ``view`` picks the embeddings it fits and scores (default: the first extracted view):
    an extracted view, ``concat`` ([near, far]) or ``residual`` (near − alpha·far, alpha default 0.5)."""

    id: str | None = pydantic.Field(None, pattern=ID_PATTERN)
    view: Literal["near", "far", "mean", "diff", "concat", "residual"] | None = None
    alpha: float | None = None


class FusionConfig(Params):
    """Channel score fusion: ``alpha·z(near) + (1 − alpha)·z(far)`` of two backends' scores, each
    z-normalised by the mean and standard deviation of its training scores."""

    id: str = pydantic.Field(pattern=ID_PATTERN)
    near: str
    far: str
    alpha: float = pydantic.Field(0.5, ge=0, le=1)


NOT_IN_IDENTITY = ("epochs", "num_workers", "keep_checkpoints")  # training keys a checkpoint may continue under


class TrainingConfig(Params):
    epochs: int = pydantic.Field(16, ge=1)
    batch_size: int = pydantic.Field(64, ge=1)
    lr: float = pydantic.Field(1e-3, gt=0)
    weight_decay: float = pydantic.Field(0.01, ge=0)
    warmup_steps: int = pydantic.Field(0, ge=0)
    scope: Literal["shared", "per_machine"] = "shared"
    num_workers: int = pydantic.Field(0, ge=0)
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    devices: int = pydantic.Field(1, ge=1)
    strategy: Literal["auto", "ddp"] = "auto"
    compile: bool = False
    tf32: bool = True
    gradient_clip_norm: float | None = pydantic.Field(None, gt=0)
    accumulate_grad_batches: int = pydantic.Field(1, ge=1)
    keep_checkpoints: bool = False  # keep work/checkpoint.pt after the training finished (not an input)

    _precision = pydantic.field_validator("precision", mode="before")(lambda value: _precision_text(value))


class FrontendConfig(Component):
    loss: Component | None = None
    augmentations: list[Component] = []
    training: TrainingConfig = TrainingConfig()


class ExtractionConfig(Params):
    batch_size: int = pydantic.Field(64, ge=1)
    num_workers: int = pydantic.Field(0, ge=0)
    precision: Literal["32", "bf16-mixed"] = "32"
    views: list[Literal["near", "far", "mean", "diff"]] | None = pydantic.Field(None, min_length=1)

    _precision = pydantic.field_validator("precision", mode="before")(lambda value: _precision_text(value))

    @pydantic.field_validator("views")
    @classmethod
    def _distinct(cls, views: list[str] | None) -> list[str] | None:
        if views is not None and len(set(views)) != len(views):
            raise ValueError(f"each view once, got {views}")
        return views


def _precision_text(value: Any) -> Any:
    """YAML reads ``precision: 32`` as a number; the choices are strings."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class EvaluationConfig(Params):
    decision_percentile: float = pydantic.Field(90.0, gt=0, lt=100)
    plots: bool = False


MLFLOW_MISSING = ("tracking.mlflow: the mlflow package is not installed; pip install 'asdcore[mlflow]' "
                  "(or remove tracking.mlflow from the pipeline)")


class MlflowConfig(Params):
    """MLflow tracking: the tracking ``uri`` (a server, or ``file:///abs/path/mlruns``) and the
    ``experiment`` (default: the pipeline name)."""

    uri: str = pydantic.Field(min_length=1)
    experiment: str | None = pydantic.Field(None, min_length=1)

    @pydantic.model_validator(mode="after")
    def _installed(self) -> MlflowConfig:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError(MLFLOW_MISSING)
        return self


class TrackingConfig(Params):
    """Where runs are tracked besides their folders (default: nowhere). Not an input of any unit: changing
    it redoes nothing."""

    mlflow: MlflowConfig | None = None


class DatasetConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)
    name: str


class PipelineConfig(Params):
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.-]+$")
    dataset: DatasetConfig
    frontend: FrontendConfig
    backends: list[BackendComponent] = pydantic.Field(min_length=1)
    fusions: list[FusionConfig] = []
    scorer: str | None = None
    seeds: list[int] = pydantic.Field([0], min_length=1)
    output: str = "results"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    audio_cache: bool = True
    extraction: ExtractionConfig = ExtractionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    executor: Component = Component(name="local")
    tracking: TrackingConfig = TrackingConfig()


@dataclass(frozen=True)
class Resolved:
    """A validated pipeline: the config plus every component's validated params (defaults filled)."""

    config: PipelineConfig
    dataset_params: dict[str, Any]
    frontend_params: dict[str, Any]
    loss_params: dict[str, Any] | None
    augmentation_params: list[dict[str, Any]]
    backend_params: dict[str, tuple[str, dict[str, Any]]]
    scorer: str
    executor_params: dict[str, Any]
    views: tuple[str, ...] = ("near",)
    backend_views: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    fusions: dict[str, FusionConfig] = dataclasses.field(default_factory=dict)

    @property
    def result_ids(self) -> list[str]:
        """The folders of scored results per machine type: every backend id, then every fusion id."""
        return [*self.backend_params, *self.fusions]

    def as_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (saved with the run)."""
        data = self.config.model_dump(mode="json")
        data["dataset"] = {"name": self.config.dataset.name, **self.dataset_params}
        data["frontend"]["params"] = self.frontend_params
        if self.loss_params is not None:
            data["frontend"]["loss"]["params"] = self.loss_params
        for aug, params in zip(data["frontend"]["augmentations"], self.augmentation_params):
            aug["params"] = params
        data["backends"] = [{"id": bid, "name": name, "params": params, **self.backend_views[bid]}
                            for bid, (name, params) in self.backend_params.items()]
        data["extraction"]["views"] = list(self.views)
        data["scorer"] = self.scorer
        data["executor"]["params"] = self.executor_params
        return data


def load_config(
    source: str | Path | dict, overrides: list[str] = (), seeds: str | None = None, registry: Registry | None = None,
    executor: str | None = None,
) -> Resolved:
    """Read a pipeline YAML (or mapping), apply ``key=value`` overrides, validate everything. ``executor``
    names another executor than the file's (its params then come from the overrides alone)."""
    data = read_yaml(source) if not isinstance(source, dict) else dict(source)
    if executor is not None and (data.get("executor") or {}).get("name") != executor:
        data["executor"] = {"name": executor}
    for item in overrides:
        _apply_override(data, item)
    if seeds is not None:
        data["seeds"] = _parse_seeds(seeds)
    config = validate(PipelineConfig, data, "")
    config = config.model_copy(update={"output": expand_path(config.output, "output")})
    return resolve(config, registry or get_registry())


def resolve(config: PipelineConfig, registry: Registry) -> Resolved:
    """Check every component name against the registry and validate its params."""
    ds_raw = dict(config.dataset.model_extra or {})
    if "root" in ds_raw and isinstance(ds_raw["root"], str):
        ds_raw["root"] = expand_path(ds_raw["root"], "dataset.root")
    dataset_cls = _entry(registry, "datasets", config.dataset.name, "dataset.name").cls
    validated = validate(dataset_cls.Params, ds_raw, "dataset")
    dataset_params = validated.model_dump(mode="json")

    fe = config.frontend
    frontend_params = _params(registry, "frontends", fe.name, fe.params, "frontend")
    loss_params = _params(registry, "losses", fe.loss.name, fe.loss.params, "frontend.loss") if fe.loss else None
    augmentation_params = [
        _params(registry, "augmentations", a.name, a.params, f"frontend.augmentations.{i}")
        for i, a in enumerate(fe.augmentations)
    ]
    backend_params: dict[str, tuple[str, dict]] = {}
    for i, backend in enumerate(config.backends):
        bid = backend.id or backend.name
        if bid in backend_params:
            raise ConfigError(
                f"backends.{i}: backend id {bid!r} is used twice; give each an `id:` to name its result folder"
            )
        backend_params[bid] = (backend.name, _params(registry, "backends", backend.name, backend.params, f"backends.{i}"))
    dataset = dataset_cls(validated)
    views = _views(config, dataset)
    backend_views = {backend.id or backend.name: _backend_view(backend, views, f"backends.{i}")
                     for i, backend in enumerate(config.backends)}
    fusions = _fusions(config.fusions, backend_params)
    scorer = config.scorer or dataset.scorer  # may depend on the params (e.g. the year)
    _entry(registry, "scorers", scorer, "scorer")
    executor_params = _params(registry, "executors", config.executor.name, config.executor.params, "executor")
    return Resolved(config, dataset_params, frontend_params, loss_params, augmentation_params, backend_params, scorer,
                    executor_params, views, backend_views, fusions)


def _views(config: PipelineConfig, dataset) -> tuple[str, ...]:
    """The extracted views (default: the dataset's channel choice), each one the dataset can give."""
    error = dataset.channel_error(dataset.params.channels)
    if error:
        raise ConfigError(f"dataset.channels: {error}")
    views = tuple(config.extraction.views or (dataset.params.channels,))
    for i, view in enumerate(views):
        error = dataset.channel_error(view)
        if error:
            raise ConfigError(f"extraction.views.{i}: {error}")
    return views


def _backend_view(backend: BackendComponent, views: tuple[str, ...], path: str) -> dict[str, Any]:
    """``{"view": ..., "alpha": ...}`` of a backend, checked against the extracted views."""
    view = backend.view or views[0]
    needed = ("near", "far") if view in DERIVED_VIEWS else (view,)
    missing = [v for v in needed if v not in views]
    if missing:
        raise ConfigError(f"{path}.view: {view!r} needs the {' and '.join(missing)} view(s), but extraction.views "
                          f"is {list(views)}; add them, e.g. extraction: {{views: [near, far]}}")
    if backend.alpha is not None and view != "residual":
        raise ConfigError(f"{path}.alpha: only the residual view takes alpha (view is {view!r})")
    alpha = 0.5 if backend.alpha is None and view == "residual" else backend.alpha
    return {"view": view, "alpha": alpha}


def _fusions(fusions: list[FusionConfig], backends: dict[str, Any]) -> dict[str, FusionConfig]:
    out: dict[str, FusionConfig] = {}
    for i, fusion in enumerate(fusions):
        if fusion.id in backends or fusion.id in out:
            raise ConfigError(f"fusions.{i}.id: {fusion.id!r} is already the id of a backend or fusion; "
                              "result folders must be distinct")
        for key in ("near", "far"):
            member = getattr(fusion, key)
            if member not in backends:
                raise ConfigError(f"fusions.{i}.{key}: no backend with id {member!r}; backend ids: "
                                  f"{', '.join(backends)}.{suggest(member, list(backends))}")
        out[fusion.id] = fusion
    return out


def _entry(registry: Registry, kind: str, name: str, path: str):
    try:
        return registry.get(kind, name)
    except ConfigError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _params(registry: Registry, kind: str, name: str, params: dict, path: str) -> dict:
    cls = _entry(registry, kind, name, f"{path}.name").cls
    return validate(cls.Params, params, f"{path}.params").model_dump(mode="json")


def read_yaml(path: str | Path, what: str = "pipeline") -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a YAML mapping")
    return data


def _apply_override(data: dict, item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. dataset.root=data")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    set_value(data, key, value, f"--set {item!r}")


def set_value(data: dict, key: str, value: Any, where: str) -> None:
    """Set the value at the dotted ``key`` (list items by index) in ``data``; ``where`` names the override
    in errors."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: depth + 1]), where)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key, where)] = value
    else:
        node[last] = value


def _child(node: Any, part: str, path: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path, where)]
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: {path} is not a mapping")
    if node.get(part) is None:
        node[part] = {}
    return node[part]


def _index(node: list, part: str, path: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{where}: {path} must be an index below {len(node)}")
    return int(part)


def _parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


_UNSET = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def expand_path(value: str, key: str, hint: str = "") -> str:
    """``value`` with ``~`` and environment variables expanded; an unset variable is a ConfigError naming
    ``key`` (followed by ``hint``, e.g. where to get the file)."""
    expanded = os.path.expanduser(os.path.expandvars(value))
    missing = _UNSET.search(expanded)
    if missing:
        message = f"{key}: environment variable ${missing.group(1)} in {value!r} is not set"
        raise ConfigError(f"{message}. {hint}" if hint else message)
    return expanded
