"""The unified ("formatted") DCASE layout: ``<root>/<machine>/{train,test}/<name>.wav``.

Names: ``section_<SS>_<source|target>_<train|test>_<normal|anomaly>_<index>[_<attribute tokens>].wav``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import asdcore
from asdcore.errors import DatasetError

SPLITS = ("train", "test")
DOMAINS = {"source": asdcore.SOURCE, "target": asdcore.TARGET}
LABELS = {"normal": asdcore.NORMAL, "anomaly": asdcore.ANOMALY}


@dataclass(frozen=True)
class ParsedName:
    section: int
    domain: int
    split: str
    is_anomaly: int
    index: str
    attribute: str


def parse_name(path: Path) -> ParsedName:
    """Parse a unified file name; a malformed one is a DatasetError naming the file."""
    parts = Path(path).stem.split("_")
    try:
        if parts[0] != "section" or parts[3] not in SPLITS or not (parts[1].isdigit() and parts[5].isdigit()):
            raise ValueError
        return ParsedName(int(parts[1]), DOMAINS[parts[2]], parts[3], LABELS[parts[4]], parts[5], "_".join(parts[6:]))
    except (ValueError, KeyError, IndexError):
        raise DatasetError(
            f"{path}: file name does not follow "
            "section_<SS>_<source|target>_<train|test>_<normal|anomaly>_<index>[_<attributes>].wav"
        ) from None


class FormattedDataset(asdcore.Dataset):
    """Reads any dataset in the unified layout; subclasses set the id, clip length and subsets."""

    dev_machines: ClassVar[frozenset[str] | None] = None  # None: every machine type is "dev"

    def available_machines(self) -> list[str]:
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {str(self.root)!r} does not exist")
        return sorted(
            (p.name for p in self.root.iterdir() if any((p / s).is_dir() for s in SPLITS)), key=str.lower
        )

    def clips(self, machine: str, split: str) -> list[asdcore.Clip]:
        listings = self.__dict__.setdefault("_listings", {})
        if (machine, split) not in listings:
            listings[machine, split] = self._list(machine, split)
        return list(listings[machine, split])

    def _list(self, machine: str, split: str) -> tuple[asdcore.Clip, ...]:
        folder = self.root / machine / split
        if not folder.is_dir():
            raise DatasetError(f"missing folder {str(folder)!r}")
        subset = "dev" if self.dev_machines is None or machine in self.dev_machines else "eval"
        clips = []
        for path in sorted(folder.glob("*.wav")):
            name = parse_name(path)
            if name.split != split:
                raise DatasetError(f"{path}: a {name.split} file in the {split} folder")
            clips.append(asdcore.Clip(path, machine, split, name.section, name.domain, name.is_anomaly,
                                      name.attribute, subset))
        return tuple(clips)
