"""The recipe listing of ``asdcore recipes``: each pipeline and grid file with the first phrase of its
leading comment."""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

WIDTH = 110  # characters of a description before it is cut


def recipes_folder() -> Path:
    """``./recipes`` when there is one, else the recipes of asdcore's source tree."""
    for folder in (Path.cwd() / "recipes", Path(__file__).resolve().parent.parent / "recipes"):
        if folder.is_dir():
            return folder
    raise ConfigError("no recipes folder in the current folder or beside asdcore's source: "
                      "give one, e.g. `asdcore recipes path/to/recipes`")


def describe_recipes(folder: Path) -> str:
    """One line per ``*.yaml`` in ``folder`` (pipelines) and in its ``grids/`` (grids): name and description."""
    sections = [("pipelines (asdcore run FILE)", sorted(folder.glob("*.yaml"))),
                ("grids (asdcore grid FILE)", sorted((folder / "grids").glob("*.yaml")))]
    lines = []
    for title, files in sections:
        if not files:
            continue
        width = max(len(f.stem) for f in files)
        lines += [f"{title}, in {folder if title.startswith('pipelines') else folder / 'grids'}:"]
        lines += [f"  {f.stem.ljust(width)}  {description(f)}" for f in files]
    if not lines:
        raise ConfigError(f"{folder}: no recipes (*.yaml) here")
    return "\n".join(lines)


def description(path: Path) -> str:
    """The first sentence of a file's leading comment (cut at :data:`WIDTH`), or '' when it has none."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or line.startswith("#  ") or text.startswith(("asdcore ", "export ")):
            break  # the comment's end, or a command example
        words.append(text)
    sentence = _first_sentence(" ".join(words))
    return sentence if len(sentence) <= WIDTH else sentence[: WIDTH - 1].rsplit(" ", 1)[0] + "…"


def _first_sentence(text: str) -> str:
    """``text`` up to the first full stop outside brackets that a capital letter (or the end) follows."""
    depth = 0
    for i, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == "." and depth == 0 and (i + 1 == len(text) or text[i + 1 : i + 3].strip()[:1].isupper()):
            return text[:i]
    return text
