"""The warnings of the libraries backends fit with, gathered into one line per machine type and backend."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("asdcore")

BACKEND_LIBRARIES = ("sklearn", "imblearn")  # whose warnings during a backend's fit and score are gathered
_passed_on: dict = {}  # the warnings registry of those passed on (shown once per place, as by default)


@contextmanager
def backend_warnings(machine: str, backend: str) -> Iterator[None]:
    """Gather the warnings scikit-learn and imbalanced-learn raise in the block (k-means' ConvergenceWarning on
    near-identical embeddings, SMOTE's) into one ``asdcore`` warning naming ``machine`` and ``backend``, each
    distinct text once; other warnings pass on as they are."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        texts: list[str] = []
        for warning in caught:
            if _from_backend_library(warning):
                text = f"{warning.category.__name__}: {' '.join(str(warning.message).split())}"
                if text not in texts:
                    texts.append(text)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno,
                                       registry=_passed_on, source=warning.source)
        if texts:
            log.warning("backend %r on %s: %s", backend, machine, "; ".join(texts))


def _from_backend_library(warning: warnings.WarningMessage) -> bool:
    """Whether ``warning`` is of a class of, or was raised in, one of :data:`BACKEND_LIBRARIES`."""
    module = warning.category.__module__.split(".")[0]
    return module in BACKEND_LIBRARIES or any(part in BACKEND_LIBRARIES for part in Path(warning.filename).parts)
