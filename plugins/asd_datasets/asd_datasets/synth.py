"""Deterministic synthetic machine sounds in the DCASE 2023 Task 2 layout.

Clips are 16-bit PCM mono WAV files named like the formatted DCASE data::

    <root>/<machine>/train/section_00_source_train_normal_0000_spd_1000_mic_1.wav
    <root>/<machine>/test/section_00_target_test_anomaly_0003_spd_1900_mic_2.wav

Sound design. Every machine is driven by a rotation (or cycle) phase integrated
from its rate, so speed jitter and drift move all rate-locked components together.

* ``fan`` - blade-pass harmonics (6 blades) over broadband airflow noise that is
  amplitude modulated at the rotation rate; faster fans blow louder.
  Attributes: ``spd`` (rpm), ``mic`` (microphone placement).
* ``pump`` - slip-dependent motor harmonics, 100 Hz magnetic hum, vane-pass
  pulsation (5 vanes) and a fluid noise band pulsing at the vane-pass rate; a higher
  ``load`` slows the motor, flattens the pulsation harmonics and raises the fluid
  noise. ``bg`` picks the background (hall, or a louder yard).
* ``gearbox`` - gear-mesh harmonics (21 teeth) with sidebands at the input shaft rate,
  bearing rumble and motor brush noise; ``volt`` sets the speed and ``wt`` (load) both
  slows it and shifts energy to upper mesh harmonics and sidebands.
* ``valve`` - impulsive open/close transients of a solenoid valve in a repeating
  pattern ``pat``, flow hiss while open and a faint supply-pump hum; ``pos`` is the
  microphone placement.

Each clip then passes a microphone colouring filter (spectral tilt and a resonance)
and gets factory background noise 15-20 dB below the machine: pink noise, mains hum
and a ventilation band in the hall; the yard is 8 dB louder and darker, with more hiss
and distant knocks.

:func:`render_two_mics` renders a clip at two microphones (DCASE 2026): channel 0 near the
machine as above, but with the background 12-24 dB below the machine and tilted by up to
+-3 dB/octave per clip; channel 1 far away, the machine 10-14 dB weaker and low-passed (2-4 kHz),
the same background 0-4 dB louder and 1-5 ms earlier or later than at the near microphone.
Per clip the speed jitters (+-0.5 % for the speed-controlled gearbox up to +-3 % for
the valve timing), every harmonic and noise level varies by about 10 % and the output
gain by 8 dB, so no two normal clips are alike. The target domain shifts the operating
condition: an unseen speed (fan), the yard background (pump), an unseen load
(gearbox), an unseen microphone position (valve).

Anomalies draw one kind per clip with a random severity, so some are barely
audible: ``tone`` (bearing-defect tone at a non-harmonic frequency), ``clicks``
(a knock once per revolution), ``drift`` (speed ramping 1.5-4.5 times the jitter
range away), ``friction`` (rubbing noise band) and ``imbalance`` (rotation-rate
modulation plus a raised shaft tone).

With the default options, a nearest-neighbour baseline on time-averaged mel spectra
gets a harmonic mean of source AUC, target AUC and pAUC of about 0.65-0.8 per machine
(0.70-0.76 over all machines for seeds 0-2), the target AUC clearly below the source AUC.

All randomness of a clip comes from ``numpy.random.default_rng([seed,
machine index, group code, clip index])``, so the same options give the same bytes
and any subset of machines reproduces the full set's files.

The parameters live beside the clips in ``<root>/synth.json`` (every option but ``machines``,
the machine types generated so far and a format version), written before the clips so that an
interrupted run resumes. A request with other parameters is a :class:`DatasetError` rather than a
silent reuse of the old clips; other machine types with the same parameters are added to the data
and the record; ``force`` deletes the clips of the recorded machine types and generates anew.
Checking the record and generating hold ``<root>/.synth.lock`` (:class:`filelock.FileLock`), so
processes sharing a root wait for each other instead of racing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import os
import pathlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import filelock
import numpy as np
import scipy.fft
import soundfile as sf
from tqdm import tqdm

from asdcore.errors import DatasetError

log = logging.getLogger("asdcore")

MACHINE_TYPES: tuple[str, ...] = ("fan", "pump", "gearbox", "valve")

_GROUPS = (  # (domain, split, label); the position is the group code of the rng stream
    ("source", "train", "normal"),
    ("target", "train", "normal"),
    ("source", "test", "normal"),
    ("source", "test", "anomaly"),
    ("target", "test", "normal"),
    ("target", "test", "anomaly"),
)
_ANOMALIES = {  # kind -> level range: relative to the machine's RMS; drift in units of speed jitter
    "tone": (0.025, 0.25),
    "clicks": (0.035, 0.35),
    "drift": (1.5, 4.5),
    "friction": (0.035, 0.3),
    "imbalance": (0.07, 0.45),
}
_MAX_COUNT = 10_000  # indices have four digits
MIN_CLIP_SECONDS = 0.1
RECORD = "synth.json"  # the generation parameters, beside the data
LOCK = ".synth.lock"
RECORD_FORMAT = 1


@dataclass(frozen=True)
class SynthOptions:
    """What to generate; ``n_test`` clips per machine split evenly over domain x label."""

    machines: tuple[str, ...] = MACHINE_TYPES
    n_train_source: int = 990
    n_train_target: int = 10
    n_test: int = 200
    clip_seconds: float = 2.0
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "machines", tuple(dict.fromkeys(self.machines)))
        unknown = [m for m in self.machines if m not in MACHINE_TYPES]
        if unknown:
            raise ValueError(f"unknown machine type(s) {unknown}; available: {', '.join(MACHINE_TYPES)}")
        limits = {"n_train_source": _MAX_COUNT, "n_train_target": _MAX_COUNT, "n_test": 4 * _MAX_COUNT}
        for name, limit in limits.items():
            if not 0 <= getattr(self, name) <= limit:
                raise ValueError(f"{name} must be in [0, {limit}], got {getattr(self, name)}")
        if self.n_test % 4:
            raise ValueError(f"n_test must be divisible by 4 (source/target x normal/anomaly), got {self.n_test}")
        if self.clip_seconds < MIN_CLIP_SECONDS:
            raise ValueError(f"clip_seconds must be at least {MIN_CLIP_SECONDS}, got {self.clip_seconds}")
        if self.sample_rate < 16000:  # the sounds reach 7 kHz
            raise ValueError(f"sample_rate must be at least 16000, got {self.sample_rate}")


# ---------------------------------------------------------------- building blocks
# Signals are float32 (only cycle counters are float64): it halves the memory churn, which
# dominates synthesis time. Levels are passed as Python floats so they do not upcast arrays.

def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _freqs(n: int, sr: int) -> np.ndarray:
    f = scipy.fft.rfftfreq(n, 1.0 / sr)
    f[0] = f[1]  # keeps power laws finite at DC
    return f


@functools.lru_cache(maxsize=64)
def _band_power(n, sr, lo, hi, tilt_db) -> np.ndarray:
    """Power spectrum of a smooth lo..hi Hz band with a tilt in dB/octave, for unit RMS noise."""
    f = _freqs(n, sr)
    power = (f / 1000.0) ** (tilt_db / 3.01) / ((1 + (lo / f) ** 4) * (1 + (f / hi) ** 4))
    return (power * (n / 2) ** 2 / power.sum()).astype(np.float32)


def _noise(rng, n, sr, *bands) -> np.ndarray:
    """Gaussian noise made of (level, lo Hz, hi Hz, tilt dB/octave) bands, shaped as a spectrum."""
    power = sum(float(level) ** 2 * _band_power(n, sr, *shape) for level, *shape in bands)
    spectrum = rng.standard_normal(2 * power.size, dtype=np.float32).view(np.complex64)
    return scipy.fft.irfft(spectrum * np.sqrt(power), n)


def _partials(rng, cycles, multiples, amps) -> np.ndarray:
    """Sines at integer ``multiples`` of the cycle counter ``cycles``, random starting phases."""
    offsets = rng.uniform(0, 2 * np.pi, len(multiples))
    # Wrapping to one cycle keeps float32 sines precise; rows are summed in place because
    # (partials x samples) temporaries are several times slower.
    wrapped = (cycles - np.floor(cycles)).astype(np.float32)
    wrapped *= 2 * np.pi
    total, row = np.zeros_like(wrapped), np.empty_like(wrapped)
    for multiple, offset, amp in zip(np.float32(multiples), np.float32(offsets), np.float32(amps)):
        np.multiply(wrapped, multiple, out=row)
        row += offset
        np.sin(row, out=row)
        row *= amp
        total += row
    return total


def _wobble(rng, cycles, depth) -> np.ndarray:
    """Amplitude modulation once per cycle."""
    return 1 + _partials(rng, cycles, [1], [depth])


def _crossings(cycles, at) -> np.ndarray:
    """Sample indices where the cycle counter passes fraction ``at`` of a cycle."""
    return np.flatnonzero(np.diff(np.floor(cycles - at)) > 0) + 1


def _ping(rng, sr, modes, decay_s) -> np.ndarray:
    """A short decaying resonance (a mechanical click) with the given mode frequencies."""
    t = np.arange(int(6 * decay_s * sr)) / sr
    return _partials(rng, t, modes, np.ones(len(modes))) * np.exp(-t / decay_s, dtype=np.float32)


def _strike(rng, n, at, ping) -> np.ndarray:
    """``ping`` struck at sample indices ``at`` with slightly varying force."""
    out = np.zeros(n, np.float32)
    for start, force in zip(at, rng.uniform(0.8, 1.2, len(at))):
        segment = out[start:start + len(ping)]
        segment += force * ping[:len(segment)]
    return out


_PLACEMENTS = {  # tilt dB/octave, resonance Hz, resonance dB
    "1": (0.0, 2500.0, 4.0),
    "2": (-1.5, 900.0, 6.0),
    "3": (1.0, 4000.0, 6.0),
}
_BACKGROUNDS = {  # level dB, noise tilt dB/octave, mains Hz, hiss level, distant knocks per second
    "hall": (0.0, -3.0, 50.0, 0.1, 0.0),
    "yard": (8.0, -6.0, 60.0, 0.4, 1.5),
}


@functools.lru_cache(maxsize=16)
def _placement_gain(n, sr, placement) -> np.ndarray:
    """Microphone placement: spectral tilt plus one broad resonance."""
    tilt_db, res_hz, res_db = _PLACEMENTS[placement]
    f = _freqs(n, sr)
    peak = (10 ** (res_db / 20) - 1) * np.exp(-0.5 * (np.log2(f / res_hz) / 0.35) ** 2)
    return ((f / 1000.0) ** (tilt_db / 6.02) * (1 + peak)).astype(np.float32)


def _background(rng, kind, n, sr) -> np.ndarray:
    level_db, tilt, mains, hiss, knock_rate = _BACKGROUNDS[kind]
    x = (_noise(rng, n, sr, (1.0, 20, 7000, tilt), (0.3, 200, 600, 0.0), (hiss, 3000, 7000, 0.0))
         + 0.3 * _partials(rng, mains * np.arange(n) / sr, [1, 2, 3], [1.0, 0.5, 0.3]))
    if knock_rate:
        at = rng.integers(0, n, rng.poisson(knock_rate * n / sr))
        x += 0.5 * _strike(rng, n, at, _ping(rng, sr, [300, 700], 0.03))
    return 10 ** (level_db / 20) * _unit(x)


# ---------------------------------------------------------------- machines
# Each renderer gets the rotation (or valve cycle) counter, so speed changes move every
# rate-locked component. ``_vary`` gives the clip-to-clip spread of component levels.

def _vary(rng, size=None):
    return np.float32(rng.lognormal(0.0, 0.1, size))


def _fan(rng, a, cycles, sr):
    k = np.arange(1, 9)
    blades = _partials(rng, cycles, 6 * k, _vary(rng, k.size) / k)
    shaft = _partials(rng, cycles, [1, 2], [0.1, 0.05])
    air_level = 0.8 * (int(a["spd"]) / 1300) ** 1.5 * _vary(rng)
    air = _noise(rng, len(cycles), sr, (air_level, 80, 5000, -3.0)) * _wobble(rng, cycles, 0.3)
    return _unit(blades + shaft) + air


def _pump(rng, a, cycles, sr):
    load = int(a["load"]) / 100
    k = np.arange(1, 7)
    vanes = _partials(rng, cycles, 5 * k, np.exp(-(k - 1) / (1 + 2 * load)) * _vary(rng, k.size))
    motor = _partials(rng, cycles, [1, 2, 3], [0.15, 0.1, 0.05])
    hum = _partials(rng, 100 * np.arange(len(cycles)) / sr, [1, 2], [0.3, 0.1])
    fluid_level = 0.6 * (0.5 + load) * _vary(rng)
    fluid = _noise(rng, len(cycles), sr, (fluid_level, 400, 3000, 0.0)) * _wobble(rng, 5 * cycles, 0.5 * load)
    return (0.5 + load) * _unit(vanes) + motor + hum + fluid


def _gearbox(rng, a, cycles, sr):
    wt, volt = int(a["wt"]) / 100, float(a["volt"])
    k, side = np.arange(1, 5), np.array([-2, -1, 0, 1, 2])
    depth = (0.15 + 0.1 * wt) * 0.5 ** np.abs(side)
    depth[side == 0] = 1.0
    mesh = np.outer(k ** (0.3 * wt - 1.5), depth) * _vary(rng, (k.size, side.size))
    gears = _partials(rng, cycles, (21 * k[:, None] + side).ravel(), mesh.ravel())
    brush = 0.3 * volt * _vary(rng)
    return _unit(gears) + _noise(rng, len(cycles), sr, (0.6, 50, 400, 0.0), (brush, 2000, 6000, 0.0))


_VALVE_PATTERNS = {  # period in seconds, (open, close) fractions of the cycle
    "1": (0.5, ((0.0, 0.4),)),
    "2": (0.8, ((0.0, 0.25), (0.5, 0.75))),
    "3": (0.35, ((0.0, 0.6),)),
}


def _valve(rng, a, cycles, sr):
    n = len(cycles)
    position = cycles - np.floor(cycles)
    gate, opens, closes = np.zeros(n, np.float32), [], []
    for start, stop in _VALVE_PATTERNS[a["pat"]][1]:
        # the flow ramps up and down within 1 % of a cycle
        gate += np.clip(np.minimum(position - start, stop - position) / 0.01, 0, 1)
        opens.append(_crossings(cycles, start))
        closes.append(_crossings(cycles, stop))
    opening = _strike(rng, n, np.concatenate(opens), _ping(rng, sr, [2200, 4100], 0.004))
    slam = 1.5 * _vary(rng)  # closing is louder than opening
    closing = slam * _strike(rng, n, np.concatenate(closes), _ping(rng, sr, [1300, 3000, 5200], 0.006))
    flow = _noise(rng, n, sr, (0.3 * _vary(rng), 1500, 7000, 0.0)) * gate
    hum = _partials(rng, 100 * np.arange(n) / sr, [1, 2, 3], [0.05, 0.025, 0.0125])
    return opening + closing + flow + hum


@dataclass(frozen=True)
class _Machine:
    source: dict[str, tuple[str, ...]]  # attribute key -> values of the source domain
    target: dict[str, tuple[str, ...]]
    rate: Callable[[dict[str, str]], float]  # rotation or cycle rate in Hz
    jitter: float  # clip-to-clip relative speed spread
    render: Callable[..., np.ndarray]
    scene: Callable[[dict[str, str]], tuple[str, str]]  # -> (placement, background)


_MACHINES = {
    "fan": _Machine(
        source={"spd": ("1000", "1300", "1600"), "mic": ("1", "2")},
        target={"spd": ("1900",), "mic": ("1", "2")},
        rate=lambda a: int(a["spd"]) / 60,
        jitter=0.02,
        render=_fan,
        scene=lambda a: (a["mic"], "hall"),
    ),
    "pump": _Machine(
        source={"load": ("40", "70", "100"), "bg": ("hall",)},
        target={"load": ("40", "70", "100"), "bg": ("yard",)},
        rate=lambda a: 25 * (0.98 - 0.03 * int(a["load"]) / 100),
        jitter=0.01,
        render=_pump,
        scene=lambda a: ("1", a["bg"]),
    ),
    "gearbox": _Machine(
        source={"volt": ("1.0", "1.3", "1.6"), "wt": ("0", "150")},
        target={"volt": ("1.0", "1.3", "1.6"), "wt": ("300",)},
        rate=lambda a: 15 * float(a["volt"]) * (1 - int(a["wt"]) / 2000),
        jitter=0.005,
        render=_gearbox,
        scene=lambda a: ("1", "hall"),
    ),
    "valve": _Machine(
        source={"pat": ("1", "2", "3"), "pos": ("1", "2")},
        target={"pat": ("1", "2", "3"), "pos": ("3",)},
        rate=lambda a: 1 / _VALVE_PATTERNS[a["pat"]][0],
        jitter=0.03,
        render=_valve,
        scene=lambda a: (a["pos"], "hall"),
    ),
}


def _damage(rng, kind, level, x, cycles, sr) -> np.ndarray:
    """Add an anomaly of ``kind`` to the unit-RMS machine signal ``x``."""
    n = len(x)
    if kind == "tone":
        f = rng.uniform(300, 4000)
        tone = _partials(rng, f * np.arange(n) / sr, [1], [1.0]) * _wobble(rng, cycles, 0.5)
        return x + level * _unit(tone)
    if kind == "clicks":
        ping = _ping(rng, sr, rng.uniform(1000, 5000, 2), rng.uniform(0.002, 0.005))
        return x + level * _unit(_strike(rng, n, _crossings(cycles, rng.uniform()), ping))
    if kind == "friction":
        centre = rng.uniform(1500, 6000)
        rub = _noise(rng, n, sr, (1.0, 0.85 * centre, 1.15 * centre, 0.0)) * _wobble(rng, cycles, 0.5)
        return x + level * rub
    if kind == "imbalance":
        sway = _partials(rng, cycles, [1], [level])
        return x * (1 + sway) + 0.5 * sway
    return x  # drift acts on the speed before rendering


def _rng(machine: str, code: int, index: int, options: SynthOptions) -> np.random.Generator:
    return np.random.default_rng([options.seed, MACHINE_TYPES.index(machine), code, index])


def _machine_sound(rng, machine: str, code: int, attrs: dict[str, str], n: int, sr: int) -> np.ndarray:
    """The machine (with its anomaly, if any) through its microphone colouring, unit RMS."""
    spec = _MACHINES[machine]
    kind = rng.choice(list(_ANOMALIES)) if _GROUPS[code][2] == "anomaly" else None
    low, high = _ANOMALIES.get(kind, (0.0, 0.0))
    level = low + (high - low) * float(rng.uniform())
    speed = np.full(n, spec.rate(attrs) * (1 + spec.jitter * rng.uniform(-1, 1)))
    if kind == "drift":
        speed *= 1 + rng.choice([-1, 1]) * level * spec.jitter * np.linspace(0, 1, n)
    cycles = rng.uniform() + np.cumsum(speed) / sr
    x = _unit(spec.render(rng, attrs, cycles, sr))
    x = _damage(rng, kind, level, x, cycles, sr)
    placement, _ = spec.scene(attrs)
    return _unit(scipy.fft.irfft(scipy.fft.rfft(x) * _placement_gain(n, sr, placement), n))


def _ambient(rng, background: str, n: int, sr: int) -> np.ndarray:
    """Factory background 15-20 dB below a unit-RMS machine."""
    return float(10 ** (-rng.uniform(15, 20) / 20)) * _background(rng, background, n, sr)


def _pcm(rng, x: np.ndarray) -> np.ndarray:
    """``x`` (samples[, channels]) as int16 at a random level of channel 0, kept below full scale."""
    reference = x if x.ndim == 1 else x[:, 0]
    x *= float(10 ** (rng.uniform(-32, -24) / 20) / np.sqrt(np.mean(reference**2)))
    x *= min(1.0, 0.95 / float(np.abs(x).max()))
    return np.round(x * 32767).astype(np.int16)


def _samples(options: SynthOptions) -> int:
    return int(round(options.clip_seconds * options.sample_rate))


def render(machine: str, code: int, index: int, attrs: dict[str, str], options: SynthOptions) -> np.ndarray:
    """One mono clip as int16 samples."""
    rng = _rng(machine, code, index, options)
    sr, n = options.sample_rate, _samples(options)
    x = _machine_sound(rng, machine, code, attrs, n, sr)
    x += _ambient(rng, _MACHINES[machine].scene(attrs)[1], n, sr)
    return _pcm(rng, x)


# ---------------------------------------------------------------- two microphones
# A near and a far microphone share one environmental noise, which reaches them a few ms apart.
# Ranges are drawn per clip; decibels are relative to the machine at the near microphone.

_NEAR_NOISE_DB = (-24.0, -12.0)
_FAR_NOISE_DB = (0.0, 4.0)  # relative to the noise at the near microphone
_FAR_MACHINE_DB = (-14.0, -10.0)
_FAR_CUTOFF_HZ = (2000.0, 4000.0)  # distance dulls the machine at the far microphone
_NOISE_TILT_DB = (-3.0, 3.0)  # per octave: the noise's colour
_NOISE_DELAY_S = (0.001, 0.005)


@dataclass(frozen=True)
class TwoMics:
    """A two-channel clip in parts, each ``(samples, 2)`` with column 0 the near microphone."""

    machine: np.ndarray
    noise: np.ndarray
    delay: int  # samples by which the noise reaches the far microphone after the near one (< 0: before)


def two_mics(machine: str, code: int, index: int, attrs: dict[str, str], options: SynthOptions) -> TwoMics:
    """The machine and noise parts of the clip :func:`render_two_mics` writes."""
    return _two_mics(_rng(machine, code, index, options), machine, code, attrs, options)


def render_two_mics(machine: str, code: int, index: int, attrs: dict[str, str], options: SynthOptions) -> np.ndarray:
    """One clip at the near and the far microphone as int16 samples ``(samples, 2)``."""
    rng = _rng(machine, code, index, options)
    parts = _two_mics(rng, machine, code, attrs, options)
    return _pcm(rng, parts.machine + parts.noise)


def _two_mics(rng, machine: str, code: int, attrs: dict[str, str], options: SynthOptions) -> TwoMics:
    sr, n = options.sample_rate, _samples(options)
    near = _machine_sound(rng, machine, code, attrs, n, sr)
    far = _db(rng, _FAR_MACHINE_DB) * _lowpass(near, sr, rng.uniform(*_FAR_CUTOFF_HZ))
    delay = _delay(rng, sr)
    level = _db(rng, _NEAR_NOISE_DB)
    far_level = level * _db(rng, _FAR_NOISE_DB)
    noise = _environment(rng, _MACHINES[machine].scene(attrs)[1], n + abs(delay), sr)
    at_near, at_far = (noise[delay:], noise[:n]) if delay >= 0 else (noise[:n], noise[-delay:])
    return TwoMics(np.stack([near, far], axis=1), np.stack([level * at_near, far_level * at_far], axis=1), delay)


def _delay(rng, sr: int) -> int:
    low, high = (round(seconds * sr) for seconds in _NOISE_DELAY_S)
    return int(rng.integers(low, high + 1)) * int(rng.choice([-1, 1]))


def _db(rng, bounds: tuple[float, float]) -> float:
    """A gain drawn uniformly in decibels."""
    return float(10 ** (rng.uniform(*bounds) / 20))


def _lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    gain = 1 / (1 + (_freqs(len(x), sr) / cutoff) ** 2)
    return scipy.fft.irfft(scipy.fft.rfft(x) * gain.astype(np.float32), len(x))


def _environment(rng, background: str, n: int, sr: int) -> np.ndarray:
    """A background with a random spectral tilt, at the background's level."""
    x = _background(rng, background, n, sr)
    tilt = (_freqs(n, sr) / 1000.0) ** (rng.uniform(*_NOISE_TILT_DB) / 6.02)
    tilted = scipy.fft.irfft(scipy.fft.rfft(x) * tilt.astype(np.float32), n)
    return float(np.sqrt(np.mean(x**2))) * _unit(tilted)


