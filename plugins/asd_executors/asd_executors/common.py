"""What the executors share: unit kinds, resource tables per kind, and the messages for missing extras."""
from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pydantic

import asdcore

KINDS = ("train", "extract", "score", "evaluate", "summary", "plots", "table")


def check_kinds(resources: dict) -> dict:
    """``resources`` keys must be ``default`` or a unit kind."""
    unknown = [key for key in resources if key != "default" and key not in KINDS]
    if unknown:
        raise ValueError(f"unknown unit kind(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: default, {', '.join(KINDS)}")
    return resources


def resource_table(resources: type) -> Any:
    """The type of an executor's ``resources`` param: unit kind (or ``default``) -> ``resources``."""
    return Annotated[dict[str, resources], pydantic.AfterValidator(check_kinds)]


def require(package: str, extra: str) -> ModuleType:
    """Import ``package``, the engine of the executor ``extra``; its absence is an error saying what to install."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise asdcore.ConfigError(f"executor {extra!r} needs {package}, which is not installed; "
                                  f"pip install 'asd-executors[{extra}]' (or pip install {package})") from None


def unit_root(units: Sequence) -> Path:
    """The folder that holds the outputs of all ``units`` (their pipelines' common parent)."""
    roots = {os.fspath(unit.lock.parent.parent) for unit in units}
    return Path(os.path.commonpath(sorted(roots))) if roots else Path.cwd()


def worker_logging() -> None:
    """In a worker process without logging set up, log asdcore's progress (to the job's log)."""
    logger = logging.getLogger("asdcore")
    if not logging.getLogger().handlers and logger.level == logging.NOTSET:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")


def limit_threads(threads: int) -> None:
    """Let torch and OpenMP use ``threads`` threads: more threads than the unit's cores make OpenMP's
    waiting threads compete for them (several times slower). torch reads the variable when it is
    imported; one imported already is told directly."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
