"""``synth``: the synthetic machine sounds of :mod:`asd_datasets.synth`, generated on first use."""
from __future__ import annotations

import pydantic

import asdcore
from asdcore.errors import ConfigError

from . import synth
from .layout import FormattedDataset


class SynthDataset(FormattedDataset):
    """Synthetic DCASE-2023-style data: section 00, source/target domains, attributes, anomalies in test.

    With ``generate: true`` (default) missing clips are generated into ``root`` before a run. Usage::

        dataset: {name: synth, root: data/synth, machines: all, n_train_source: 990, n_train_target: 10}
    """

    scorer = "dcase2023"

    class Params(asdcore.DatasetParams):
        generate: bool = True
        seed: int = 0
        n_train_source: int = pydantic.Field(990, ge=1)
        n_train_target: int = pydantic.Field(10, ge=1)
        n_test: int = pydantic.Field(200, ge=4, multiple_of=4)
        clip_seconds: float = pydantic.Field(2.0, gt=0)

    def __init__(self, params: Params):
        super().__init__(params)
        self.clip_seconds = params.clip_seconds

    @property
    def id(self) -> str:
        return "synth"

    def options(self) -> synth.SynthOptions:
        p = self.params
        machines = synth.MACHINE_TYPES if p.machines == "all" else tuple(p.machines)
        unknown = [m for m in machines if m not in synth.MACHINE_TYPES]
        if unknown:
            raise ConfigError(
                f"dataset.machines: unknown synthetic machine type(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(synth.MACHINE_TYPES)}"
            )
        return synth.SynthOptions(
            machines=machines, n_train_source=p.n_train_source, n_train_target=p.n_train_target,
            n_test=p.n_test, clip_seconds=p.clip_seconds, sample_rate=self.sample_rate, seed=p.seed,
        )

    def prepare(self, progress: bool = True) -> None:
        if self.params.generate:
            options = self.options()
            if not synth.is_complete(self.root, options):
                synth.generate(self.root, options, progress=progress)
        super().prepare(progress)