# ---------------------------------------------------------------- files

def _clips(options: SynthOptions):
    """Yield (machine, group code, index, attrs, relative path) for every clip."""
    per_group = (options.n_train_source, options.n_train_target) + (options.n_test // 4,) * 4
    for machine in options.machines:
        spec = _MACHINES[machine]
        for code, ((domain, split, label), count) in enumerate(zip(_GROUPS, per_group)):
            values = spec.source if domain == "source" else spec.target
            combos = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
            for index in range(count):
                attrs = combos[index % len(combos)]
                tokens = "_".join(f"{key}_{value}" for key, value in attrs.items())
                name = f"section_00_{domain}_{split}_{label}_{index:04d}_{tokens}.wav"
                yield machine, code, index, attrs, pathlib.Path(machine, split, name)


def _write_clip(path: pathlib.Path, clip: tuple, options: SynthOptions) -> None:
    write_wav(path, render(*clip, options), options.sample_rate)


def write_wav(path: pathlib.Path, pcm: np.ndarray, sample_rate: int) -> None:
    """Write int16 samples (samples[, channels]) as a 16-bit WAV file, atomically."""
    # The temporary name does not end in .wav, so a partial file is never taken for a clip.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def generate(root: str | os.PathLike, options: SynthOptions = SynthOptions(),
             progress: bool = False, force: bool = False) -> list[pathlib.Path]:
    """Write every clip of ``options`` missing under ``root``; return the paths of all its clips.

    ``force`` deletes the clips of the recorded machine types first. A record with other parameters,
    or clips without a record, is a :class:`DatasetError`.
    """
    root = pathlib.Path(root)
    paths = [root / rel for *_, rel in _clips(options)]
    if not force and is_complete(root, options):
        return paths  # nothing to write, so no lock: read-only roots work
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / LOCK):
        reconcile_record(
            root / RECORD, _params(options), options.machines, MACHINE_TYPES,
            lambda machines: _generated_files(root, machines), f"the synthetic data in {root}",
            "Use another root, or regenerate with --force (asdcore data synth --force, or asdcore run --force), "
            "which deletes the old clips.", force,
        )
        todo = [(root / rel, tuple(clip)) for *clip, rel in _clips(options) if not (root / rel).exists()]
        _remove_stale({path.parent for path, _ in todo})
        _write_all(todo, options, progress)
    return paths


