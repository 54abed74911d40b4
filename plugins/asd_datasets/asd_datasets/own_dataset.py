"""``own``: your own recordings, ``<root>/<machine>/{train,test}/*.wav`` with any file names.

Test labels come from an optional CSV per machine type (``file,label[,domain]``; label
``normal``/``anomaly`` or 0/1, domain ``source``/``target`` or 0/1, header optional); test clips
it does not list are unlabelled (``is_anomaly = -1``). Train clips are normal source-domain clips.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path, PurePosixPath

import numpy as np
import pydantic
import soundfile as sf

import asdcore
from asdcore import duration, read_audio, warn_tiling
from asdcore.errors import AudioError, DatasetError

log = logging.getLogger("asdcore")

DEFAULT_CSV = "test_labels.csv"
LABELS = {"normal": asdcore.NORMAL, "0": asdcore.NORMAL, "anomaly": asdcore.ANOMALY, "1": asdcore.ANOMALY}
DOMAINS = {"source": asdcore.SOURCE, "0": asdcore.SOURCE, "target": asdcore.TARGET, "1": asdcore.TARGET}


class OwnDataset(asdcore.Dataset):
    """Recordings of your own machines (section 00, subset ``dev``, scored with ``hmean``). Usage::

        dataset: {name: own, root: data/mine, machines: all, sample_rate: 16000, clip_seconds: null}

    ``clip_seconds: null`` uses the longest training clip. Files at another sample rate are
    resampled and multi-channel files mixed down. ``labels_csv`` (default
    ``<root>/<machine>/test_labels.csv`` where present) names a CSV whose ``file`` column holds test
    file names or ``<machine>/test/<name>`` paths; relative paths are read from ``root`` and
    ``{machine}`` is replaced by the machine type.
    """

    scorer = "hmean"

    class Params(asdcore.DatasetParams):
        sample_rate: int = pydantic.Field(16000, gt=0)
        clip_seconds: float | None = pydantic.Field(None, gt=0)
        labels_csv: str | None = None

    def __init__(self, params: Params):
        super().__init__(params)
        self.sample_rate = params.sample_rate
        self._noted: set[str] = set()
        self._longest: float | None = None
        self._listings: dict[tuple[str, str], tuple[asdcore.Clip, ...]] = {}

    @property
    def id(self) -> str:
        return "own"

    @property
    def clip_seconds(self) -> float:
        if self.params.clip_seconds is not None:
            return self.params.clip_seconds
        if self._longest is None:
            clips = [c for m in self.machines() for c in self.clips(m, "train")]
            if not clips:
                raise DatasetError(f"no training clips in {str(self.root)!r} to take the clip length from")
            self._longest = max(duration(c.path) for c in clips)
        return self._longest

    def prepare(self, progress: bool = True, force: bool = False) -> None:
        for machine in self.machines():
            for split in ("train", "test"):
                self.clips(machine, split)

    def available_machines(self) -> list[str]:
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {str(self.root)!r} does not exist")
        machines = sorted((p.name for p in self.root.iterdir() if p.is_dir()), key=str.lower)
        if not machines:
            raise DatasetError(f"{str(self.root)!r} has no machine folders; expected <root>/<machine>/train/*.wav")
        return machines

    def clips(self, machine: str, split: str) -> list[asdcore.Clip]:
        if (machine, split) not in self._listings:
            self._listings[machine, split] = self._list(machine, split)
        return list(self._listings[machine, split])

    def _list(self, machine: str, split: str) -> tuple[asdcore.Clip, ...]:
        folder = self.root / machine / split
        if not folder.is_dir():
            raise DatasetError(f"missing folder {str(folder)!r}")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav")
        labels = self._labels(machine, {p.name for p in paths}) if split == "test" else {}
        clips = []
        for path in paths:
            is_anomaly, domain = labels.get(path.name, (asdcore.NORMAL if split == "train" else asdcore.UNKNOWN,
                                                        asdcore.SOURCE))
            clips.append(asdcore.Clip(path, machine, split, 0, domain, is_anomaly))
        return tuple(clips)

    def metadata_files(self, machine: str) -> list[Path]:
        """The machine type's label CSV, where there is one."""
        path = self._labels_path(machine)
        return [path] if path.is_file() else []

    def _labels_path(self, machine: str) -> Path:
        if self.params.labels_csv is None:
            return self.root / machine / DEFAULT_CSV
        return self.root / self.params.labels_csv.replace("{machine}", machine)

    def _labels(self, machine: str, names: set[str]) -> dict[str, tuple[int, int]]:
        """Test file name -> (is_anomaly, domain) from the machine type's label CSV, if any."""
        path = self._labels_path(machine)
        if not path.is_file():
            if self.params.labels_csv is None:
                return {}
            raise DatasetError(f"labels_csv {str(path)!r} does not exist")
        return read_labels(path, machine, names)

    def load(self, clip: asdcore.Clip) -> np.ndarray:
        """The whole clip as mono float32 at ``sample_rate``."""
        wave, rate, channels = _load(clip.path)
        if channels > 1:
            self._note(f"{channels}ch", f"mixing {channels}-channel files down to mono (first: {clip.path})")
        if rate != self.sample_rate:
            import torch
            import torchaudio.functional

            self._note(f"{rate}Hz", f"resampling {rate} Hz files to {self.sample_rate} Hz (first: {clip.path})")
            wave = torchaudio.functional.resample(torch.from_numpy(wave), rate, self.sample_rate).numpy()
        warn_tiling(clip.path, len(wave), self.clip_samples_of(clip.machine), self.sample_rate)
        return wave

    def _note(self, key: str, message: str) -> None:
        if key not in self._noted:
            self._noted.add(key)
            log.info("own: %s", message)


def read_labels(path: Path, machine: str, names: set[str]) -> dict[str, tuple[int, int]]:
    """Parse a label CSV; rows of other machine types are skipped, unknown files and values are errors."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise DatasetError(f"cannot read labels_csv {str(path)!r}: {exc.strerror}") from None
    out = {}
    for number, row in enumerate(rows, 1):
        row = [cell.strip() for cell in row]
        if not any(row) or (number == 1 and row[0].lower() == "file"):
            continue
        where = f"{path}:{number}"
        if len(row) not in (2, 3):
            raise DatasetError(f"{where}: expected file,label[,domain], got {','.join(row)!r}")
        parts = PurePosixPath(row[0]).parts
        if len(parts) > 1 and (len(parts) < 3 or parts[-2] != "test"):
            raise DatasetError(f"{where}: {row[0]!r} is neither a file name nor <machine>/test/<name>")
        if len(parts) > 1 and parts[-3] != machine:
            continue
        if parts[-1] not in names:
            raise DatasetError(f"{where}: {row[0]!r} names no file in the {machine}/test folder")
        out[parts[-1]] = (_value(LABELS, row[1], "label", where),
                          _value(DOMAINS, row[2], "domain", where) if len(row) == 3 else asdcore.SOURCE)
    return out


def _value(table: dict[str, int], raw: str, what: str, where: str) -> int:
    try:
        return table[raw.lower()]
    except KeyError:
        raise DatasetError(f"{where}: {what} {raw!r} is not one of {', '.join(table)}") from None


def _load(path: Path) -> tuple[np.ndarray, int, int]:
    """(mono float32 wave, sample rate, channels), read with :func:`read_audio`'s checks (missing, corrupt,
    truncated, empty, NaN/infinite) whatever the number of channels."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    wave = read_audio(path, info.samplerate, info.channels)
    if info.channels > 1:
        wave = wave.mean(axis=1)
    return wave, info.samplerate, info.channels
