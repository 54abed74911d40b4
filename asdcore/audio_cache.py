"""Decoded clips kept on disk: the samples of one (dataset, machine type, split) in one raw file, memory-mapped.

Decoding the WAV files again for every epoch and every extraction dominates short runs; the cache decodes
each clip once, through the dataset's own ``load``, and gives back exactly what that returned. Samples are
stored as int16 when every value is k/32768 (16-bit PCM files), else as float32.

A cache folder holds ``samples-<identity>.<dtype>``, ``progress.json`` while it is built (resumed from
there after an interruption) and ``index.json``, written last, once it is complete.

The build notes the silent clips (every sample 0); each process that opens a cache warns once about them
and about clips tiled more than :data:`~asdcore.audio.MAX_TILES` times to the clip length.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from .audio import warn_tiling
from .errors import AsdcoreError
from .identity import listing_digest, relative
from .interfaces import Clip, Dataset
from .store import fingerprint, write_json

log = logging.getLogger("asdcore")

INDEX, PROGRESS = "index.json", "progress.json"
PCM_SCALE = 32768
SAVE_SECONDS = 2.0  # a build records its progress at least this often
_CHUNK = 1 << 22  # samples converted at a time when a build switches from int16 to float32
SILENT_NAMES = 3  # silent clips named in the warning
_warned: set[Path] = set()  # cache folders whose silent clips this process warned about


class AudioCache:
    """The decoded clips of one machine type and split: ``load(clip)`` equals ``dataset.load(clip)`` bit for bit.

    Pickles without its samples: each process maps the file itself when it first loads a clip.
    """

    def __init__(self, path: Path, dtype: str, index: Mapping[str, tuple[int, int]], silent: Sequence[str] = ()):
        self.path = Path(path)
        self.dtype = dtype
        self.index = dict(index)
        self.silent = tuple(silent)  # paths of the clips whose samples are all 0
        self._samples: np.memmap | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_samples": None}

    def load(self, clip: Clip) -> np.ndarray:
        """The clip's whole waveform (float32)."""
        try:
            start, length = self.index[str(clip.path)]
        except KeyError:
            raise AsdcoreError(f"{clip.path}: not in the audio cache {self.path.parent}") from None
        if self._samples is None:
            try:
                self._samples = np.memmap(self.path, dtype=self.dtype, mode="r")
            except FileNotFoundError:
                raise AsdcoreError(f"{self.path}: the audio cache was rebuilt for other clips since this run "
                                   "began; run again") from None
        samples = self._samples[start : start + length]
        return _from_pcm(samples) if self.dtype == "int16" else np.array(samples)


class CachedLoad:
    """``load(clip)`` through the cache of the clip's (machine type, split); picklable."""

    def __init__(self, caches: Mapping[tuple[str, str], AudioCache]):
        self.caches = dict(caches)

    def __call__(self, clip: Clip) -> np.ndarray:
        return self.caches[clip.machine, clip.split].load(clip)


def open_cache(dataset: Dataset, clips: Sequence[Clip], folder: Path, source: Mapping[str, Any],
               planned: str | None = None, progress: bool = True,
               load: Callable[[Clip], np.ndarray] | None = None) -> AudioCache:
    """The cache of ``clips`` (one machine type and split of ``dataset``) in ``folder``; built first (under a
    lock beside ``folder``, resuming an interrupted build) unless it is complete and of these clips.

    ``load`` decodes a clip (default ``dataset.load``). ``source`` (the dataset's registered name and
    params, which include the channel choice), the sample rate and the clips' listing (paths, sizes, times,
    metadata) make up the cache's identity: a cache of another identity is rebuilt.
    ``planned``: the listing digest the unit was planned with; when it is a content digest
    (``--verify-content``), a cache built from other content is rebuilt too.
    """
    folder = Path(folder)
    listing = listing_digest(clips, dataset.root)
    identity = fingerprint(dict(source), dataset.sample_rate, listing)
    content = None if planned in (None, listing) else planned
    cache = _complete(folder, identity, clips, content)
    if cache is None:
        with _writable(folder):
            folder.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(folder.parent / f"{folder.name}.lock")
            lock.acquire()
        try:
            cache = (_complete(folder, identity, clips, content)
                     or _build(dataset, clips, folder, identity, progress, load or dataset.load))
        finally:
            lock.release()
    _warn(dataset, clips, cache, folder)
    return cache


