"""The core's generic scorer ``hmean`` (the DCASE 2022–2025 scheme for any dataset)."""
from ..hookspecs import hookimpl
from ..scoring import HarmonicMeanScorer


@hookimpl
def register_scorers(register):
    register("hmean", HarmonicMeanScorer)