def is_complete(root: str | os.PathLike, options: SynthOptions = SynthOptions()) -> bool:
    """True when the record under ``root`` matches ``options`` and every clip exists (checks names only)."""
    root = pathlib.Path(root)
    try:
        record = read_record(root / RECORD)
    except DatasetError:
        return False
    return (record is not None and not differences(record, _params(options))
            and set(options.machines) <= set(record["machines"])
            and all((root / rel).is_file() for *_, rel in _clips(options)))


def _params(options: SynthOptions) -> dict:
    params = dataclasses.asdict(options)
    del params["machines"]
    return {"format": RECORD_FORMAT, **params, "clip_seconds": float(options.clip_seconds)}


def _generated_files(root: pathlib.Path, machines: Iterable[str]) -> list[pathlib.Path]:
    """The clips and temporaries ``generate`` writes for ``machines`` (nothing else in their folders)."""
    folders = [root / machine / split for machine in machines for split in ("train", "test")]
    return [path for folder in folders for pattern in ("section_00_*.wav", ".section_00_*.part")
            for path in sorted(folder.glob(pattern)) if path.is_file()]


def _remove_stale(folders: Iterable[pathlib.Path]) -> None:
    """Create ``folders`` and delete temporaries a killed run left there; call only under the lock."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.part"):
            stale.unlink(missing_ok=True)


def _write_all(todo: list[tuple[pathlib.Path, tuple]], options: SynthOptions, progress: bool) -> None:
    # numpy and scipy.fft release the GIL, so threads use all cores
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    pool = ThreadPoolExecutor(min(8, cores or 1))
    try:
        jobs = [pool.submit(_write_clip, path, clip, options) for path, clip in todo]
        for job in tqdm(as_completed(jobs), total=len(jobs), desc="synth", unit="clip", disable=not progress):
            job.result()
    finally:
        pool.shutdown(cancel_futures=True)


# ---------------------------------------------------------------- record and lock (also for original_synth)

@contextlib.contextmanager
def locked(path: pathlib.Path) -> Iterator[None]:
    """Hold the inter-process lock file ``path``, saying so when another process holds it."""
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("waiting for another process writing beside %s (lock %s)", path.parent, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def read_record(path: pathlib.Path) -> dict | None:
    """The generation record at ``path``, None if there is none; an unreadable one is a DatasetError."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable record of generation parameters ({exc}); "
                           "regenerate the data with --force") from None
    if not isinstance(record, dict) or not isinstance(record.get("machines"), list):
        raise DatasetError(f"{path}: not a record of generation parameters (a JSON object with a 'machines' "
                           "list); regenerate the data with --force")
    return record


