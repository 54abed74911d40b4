"""The plan: a graph of units built from a resolved pipeline, each with its inputs and key.

Units, in the order they can run:

=======================================  ======================================================
``seed<k>/train/<shared|machine>``       train the frontend (trained frontends only)
``seed<k>/extract/<machine>``            train and test embeddings; ``shared/extract/<machine>``
                                         for untrained frontends, once for every seed
``seed<k>/score/<machine>/<backend>``    fit a backend, score test (and cross-fitted train) clips
``seed<k>/fuse/<machine>/<fusion>``      fuse two backends' scores (channel score fusion)
``seed<k>/evaluate/<machine>/<backend>`` decisions and official scores of one machine type
``seed<k>/summary``, ``seed<k>/plots``   the reductions of one seed
``table``                                the table across seeds
=======================================  ======================================================

A unit's inputs name everything it depends on: the config values it uses, its upstream units' keys,
the data it reads (clip listings with sizes and modification times, the content of metadata files)
and the versions of the distributions providing its components. Its key is their fingerprint.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import NOT_IN_IDENTITY
from .context import BACKEND_SEED, SHARED, Context
from .identity import Record, files_digest, key_of, listing_digest, relative
from .registry import CORE_DISTRIBUTION
from .store import fingerprint

STAGES = ("train", "extract", "score", "evaluate")
STAGE_OF = {"train": "train", "extract": "extract", "score": "score", "fuse": "score", "evaluate": "evaluate",
            "summary": "evaluate", "plots": "evaluate", "table": "evaluate"}
LOCKS = ".locks"
LOGS = "logs"
DEVICE_KINDS = ("train", "extract")  # the kinds whose units run a model (on a GPU where there is one)


@dataclass(frozen=True)
class Unit:
    """One piece of work: its id, kind, upstream unit ids, named inputs and key, where its record and
    outputs live, and the plain-data config of its pipeline (all that executing it needs)."""

    id: str
    kind: str
    upstream: Mapping[str, Path]  # upstream unit id -> its record
    inputs: Mapping[str, Any]
    directory: Path
    outputs: tuple[str, ...]
    args: Mapping[str, Any]
    config: Mapping[str, Any] = field(repr=False)
    config_key: str = field(repr=False)
    lock: Path = field(repr=False)
    log: Path = field(repr=False)  # what executing it logs, and the traceback of a failure
    scratch: tuple[str, ...] = ()  # other folders whose temporaries belong to this unit
    prefix: str = ""  # of ``id`` in a grid (``<pipeline>/<dataset>/``); identities use the id without it

    @property
    def name(self) -> str:
        """The id within its pipeline (what its record and downstream inputs call it)."""
        return self.id[len(self.prefix):]

    @property
    def needs_device(self) -> bool:
        """Whether the unit runs a model, so that an executor gives it a GPU where there is one."""
        return self.kind in DEVICE_KINDS

    @property
    def key(self) -> str:
        return key_of(self.inputs)

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(self.upstream)

    def stale_reason(self) -> str | None:
        """None when this unit is up to date; else why it must run (see :meth:`Record.stale_reason`)."""
        return self.record.stale_reason(self.key, self.inputs, upstream_runs(self))

    @property
    def stage(self) -> str:
        return STAGE_OF[self.kind]

    @property
    def record(self) -> Record:
        return Record(self.directory / f"{self.kind}.record.json")

    @property
    def checkpoint_identity(self) -> str:
        """The key without the number of epochs: a training checkpoint of this identity may be continued."""
        return key_of({k: v for k, v in self.inputs.items() if k != "epochs"})


@dataclass
class Plan:
    """Units in an order in which each comes after its upstream units."""

    units: list[Unit]
    missing: str | None = None  # why the data cannot be read (planned for a dry run only)

    def __post_init__(self) -> None:
        self._by_id = {u.id: u for u in self.units}

    def __iter__(self) -> Iterator[Unit]:
        return iter(self.units)

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, unit_id: str) -> Unit:
        return self._by_id[unit_id]

    def reasons(self, force: bool = False) -> dict[str, str | None]:
        """Why each unit would run now (None: up to date): no record, which inputs changed, outputs
        missing or changed, an upstream unit that runs, or ``--force``."""
        if self.missing is not None:
            return {unit.id: f"data missing: {self.missing}" for unit in self.units}
        reasons: dict[str, str | None] = {}
        for unit in self.units:
            if force:
                reasons[unit.id] = "--force"
                continue
            reason = unit.stale_reason()
            if reason is None:
                upstream = next((d for d in unit.deps if reasons.get(d) is not None), None)
                reason = f"upstream {upstream} runs" if upstream else None
            reasons[unit.id] = reason
        return reasons


class Planner:
    """Builds the plan of one pipeline; clip listings are fingerprinted once per machine type and split."""

    def __init__(self, context: Context, verify_content: bool = False, prefix: str = "", missing: str | None = None):
        self.ctx = context
        self.verify_content = verify_content
        self.prefix = prefix
        self.missing = missing
        self.machines = context.dataset.machines() if missing is None else _expected_machines(context)
        self._digests: dict[tuple[str, str], str] = {}
        self._labels: tuple[dict, int] | None = None
        self._sections: dict[str, list] = {}
        self.units: list[Unit] = []

    def plan(self) -> Plan:
        ctx = self.ctx
        seeds = ctx.resolved.config.seeds
        extract = {}
        if not ctx.trains:
            shared = {m: self._extract(None, m, None) for m in self.machines}
            extract = {(s, m): shared[m] for m in self.machines for s in seeds}
        summaries = []
        for seed in seeds:
            if ctx.trains:
                for name, machines in ctx.training_units(self.machines):
                    trained = self._train(seed, name, machines)
                    for m in machines:
                        extract[seed, m] = self._extract(seed, m, trained)
            evaluated = []
            for m in self.machines:
                scored = {bid: self._score(seed, m, bid, extract[seed, m]) for bid in ctx.resolved.backend_params}
                for fid, fusion in ctx.resolved.fusions.items():
                    scored[fid] = self._fuse(seed, m, fid, scored[fusion.near], scored[fusion.far])
                evaluated += [self._evaluate(seed, m, bid, unit) for bid, unit in scored.items()]
            summaries.append(self._reduction("summary", seed, evaluated, ctx.seed_dir(seed), ("summary.csv",)))
            if ctx.resolved.config.evaluation.plots:
                self._reduction("plots", seed, evaluated, ctx.seed_dir(seed), ("plots",))
        self._add("table", "table", summaries, {f"upstream {u.name}": u.key for u in summaries}, ctx.root,
                  ("table.csv", "table.md"), {})
        return Plan(self.units, self.missing)

    # -- units -----------------------------------------------------------------------------------
    def _train(self, seed: int, name: str, machines: list[str]) -> Unit:
        ctx = self.ctx
        fe = ctx.config["frontend"]
        training = {k: v for k, v in fe["training"].items() if k not in NOT_IN_IDENTITY}
        epochs = fe["training"]["epochs"]  # apart: a checkpoint of the same identity but epochs may continue
        inputs = {
            "frontend": {"name": fe["name"], "params": fe["params"]}, "loss": fe["loss"],
            "augmentations": fe["augmentations"], "training": training, "epochs": epochs, "seed": seed,
            **self._dataset(), "machines": machines,
            **{f"data {m}/train": self._listing(m, "train") for m in machines},
            **{f"metadata {m}": self._metadata(m) for m in machines},
            "class labels": self._class_labels(machines), "clip samples": self._clip_samples(machines),
            "versions": self._versions(("frontends", fe["name"]), ("losses", fe["loss"] and fe["loss"]["name"]),
                                       *(("augmentations", a["name"]) for a in fe["augmentations"])),
        }
        return self._add(f"seed{seed}/train/{name}", "train", [], inputs, ctx.train_dir(seed, name),
                         ("model", "train_log.csv", "config.yaml"),
                         {"seed": seed, "unit": name, "machines": machines,
                          "clip_samples": inputs["clip samples"]}, scratch=("work",))

    def _extract(self, seed: int | None, machine: str, trained: Unit | None) -> Unit:
        ctx, r = self.ctx, self.ctx.resolved
        inputs: dict[str, Any] = {"frontend": {"name": r.config.frontend.name, "params": r.frontend_params},
                                  "precision": r.config.extraction.precision, "views": list(r.views)}
        if trained is not None:
            inputs[f"upstream {trained.name}"] = trained.key
        # a trained model sees the clip length it was trained with; an untrained one each type's own
        inputs["clip samples"] = trained.args["clip_samples"] if trained else self._clip_samples([machine])
        inputs.update({
            **self._dataset(), f"data {machine}/train": self._listing(machine, "train"),
            f"data {machine}/test": self._listing(machine, "test"), f"metadata {machine}": self._metadata(machine),
            "versions": self._versions(("frontends", r.config.frontend.name)),
        })
        uid = f"seed{seed}/extract/{machine}" if trained else f"{SHARED}/extract/{machine}"
        path = ctx.features_path(0 if seed is None else seed, machine)
        return self._add(uid, "extract", [trained] if trained else [], inputs, path.parent, (path.name,),
                         {"seed": seed, "machine": machine, "clip_samples": inputs["clip samples"]})

    def _score(self, seed: int, machine: str, bid: str, extracted: Unit) -> Unit:
        name, params = self.ctx.resolved.backend_params[bid]
        inputs = {f"upstream {extracted.name}": extracted.key, "backend": {"name": name, "params": params},
                  "view": self.ctx.resolved.backend_views[bid], "backend seed": BACKEND_SEED,
                  "scorer": self.ctx.resolved.scorer, "versions": self._versions(("backends", name))}
        return self._add(f"seed{seed}/score/{machine}/{bid}", "score", [extracted], inputs,
                         self.ctx.backend_dir(seed, machine, bid), (), {"seed": seed, "machine": machine, "backend": bid})

    def _fuse(self, seed: int, machine: str, fid: str, near: Unit, far: Unit) -> Unit:
        fusion = self.ctx.resolved.fusions[fid]
        inputs = {f"upstream {near.name}": near.key, f"upstream {far.name}": far.key,
                  "fusion": fusion.model_dump(mode="json"), "scorer": self.ctx.resolved.scorer,
                  "versions": self._versions()}
        return self._add(f"seed{seed}/fuse/{machine}/{fid}", "fuse", [near, far], inputs,
                         self.ctx.backend_dir(seed, machine, fid), (), {"seed": seed, "machine": machine, "backend": fid})

    def _evaluate(self, seed: int, machine: str, bid: str, scored: Unit) -> Unit:
        r = self.ctx.resolved
        inputs = {f"upstream {scored.name}": scored.key, "evaluation": {"decision_percentile":
                  r.config.evaluation.decision_percentile}, "scorer": r.scorer,
                  "subsets": self._subsets(machine),
                  "versions": self._versions(("scorers", r.scorer))}
        return self._add(f"seed{seed}/evaluate/{machine}/{bid}", "evaluate", [scored], inputs,
                         self.ctx.backend_dir(seed, machine, bid), (),
                         {"seed": seed, "machine": machine, "backend": bid})

    def _reduction(self, kind: str, seed: int, evaluated: list[Unit], directory: Path, outputs: tuple) -> Unit:
        inputs = {f"upstream {u.name}": u.key for u in evaluated}
        inputs["versions"] = self._versions(("scorers", self.ctx.resolved.scorer))
        return self._add(f"seed{seed}/{kind}", kind, evaluated, inputs, directory, outputs,
                         {"seed": seed, "machines": self.machines})

    def _add(self, uid: str, kind: str, deps: list[Unit], inputs: dict, directory: Path, outputs: tuple,
             args: dict, scratch: tuple = ()) -> Unit:
        ctx = self.ctx
        name = uid.replace("/", "--")
        unit = Unit(self.prefix + uid, kind, {d.id: d.record.path for d in deps}, inputs, directory, outputs, args,
                    ctx.config, ctx.key, ctx.root / LOCKS / f"{name}.lock", ctx.root / LOGS / f"{name}.log", scratch,
                    self.prefix)
        self.units.append(unit)
        return unit

    # -- inputs ----------------------------------------------------------------------------------
    def _dataset(self) -> dict[str, Any]:
        ds = self.ctx.dataset
        params = {k: v for k, v in self.ctx.resolved.dataset_params.items() if k != "machines"}
        return {"dataset": {"name": self.ctx.resolved.config.dataset.name, "params": params,
                            "sample_rate": ds.sample_rate, "clip_seconds": ds.clip_seconds,
                            "version": self._versions(("datasets", self.ctx.resolved.config.dataset.name))}}

    def _listing(self, machine: str, split: str) -> str:
        if self.missing is not None:
            return "missing"
        if (machine, split) not in self._digests:
            ds = self.ctx.dataset
            self._digests[machine, split] = listing_digest(ds.clips(machine, split), ds.root, self.verify_content)
        return self._digests[machine, split]

    def _clip_samples(self, machines: list[str]) -> int | None:
        return None if self.missing is not None else self.ctx.clip_samples(machines)

    def _subsets(self, machine: str) -> list:
        if self.missing is not None:
            return []
        if machine not in self._sections:
            self._sections[machine] = sorted(self.ctx.dataset.subsets(machine).items())
        return self._sections[machine]

    def _metadata(self, machine: str) -> str:
        if self.missing is not None:
            return "missing"
        if (machine, "metadata") not in self._digests:
            ds = self.ctx.dataset
            self._digests[machine, "metadata"] = files_digest(ds.metadata_files(machine), ds.root)
        return self._digests[machine, "metadata"]

    def _class_labels(self, machines: list[str]) -> str:
        if self.missing is not None:
            return "missing"
        ds = self.ctx.dataset
        if self._labels is None:
            self._labels = ds.class_labels()
        labels, count = self._labels
        clips = [c for m in machines for c in ds.clips(m, "train")]
        return fingerprint(count, [[relative(c.path, ds.root), labels[c.path]] for c in clips])

    def _versions(self, *components: tuple[str, str | None]) -> dict[str, str]:
        entries = [self.ctx.entry(kind, name) for kind, name in components if name]
        versions = {e.distribution: e.version for e in entries}
        versions[CORE_DISTRIBUTION] = self.ctx.registry.versions().get(CORE_DISTRIBUTION, "")
        return versions


def upstream_runs(unit: Unit) -> dict[str, str | None]:
    """Upstream unit name (id within the pipeline) -> the run id in its record now (None when it has none)."""
    return {uid[len(unit.prefix):]: Record(path).run_id for uid, path in unit.upstream.items()}


def plan_pipeline(context: Context, verify_content: bool = False, prefix: str = "", missing: str | None = None) -> Plan:
    """The plan of every unit of ``context``'s pipeline, unit ids prefixed with ``prefix``. With ``missing``
    (why the data cannot be read) the units are planned from the machine types the dataset expects,
    without reading any data, for a dry run; each says that its data are missing."""
    return Planner(context, verify_content, prefix, missing).plan()


def _expected_machines(context: Context) -> list[str]:
    return context.dataset.expected_machines() or ["<machine>"]
