"""``synth``: the synthetic machine sounds of :mod:`asd_datasets.synth`, generated on first use."""
from __future__ import annotations

from pathlib import Path

import pydantic

import asdcore
from asdcore.errors import ConfigError

from . import synth
from .layout import FormattedDataset


class SynthDataset(FormattedDataset):
    """Synthetic DCASE-2023-style data: section 00, source/target domains, attributes, anomalies in test.

    With ``generate: true`` (default) missing clips are generated into ``root`` before a run; a root
    generated with other parameters is an error, which ``asdcore run --force`` resolves by
    regenerating. Usage::

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

    def expected_machines(self) -> list[str]:
        return list(self.options().machines)

    def prepare(self, progress: bool = True, force: bool = False) -> None:
        if self.params.generate:
            synth.generate(self.root, self.options(), progress=progress, force=force)
        super().prepare(progress, force)

    def metadata_files(self, machine: str) -> list[Path]:
        """With ``generate: false``, the record of the generation parameters (where there is one). With
        ``generate: true`` the parameters are the dataset's params, which are part of every key, and
        :meth:`prepare` guarantees that the files match them; the record, which also lists every
        machine type generated so far, would make adding a machine type redo the others."""
        record = self.root / synth.RECORD
        return [record] if not self.params.generate and record.is_file() else []