def differences(record: dict, params: dict) -> list[str]:
    """``key: recorded X, requested Y`` for each of ``params`` the record holds otherwise (or not at all)."""
    return [f"{key}: recorded {record.get(key)!r}, requested {value!r}"
            for key, value in params.items() if record.get(key) != value]


def reconcile_record(path: pathlib.Path, params: dict, machines: Collection[str], known: Sequence[str],
                     generated: Callable[[Sequence[str]], list[pathlib.Path]], what: str, remedy: str,
                     force: bool) -> list[str]:
    """Check the record at ``path`` against ``params`` and add ``machines`` to it; call under the lock.

    ``generated(machine_types)`` lists the files the generator writes for them, ``known`` are all
    machine types in record order. A record with other parameters, or generated files but no record,
    is a DatasetError ending in ``remedy``, unless ``force``: then the generated files of the recorded
    machine types (all ``known`` ones without a readable record) are deleted. Return the recorded
    machine types.
    """
    try:
        record = read_record(path)
    except DatasetError:
        if not force:
            raise
        record = None
    if force:
        _remove(generated(record["machines"] if record else known), path.parent)
        record = None
    elif record is None:
        if any(file.suffix != ".part" for file in generated(known)):  # temporaries alone are no data
            raise DatasetError(f"{what} has generated files but no record {path} of their parameters (made by an "
                               f"older version of asd-datasets, or not by it). {remedy}")
    elif changed := differences(record, params):
        raise DatasetError(f"{what} was generated with other parameters ({path}): {'; '.join(changed)}. {remedy}")
    recorded = set(record["machines"]) if record else set()
    updated = {**params, "machines": [m for m in known if m in recorded or m in machines]}
    if updated != record:
        _write_json(path, updated)
    return updated["machines"]


def _write_json(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _remove(files: Iterable[pathlib.Path], top: pathlib.Path) -> None:
    """Delete ``files``, then the folders below ``top`` that this leaves empty."""
    folders = set()
    for path in files:
        path.unlink(missing_ok=True)
        folders.update(itertools.takewhile(lambda folder: folder != top, path.parents))
    for folder in sorted(folders, key=lambda folder: len(folder.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: holds files that are not ours
            folder.rmdir()
