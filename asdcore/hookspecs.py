"""Plugin hooks: the contributor's manual of every component kind.

A plugin is a distribution whose ``[project.entry-points.asdcore]`` names a module implementing some of
these hooks with :data:`hookimpl` (``@asdcore.hookimpl``). The registry calls each ``register_<kind>``
hook once with a ``register(name, cls)`` callback; call it once per component:

- ``name``: lower_snake_case, unique per kind across the installed distributions (a duplicate is an
  error naming both); pipelines refer to the component by it, never by its class name.
- ``cls``: the class, or its path ``"module:Class"``, imported on first use (listing plugins or running
  another pipeline then imports nothing of it; keep the hook module light). Either way it must subclass
  the kind's base class, else registering (or the import on first use) fails with a message naming it.

Every component declares ``class Params(asdcore.Params)``, a pydantic model: the engine validates the
pipeline's ``params`` against it (unknown keys and wrong types are :class:`~asdcore.errors.ConfigError`
naming the key path) and passes the instance as the constructor's first argument; the base class keeps
it as ``self.params``. Context keywords follow (listed per kind; :func:`asdcore.create` splits its keyword
arguments into params and context the same way). Subclasses that override ``__init__`` accept and pass
on the same arguments: ``super().__init__(params, **context)``.

Errors a component raises reach the user as one line: raise the :mod:`asdcore.errors` class of the
fault's kind with a message naming the component, the key or file, and what to do (``ConfigError``
for params and unsuitable settings, ``AudioError`` for a clip, ``DatasetError`` for a dataset's layout,
``ArtifactError`` for a file the pipeline wrote, ``AsdcoreError`` otherwise). Never return ``None`` or
NaN to signal a failure. Each kind has conformance checks ``asdcore.testing.check_<kind>``.

Hooks may gain arguments but never lose or rename them; an implementation may accept any subset of
the arguments.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("asdcore")
hookimpl = pluggy.HookimplMarker("asdcore")


@hookspec
def register_frontends(register):
    """Register frontends: feature extractors turning waveforms into embeddings (trained or not).

    ``register("my_frontend", "my_plugin.frontend:MyFrontend")``; a pipeline selects it with
    ``frontend: {name: my_frontend, params: {...}}``. Base class :class:`asdcore.Frontend`; trained torch
    models subclass :class:`asdcore.TorchFrontend`, which trains them (see below).

    Constructor: ``cls(params, *, sample_rate: int, clip_samples: int, device: torch.device)``, the
    dataset's sample rate, the clip length in samples of the machine types it is built for, and where
    tensors live. Clips too short for the model are a ``ConfigError``: call
    ``asdcore.require_clip_samples(name, minimum, clip_samples, sample_rate, remedy)`` in ``__init__``.

    Class attributes: ``Params``; ``needs_training`` (``True`` for trained frontends), or the classmethod
    ``trains(params) -> bool`` when it depends on the params, so that the engine plans without building.

    Implement:

    - ``spec -> asdcore.FrontendSpec(embedding_dim, needs_training, emits_scores)``, a property;
      ``needs_training`` agrees with the class's.
    - ``extract(waves) -> asdcore.FrontendOutput(embedding, score=None)``: ``waves`` a float32 tensor
      ``[B, clip_samples]`` on ``device`` (under ``torch.inference_mode``, maybe bf16 autocast);
      ``embedding`` ``[B, spec.embedding_dim]`` floating point and finite (NaN or inf is an error naming
      the clip); ``score`` ``[B]`` (higher = more anomalous) when ``spec.emits_scores``, else ``None``.
    - Trained frontends: ``fit(data: asdcore.TrainData)`` on the normal training clips (``data.load(clip)``
      gives a float32 waveform ``[N]``, to tile/crop to ``data.clip_samples`` with ``asdcore.fit_length``;
      ``data.labels[i]`` the class of ``data.clips[i]`` out of ``data.num_classes``;
      ``data.make_loss(embedding_dim, num_classes)`` the configured loss or ``None``; ``data.workdir`` for
      checkpoints that a rerun of the same ``data.identity`` continues), appending one dict per epoch to
      ``data.log``; ``save(directory)`` and ``load(directory)`` the trained state (write files with
      ``asdcore.save_artifact``, read them with ``asdcore.load_artifact``: a damaged file is an
      ``ArtifactError``).
    - ``TorchFrontend`` subclasses implement only ``build_model() -> torch.nn.Module`` (waves ``[B, L]`` ->
      embeddings ``[B, embedding_dim]``) and set ``embedding_dim``; they may override
      ``training_loss(batch, loss)`` (``batch``: waves ``[B, L]`` and class probabilities ``[B, C]``),
      ``training_dataset(data)``, ``checkpoint_state()``; ``skips_parameters = True`` when a step may leave
      trained parameters without a gradient. Training, precision, data parallelism and checkpoints are the
      core's.

    Check: ``asdcore.testing.check_frontend``.
    """


@hookspec
def register_losses(register):
    """Register training losses of trained frontends.

    ``register("my_loss", "my_plugin.losses:MyLoss")``; a pipeline selects it with
    ``frontend: {loss: {name: my_loss, params: {...}}}``. Base class :class:`asdcore.Loss`; implementations
    also subclass ``torch.nn.Module`` (``class MyLoss(asdcore.Loss, torch.nn.Module)``, calling
    ``torch.nn.Module.__init__(self)`` first): parameters they own (class centres) are trained with the
    frontend and saved in its checkpoints.

    Constructor: ``cls(params, *, embedding_dim: int, num_classes: int)``, both required: the frontend's
    embedding size and the number of classes of the dataset's labels.

    Implement ``forward(embedding, target) -> loss``: ``embedding`` float32 ``[B, embedding_dim]``,
    ``target`` float32 class probabilities ``[B, num_classes]`` (one-hot, soft after mixup), the loss a
    scalar float32 tensor. Under data parallelism each process sees its part of the global batch: batch
    statistics (a dynamic scale) use ``asdcore.gather(tensor)``. Wrong shapes are an error naming both.

    Check: ``asdcore.testing.check_loss``.
    """


@hookspec
def register_backends(register):
    """Register backends: anomaly scorers fitted per machine type on training embeddings.

    ``register("my_backend", "my_plugin.backend:MyBackend")``; pipelines list it under
    ``backends: [{name: my_backend, params: {...}}]``. Base class :class:`asdcore.Backend`.

    Constructor: ``cls(params, *, seed: int = 0)``; draw every random number from a generator seeded with
    ``self.seed`` (two instances with the same seed give identical scores).

    Implement (``asdcore.FeatureSet``: ``embedding`` float32 ``[N, D]``, ``section`` int64 ``[N]``,
    ``domain`` int8 ``[N]`` of ``asdcore.SOURCE``/``TARGET``, ``is_anomaly``, ``path``, ``attribute``):

    - ``fit(train)``: the normal training clips of one machine type; fitting again replaces the state.
      The target domain may be missing. Zero clips or non-finite embeddings are an ``AsdcoreError`` saying
      so.
    - ``score(test) -> np.ndarray``: float ``[N]``, finite, higher = more anomalous; leave ``test`` unchanged.
      Scoring before ``fit`` or non-finite embeddings are an ``AsdcoreError``.
    - Optionally ``train_scores(train, folds=5) -> np.ndarray`` ``[N]``, scores of the training clips that set
      the decision threshold; the default scores each fold with a backend fitted on the others.

    Check: ``asdcore.testing.check_backend``.
    """


@hookspec
def register_datasets(register):
    """Register datasets: where clips come from, their labels and their official scorer.

    ``register("my_dataset", "my_plugin.dataset:MyDataset")``; a pipeline selects it with
    ``dataset: {name: my_dataset, root: ..., machines: all}``. Base class :class:`asdcore.Dataset`;
    ``Params`` subclasses :class:`asdcore.DatasetParams` (``root``, ``machines``, ``channels``).

    Constructor: ``cls(params)`` (no context).

    Class attributes: ``scorer`` (the registered scorer name), ``sample_rate``, ``clip_seconds`` (or
    ``clip_seconds_of(machine)`` where it differs per machine type), ``recorded_channels`` (2 for near/far
    microphone recordings, whose ``load(clip, channels)`` the core asks for each channel choice),
    ``label_fields`` (the clip fields whose values form the training classes).

    Implement:

    - ``id`` (property): the results folder name, stable for the same data (e.g. ``dcase2023``).
    - ``available_machines() -> list[str]``: the machine types present under ``root``.
    - ``clips(machine, split) -> list[asdcore.Clip]``: ``split`` is ``"train"`` or ``"test"``; each clip has
      ``path``, ``machine``, ``split``, ``section`` (int), ``domain`` (``SOURCE``/``TARGET``), ``is_anomaly``
      (``NORMAL``, ``ANOMALY`` or ``UNKNOWN``), ``attribute`` and ``subset`` (``dev``/``eval``); the order is
      stable.
    - Optionally ``prepare(progress, force)`` (make the data ready; by default check that ``root``
      exists), ``metadata_files(machine)`` (the label/ground-truth files the metadata comes from: editing
      them redoes what depends on them), ``expected_machines()`` (the types known before the data exist,
      for dry runs), ``load(clip, channels=None)`` (float32 ``[N]`` at ``sample_rate``; the default reads
      the file with ``asdcore.read_audio``).

    A missing root or malformed layout is a ``DatasetError``, a bad clip an ``AudioError`` naming the file,
    an unknown machine type a ``ConfigError`` listing the available ones.

    Check: ``asdcore.testing.check_dataset``.
    """


@hookspec
def register_scorers(register):
    """Register evaluation scorers: the metrics and official score of a DCASE year (or your own).

    ``register("my_scorer", "my_plugin.scorer:MyScorer")``; a dataset names it in ``Dataset.scorer`` and
    ``asdcore evaluate --year`` takes it. Base class :class:`asdcore.Scorer`; per-section AUC/pAUC scorers
    subclass :class:`asdcore.SectionScorer` (implement ``official_values(values) -> list[float]``) or
    :class:`asdcore.HarmonicMeanScorer`.

    Constructor: ``cls(params)`` (no context).

    Implement:

    - ``evaluate(machine, test, scores, subsets, decisions=None) -> asdcore.Evaluation``: ``test`` an
      ``asdcore.FeatureSet``, ``scores`` float ``[N]``, ``subsets`` section -> ``"dev"``/``"eval"`` (the
      sections that count), ``decisions`` int ``[N]`` of 0/1 or ``None``.
    - ``aggregate(evaluations) -> {subset: {"official": float, ...}}`` over machine types
      (``asdcore.scored`` and ``asdcore.subsets_of`` help leave out machine types without finite values).
    - Optionally ``groups(machine, test)`` (submission file key -> indices of its clips; default one per
      section), ``read_submission(scores_dir, ground_truth_dir) -> list[asdcore.Submission]`` and
      ``missing_groups(...)`` to evaluate official submission files (``asdcore.read_table`` reads one,
      with errors naming the file and line).

    Unlabelled test clips or non-finite scores are an ``AsdcoreError`` naming the section; a metric the
    section's clips cannot give (a single class) is NaN with a warning, never an error; an unreadable
    submission file is an ``ArtifactError``.

    Check: ``asdcore.testing.check_scorer``.
    """


@hookspec
def register_augmentations(register):
    """Register training augmentations of trained frontends' batches.

    ``register("my_augmentation", "my_plugin.augment:MyAugmentation")``; a pipeline lists it under
    ``frontend: {augmentations: [{name: my_augmentation, params: {...}}]}``. Base class
    :class:`asdcore.Augmentation`.

    Constructor: ``cls(params)`` (no context).

    Implement ``__call__(waves, target) -> (waves, target)``: ``waves`` float ``[B, L]`` on the training
    device, ``target`` float class probabilities ``[B, C]``; return tensors of the same shapes, dtype and
    device. Draw random numbers from the global torch generator (the core seeds it per process).

    Check: ``asdcore.testing.check_augmentation``.
    """


@hookspec
def register_executors(register):
    """Register executors, the engines that run the units of a plan.

    ``register("my_executor", "my_plugin.executor:MyExecutor")``; pipelines and grids choose one with
    ``executor: {name: my_executor, params: {...}}`` or ``--executor my_executor``. Base class
    :class:`asdcore.Executor`. The core registers ``local``.

    Constructor: ``cls(params)`` (no context).

    Implement ``run(units, job, progress=True) -> dict[str, asdcore.Outcome]``: call ``job(unit)``
    (anywhere that shares the filesystem: a unit is plain picklable data) for every unit once its ``deps``
    among ``units`` are done; ``job`` never raises for a failing unit but returns a ``failed``
    ``asdcore.Outcome``; keep going past failures (units downstream of a failed one are ``blocked``) and
    return ``unit id -> Outcome`` for every unit. :class:`asdcore.Dispatch` keeps that account and shows
    progress. A missing optional dependency or an unusable setting is a ``ConfigError`` saying what to
    install or set.

    Check: ``asdcore.testing.check_executor``.
    """


@hookspec
def register_commands(cli):
    """Add CLI verbs. ``cli`` is the root :class:`click.Group` of ``asdcore``; call
    ``cli.add_command(command)`` with a click command or group (``asdcore <verb>``).

    Called once when the command line is built; heavy imports belong inside the commands. Raise
    ``asdcore.errors`` classes: the command line turns them into one-line messages and exit codes.
    """
