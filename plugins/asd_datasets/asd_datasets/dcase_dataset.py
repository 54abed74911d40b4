"""``dcase``: a DCASE Task 2 year (2020–2026) in the formatted layout ``<root>/formatted/dcase<year>/raw``."""
from __future__ import annotations

import dataclasses

import pydantic

import asdcore
from asdcore import duration
from asdcore.errors import DatasetError

from .labels import formatted_dir
from .layout import FormattedDataset
from .years import YEARS, YearSpec


class DcaseDataset(FormattedDataset):
    """The train and test clips of one DCASE year, after ``asdcore data format``. Usage::

        dataset: {name: dcase, root: data, year: 2023, machines: all}

    Clip length, sample rate, channels, official sections (dev/eval) and scorer come from the year's spec;
    the 2025 ``supplemental/`` folders are ignored. 2026 clips have two channels (near and far microphone;
    ``channels: near | far | mean | diff`` chooses what the frontend sees) and a clip length per machine
    type, that of the type's longest training clip (the eval types' lengths are not published per type).
    """

    scorer = "dcase2023"  # class default; an instance holds its year's scorer

    class Params(asdcore.DatasetParams):
        year: int

        @pydantic.field_validator("year")
        @classmethod
        def _known_year(cls, year: int) -> int:
            if year not in YEARS:
                raise ValueError(f"unknown DCASE year {year}; known years: {', '.join(map(str, YEARS))}")
            return year

    def __init__(self, params: Params):
        super().__init__(params)
        self.spec: YearSpec = YEARS[params.year]
        self.data_root = self.root
        self.root = formatted_dir(params.year, self.data_root)
        self.scorer = self.spec.scorer
        self.sample_rate = self.spec.sample_rate
        self.clip_seconds = self.spec.clip_seconds
        self.recorded_channels = self.spec.channels
        self.label_fields = self.spec.label_fields
        self._seconds: dict[str, float] = {}

    @property
    def id(self) -> str:
        return f"dcase{self.spec.year}"

    def prepare(self, progress: bool = True, force: bool = False) -> None:
        self._require_tree()

    def available_machines(self) -> list[str]:
        self._require_tree()
        official = set(self.spec.machines())
        return [m for m in super().available_machines() if m in official]

    def expected_machines(self) -> list[str]:
        """The year's official machine types (dev and eval) that ``machines`` selects."""
        return self.spec.machines() if self.params.machines == "all" else list(self.params.machines)

    def clip_seconds_of(self, machine: str) -> float:
        """The year's clip length, or (2026) that of ``machine``'s longest training clip."""
        if self.clip_seconds is not None:
            return self.clip_seconds
        if machine not in self._seconds:
            lengths = [duration(clip.path) for clip in self.clips(machine, "train")]
            if not lengths:
                raise DatasetError(f"{self.root / machine / 'train'}: no training clips to take the clip length from")
            self._seconds[machine] = max(lengths)
        return self._seconds[machine]

    def subsets(self, machine: str) -> dict[int, str]:
        """The year's official sections of ``machine`` that its test clips have."""
        official = self.spec.subsets(machine)
        return {section: official[section] for section in sorted({c.section for c in self.clips(machine, "test")})}

    def _list(self, machine: str, split: str) -> tuple[asdcore.Clip, ...]:
        official = self.spec.subsets(machine)
        clips = []
        for clip in super()._list(machine, split):
            if clip.section not in official:
                raise DatasetError(
                    f"{clip.path}: section {clip.section:02d} is not a DCASE {self.spec.year} section of {machine} "
                    f"(sections: {', '.join(f'{s:02d}' for s in sorted(official)) or 'none'})"
                )
            clips.append(dataclasses.replace(clip, subset=official[clip.section]))
        return tuple(clips)

    def _require_tree(self) -> None:
        if not self.root.is_dir():
            year = self.spec.year
            raise DatasetError(
                f"no formatted DCASE {year} data at {str(self.root)!r}; "
                f"run `asdcore data format --year {year} --root {self.data_root}` first"
            )
