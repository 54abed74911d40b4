"""``{{ cookiecutter.dataset_name }}``: WAV files in ``<root>/<machine>/{train,test}/``, labelled by their names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic

import asdcore

NAME = "{{ cookiecutter.dataset_name }}"
LABELS = {"normal": asdcore.NORMAL, "anomaly": asdcore.ANOMALY}


class {{ cookiecutter.class_name }}(asdcore.Dataset):
    """Recordings of your machines, one folder per machine type::

        <root>/<machine>/train/normal_*.wav
        <root>/<machine>/test/normal_*.wav  and  anomaly_*.wav

    The prefix of a file name is its label; training clips are normal. Every clip is in section 00 of the
    source domain and is scored with the core's ``hmean`` scorer. Files are mono at ``sample_rate``;
    ``clip_seconds: null`` takes the longest training clip (shorter clips are tiled). Usage::

        dataset: {name: {{ cookiecutter.dataset_name }}, root: data/mine, machines: all, sample_rate: 16000}
    """

    scorer = "hmean"

    class Params(asdcore.DatasetParams):
        sample_rate: int = pydantic.Field(16000, gt=0)
        clip_seconds: float | None = pydantic.Field(None, gt=0)

    def __init__(self, params: Params):
        super().__init__(params)
        self.sample_rate = params.sample_rate
        self._longest: float | None = None
        self._listings: dict[tuple[str, str], tuple[asdcore.Clip, ...]] = {}

    @property
    def id(self) -> str:
        return NAME

    @property
    def clip_seconds(self) -> float:
        if self.params.clip_seconds is None:
            if self._longest is None:
                self._longest = max(asdcore.duration(clip.path)
                                    for machine in self.machines() for clip in self.clips(machine, "train"))
            return self._longest
        return self.params.clip_seconds

    def prepare(self, progress: bool = True, force: bool = False) -> None:
        """Check the folders and every file name of the selected machine types before a run starts."""
        for machine in self.machines():
            for split in ("train", "test"):
                self.clips(machine, split)

    def available_machines(self) -> list[str]:
        if not self.root.is_dir():
            raise asdcore.DatasetError(f"dataset root {str(self.root)!r} does not exist; set dataset.root to the "
                                       "folder that holds <machine>/train and <machine>/test")
        machines = sorted(path.name for path in self.root.iterdir() if path.is_dir())
        if not machines:
            raise asdcore.DatasetError(f"{str(self.root)!r} has no machine folders; expected "
                                       "<root>/<machine>/train/normal_*.wav")
        return machines

    def clips(self, machine: str, split: str) -> list[asdcore.Clip]:
        if (machine, split) not in self._listings:
            self._listings[machine, split] = self._list(machine, split)
        return list(self._listings[machine, split])

    def _list(self, machine: str, split: str) -> tuple[asdcore.Clip, ...]:
        folder = self.root / machine / split
        if not folder.is_dir():
            raise asdcore.DatasetError(f"missing folder {str(folder)!r}; every machine type needs train/ and test/")
        paths = sorted(path for path in folder.iterdir() if path.suffix.lower() == ".wav")
        if not paths:
            raise asdcore.DatasetError(f"no .wav files in {str(folder)!r}")
        return tuple(asdcore.Clip(path, machine, split, section=0, domain=asdcore.SOURCE,
                                  is_anomaly=label(path, split)) for path in paths)

    def load(self, clip: asdcore.Clip) -> np.ndarray:
        """The whole clip as mono float32; a missing, unreadable, multi-channel or differently sampled file
        raises AudioError naming it."""
        return asdcore.read_audio(clip.path, self.sample_rate)


def label(path: Path, split: str) -> int:
    """NORMAL or ANOMALY from the file name's prefix (``normal_`` or ``anomaly_``)."""
    prefix = path.name.partition("_")[0].lower()
    if prefix not in LABELS:
        raise asdcore.DatasetError(f"{path}: the file name must start with 'normal_' or 'anomaly_', which gives "
                                   "its label; rename the file")
    if split == "train" and LABELS[prefix] == asdcore.ANOMALY:
        raise asdcore.DatasetError(f"{path}: training clips must be normal; move the file to the test folder")
    return LABELS[prefix]
