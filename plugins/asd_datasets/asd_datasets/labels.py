"""Meta-information labels for discriminative training.

A clip's class is the string of the requested fields joined with ``---``: machine type, section
(as an int), attribute string and domain (``is_target`` 0/1), e.g. ``fan---0---m-n_W---1``.
Class ids are the ranks of these strings in sorted order.

The attribute string is an opaque label, the name's tokens after the index as they are: a key
that repeats (2026's ``car_A1_spd_1_mic_2_mic_1``) keeps both values, and case counts, so 2026
gearboxEmu's ``pro_Y`` and ``pro_y`` are two classes. That is deliberate: the names are the only
record of the conditions, and merging values would guess at what the organisers meant.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from asdcore import write_json
from asdcore.errors import DatasetError

from .layout import SPLITS, parse_name
from .years import YEARS, get_year

SEPARATOR = "---"
FIELDS = ("machine", "section", "attribute", "domain")
VARIANTS = {"main": None, "machine_section": ("machine", "section")}  # None: the year's label_fields


@dataclass(frozen=True)
class LabelSet:
    """Class names and the class id of every clip (path relative to the formatted root; -1: unseen class)."""

    classes: list[str]
    path2idx: dict[str, int]
    num_class_train: int
    num_class_test: int

    @property
    def num_class(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict:
        return {"num_class": self.num_class, "num_class_train": self.num_class_train,
                "num_class_test": self.num_class_test, "classes": self.classes, "path2idx_dict": self.path2idx}

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())


def formatted_dir(year: int, root: Path) -> Path:
    """``<root>/formatted/dcase<year>/raw``: the machine-type folders of a formatted year."""
    return Path(root) / "formatted" / f"dcase{year}" / "raw"


def variant_fields(year: int, variant: str) -> tuple[str, ...]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown label variant {variant!r}; variants: {', '.join(VARIANTS)}")
    return VARIANTS[variant] or get_year(year).label_fields


def build_labels(year: int, root: Path, fields: tuple[str, ...] | None = None, include_test: bool = True) -> LabelSet:
    """Label every train and test clip of a formatted year.

    The classes are those of the train and test clips (``include_test``, the reference behaviour)
    or of the train clips only, in which case test clips of an unseen class get -1.
    """
    fields = tuple(fields or get_year(year).label_fields)
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise ValueError(f"unknown label field(s) {', '.join(unknown)}; fields: {', '.join(FIELDS)}")
    raw = formatted_dir(year, root)
    if not raw.is_dir():
        raise DatasetError(f"no formatted DCASE {year} data at {str(raw)!r}; "
                           f"run `asdcore data format --year {year} --root {root}` first")
    names = {split: _class_names(raw, split, fields) for split in SPLITS}
    seen = {split: set(table.values()) for split, table in names.items()}
    classes = sorted(seen["train"] | seen["test"] if include_test else seen["train"])
    index = {name: i for i, name in enumerate(classes)}
    path2idx = {path: index.get(name, -1) for table in names.values() for path, name in table.items()}
    return LabelSet(classes, path2idx, len(seen["train"]), len(seen["test"]))


def _class_names(raw: Path, split: str, fields: tuple[str, ...]) -> dict[str, str]:
    """Path relative to the formatted root -> class name, for every clip of one split."""
    out = {}
    for folder in sorted(raw.glob(f"*/{split}")):
        machine = folder.parent.name
        for path in sorted(folder.glob("*.wav")):
            name = parse_name(path)
            values = {"machine": machine, "section": str(name.section), "attribute": name.attribute,
                      "domain": str(name.domain)}
            out[path.relative_to(raw.parent.parent).as_posix()] = SEPARATOR.join(values[f] for f in fields)
    return out


@click.command("labels")
@click.option("--year", required=True, type=int, help=f"DCASE year ({', '.join(map(str, YEARS))}).")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data root holding formatted/dcase<year>/raw.")
@click.option("--variant", type=click.Choice(list(VARIANTS)), default="main", show_default=True,
              help="main: the year's label fields; machine_section: machine type + section.")
@click.option("--train-only", is_flag=True, help="Classes from training clips only (unseen test classes get -1).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the class counts to this file.")
def labels_command(year: int, root: Path, variant: str, train_only: bool, json_path: Path | None) -> None:
    """Build the class labels of a formatted DCASE year for discriminative training.

    Writes <root>/labels/dcase<year>/<variant>.json (<variant>_train_only.json with --train-only).
    """
    try:
        labels = build_labels(year, root, variant_fields(year, variant), include_test=not train_only)
    except (ValueError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    target = Path(root) / "labels" / f"dcase{year}" / f"{variant}{'_train_only' if train_only else ''}.json"
    labels.save(target)
    click.echo(f"num_class: {labels.num_class}\nclasses seen in training: {labels.num_class_train}\n"
               f"classes seen in test: {labels.num_class_test}\nwrote {target}")
    if json_path is not None:
        write_json(json_path, {k: v for k, v in labels.to_json().items() if k.startswith("num_class")})
