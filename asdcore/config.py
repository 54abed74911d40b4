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
backends: [{name: knn, params: {}}]       # optional `id:` names the result folder (default: name)
scorer: null                              # default: the dataset's official scorer
seeds: [0, 1]
output: results
device: auto                              # auto (CUDA when present), cpu or cuda
audio_cache: true                         # decoded clips kept as memory-mapped arrays under <output>/audio_cache
extraction: {batch_size: 64, num_workers: 0, precision: 32}
evaluation: {decision_percentile: 90, plots: false}   # threshold: percentile of a gamma fit to train scores
executor: {name: local, params: {}}       # what runs the units: local, processes, slurm, ray (asd-executors)
```
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from .errors import ConfigError
from .params import Params, validate
from .registry import Registry, get_registry


class Component(Params):
    name: str
    params: dict[str, Any] = {}


class BackendComponent(Component):
    id: str | None = pydantic.Field(None, pattern=r"^[A-Za-z0-9_.-]+$")


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

    _precision = pydantic.field_validator("precision", mode="before")(lambda value: _precision_text(value))


class FrontendConfig(Component):
    loss: Component | None = None
    augmentations: list[Component] = []
    training: TrainingConfig = TrainingConfig()


class ExtractionConfig(Params):
    batch_size: int = pydantic.Field(64, ge=1)
    num_workers: int = pydantic.Field(0, ge=0)
    precision: Literal["32", "bf16-mixed"] = "32"

    _precision = pydantic.field_validator("precision", mode="before")(lambda value: _precision_text(value))


def _precision_text(value: Any) -> Any:
    """YAML reads ``precision: 32`` as a number; the choices are strings."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class EvaluationConfig(Params):
    decision_percentile: float = pydantic.Field(90.0, gt=0, lt=100)
    plots: bool = False


class DatasetConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)
    name: str


class PipelineConfig(Params):
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.-]+$")
    dataset: DatasetConfig
    frontend: FrontendConfig
    backends: list[BackendComponent] = pydantic.Field(min_length=1)
    scorer: str | None = None
    seeds: list[int] = pydantic.Field([0], min_length=1)
    output: str = "results"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    audio_cache: bool = True
    extraction: ExtractionConfig = ExtractionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    executor: Component = Component(name="local")


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

    def as_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (saved with the run)."""
        data = self.config.model_dump(mode="json")
        data["dataset"] = {"name": self.config.dataset.name, **self.dataset_params}
        data["frontend"]["params"] = self.frontend_params
        if self.loss_params is not None:
            data["frontend"]["loss"]["params"] = self.loss_params
        for aug, params in zip(data["frontend"]["augmentations"], self.augmentation_params):
            aug["params"] = params
        data["backends"] = [
            {"id": bid, "name": name, "params": params} for bid, (name, params) in self.backend_params.items()
        ]
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
    scorer = config.scorer or dataset_cls(validated).scorer  # may depend on the params (e.g. the year)
    _entry(registry, "scorers", scorer, "scorer")
    executor_params = _params(registry, "executors", config.executor.name, config.executor.params, "executor")
    return Resolved(config, dataset_params, frontend_params, loss_params, augmentation_params, backend_params, scorer,
                    executor_params)


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