def _warn(dataset: Dataset, clips: Sequence[Clip], cache: AudioCache, folder: Path) -> None:
    """Warn about the clips (of one machine type and split) tiled many times to the clip length, and (once
    per process) about the silent ones."""
    if not clips:
        return
    machine, split = clips[0].machine, clips[0].split
    length = dataset.clip_samples_of(machine)
    for clip in clips:
        warn_tiling(clip.path, cache.index[str(clip.path)][1], length, dataset.sample_rate)
    if not cache.silent or folder in _warned:
        return
    _warned.add(folder)
    names = ", ".join(relative(Path(path), dataset.root) for path in cache.silent[:SILENT_NAMES])
    more = f" and {len(cache.silent) - SILENT_NAMES} more" if len(cache.silent) > SILENT_NAMES else ""
    if len(cache.silent) == len(clips):
        log.warning("machine type %s: every %s clip is silent (all samples 0): %s%s; its results mean nothing: "
                    "check the recordings or leave it out of `dataset.machines`", machine, split, names, more)
    else:
        log.warning("%s/%s: %d of %d clips are silent (all samples 0): %s%s; check the recordings or remove them",
                    machine, split, len(cache.silent), len(clips), names, more)


def _complete(folder: Path, identity: str, clips: Sequence[Clip], content: str | None) -> AudioCache | None:
    """The complete cache in ``folder`` if it has ``identity`` (and ``content``, unless None)."""
    index = _read_json(folder / INDEX)
    if (index.get("identity") != identity or content not in (None, index.get("content"))
            or not (folder / index["file"]).is_file()):
        return None
    spans = zip(index["starts"], index["lengths"])
    return AudioCache(folder / index["file"], index["dtype"], {str(c.path): span for c, span in zip(clips, spans)},
                      [str(clips[i].path) for i in index.get("silent", [])])


def _build(dataset: Dataset, clips: Sequence[Clip], folder: Path, identity: str, progress: bool,
           load: Callable[[Clip], np.ndarray]) -> AudioCache:
    content = listing_digest(clips, dataset.root, verify_content=True)
    with _writable(folder):
        build = _Build(folder, identity, content)
    done = len(build.starts)
    if done:
        log.info("audio cache %s: resuming at clip %d of %d", folder, done + 1, len(clips))
    else:
        log.info("audio cache %s: %s (%d clips)", folder, "rebuilding" if build.replaced else "building", len(clips))
    saved = time.monotonic()
    try:
        for clip in tqdm(clips[done:], total=len(clips), initial=done, disable=not progress, leave=False,
                         desc=f"audio cache {folder.parent.name}/{folder.name}"):
            wave = _checked(load(clip), clip)
            with _writable(folder):
                build.append(wave)
                if time.monotonic() - saved >= SAVE_SECONDS:
                    build.save()
                    saved = time.monotonic()
    except BaseException:
        with suppress(OSError):
            build.save()
        raise
    with _writable(folder):
        return build.finish(clips, dataset.root)


class _Build:
    """An unfinished cache: the raw file appended to and the progress recorded so far."""

    def __init__(self, folder: Path, identity: str, content: str):
        self.folder, self.identity, self.content = folder, identity, content
        self.dtype: str | None = None
        self.offset = 0  # bytes of the raw file that hold recorded clips
        self.starts: list[int] = []
        self.lengths: list[int] = []
        self.silent: list[int] = []  # positions of the clips whose samples are all 0
        state = _read_json(folder / PROGRESS)
        if (state.get("identity"), state.get("content")) == (identity, content) and self._resumable(state):
            self.dtype, self.offset, self.starts, self.lengths = (state["dtype"], state["offset"], state["starts"],
                                                                  state["lengths"])
            self.silent = state.get("silent", [])
            with open(self.path, "r+b") as f:
                f.truncate(self.offset)  # drop what was written after the last record
            self.replaced = False
        else:
            self.replaced = folder.is_dir() and any(folder.iterdir())
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)

    @property
    def path(self) -> Path:
        return self.folder / f"samples-{self.identity}.{self.dtype}"

    def _resumable(self, state: dict) -> bool:
        try:
            return (state["dtype"] in ("int16", "float32") and len(state["starts"]) == len(state["lengths"])
                    and (self.folder / f"samples-{self.identity}.{state['dtype']}").stat().st_size >= state["offset"])
        except (OSError, KeyError, TypeError):
            return False

    def append(self, wave: np.ndarray) -> None:
        pcm = _to_pcm(wave)
        if self.offset == 0:
            self._remove_samples()
            self.dtype = "int16" if pcm is not None else "float32"
        elif self.dtype == "int16" and pcm is None:
            self._to_float()
        data = pcm if self.dtype == "int16" else wave
        _append(self.path, data)
        self.starts.append(self.offset // data.itemsize)
        self.lengths.append(len(data))
        self.offset += data.nbytes
        if not wave.any():
            self.silent.append(len(self.starts) - 1)

    def _to_float(self) -> None:
        """Rewrite the samples so far as float32, once a clip that is not 16-bit PCM comes."""
        old = self.path
        count = self.offset // 2
        with open(old, "rb") as source, open(self.folder / f"samples-{self.identity}.float32", "wb") as target:
            for begin in range(0, count, _CHUNK):
                _from_pcm(np.fromfile(source, dtype=np.int16, count=min(_CHUNK, count - begin))).tofile(target)
        self.dtype, self.offset = "float32", self.offset * 2
        self.save()
        old.unlink()

    def _remove_samples(self, keep: Path | None = None) -> None:
        for path in self.folder.glob("samples-*"):
            if path != keep:
                path.unlink()

    def save(self) -> None:
        write_json(self.folder / PROGRESS, {"identity": self.identity, "content": self.content, "dtype": self.dtype,
                                            "clips": len(self.starts), "offset": self.offset, "starts": self.starts,
                                            "lengths": self.lengths, "silent": self.silent})

    def finish(self, clips: Sequence[Clip], root: Path) -> AudioCache:
        if self.dtype is None:  # no clips
            self.dtype = "int16"
            self.path.touch()
        self._remove_samples(keep=self.path)  # one left by a build killed while it switched to float32
        write_json(self.folder / INDEX, {"identity": self.identity, "content": self.content, "file": self.path.name,
                                         "dtype": self.dtype, "clips": [relative(c.path, root) for c in clips],
                                         "starts": self.starts, "lengths": self.lengths, "silent": self.silent})
        (self.folder / PROGRESS).unlink(missing_ok=True)
        return AudioCache(self.path, self.dtype, {str(c.path): span for c, span in
                                                  zip(clips, zip(self.starts, self.lengths))},
                          [str(clips[i].path) for i in self.silent])


def _append(path: Path, data: np.ndarray) -> None:
    with open(path, "ab") as f:
        data.tofile(f)


def _to_pcm(wave: np.ndarray) -> np.ndarray | None:
    """``wave`` as int16 k with k/32768 equal to it bit for bit, or None when one value is not of that form."""
    scaled = wave * np.float32(PCM_SCALE)
    if not (np.all(scaled >= -PCM_SCALE) and np.all(scaled < PCM_SCALE)):  # NaN fails too
        return None
    pcm = scaled.astype(np.int16)
    if not np.array_equal(pcm, scaled) or np.any(np.signbit(wave) & (pcm == 0)):  # -0.0 has no int16 form
        return None
    return pcm


def _from_pcm(pcm: np.ndarray) -> np.ndarray:
    return np.multiply(pcm, np.float32(1 / PCM_SCALE), dtype=np.float32)


def _checked(wave: Any, clip: Clip) -> np.ndarray:
    if not isinstance(wave, np.ndarray) or wave.dtype != np.float32 or wave.ndim != 1:
        got = f"{wave.dtype} array of shape {wave.shape}" if isinstance(wave, np.ndarray) else type(wave).__name__
        raise AsdcoreError(f"{clip.path}: the dataset's load returned a {got}, not a 1-D float32 array as the "
                           "audio cache needs; fix the dataset or set `audio_cache: false` in the pipeline")
    return wave


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextmanager
def _writable(folder: Path) -> Iterator[None]:
    """Turn a failure to write the cache (read-only output, full disk) into one clear error."""
    try:
        yield
    except OSError as exc:
        raise AsdcoreError(f"audio cache {folder}: cannot write ({exc.strerror or exc}); make the folder writable "
                           "or set `audio_cache: false` in the pipeline") from None
