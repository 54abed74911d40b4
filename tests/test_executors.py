"""The executor contract: plugins register executors, configs choose one, failures block only what depends on them."""
from pathlib import Path

import pytest

import asdcore
import toy_plugin
from asdcore.config import load_config
from asdcore.dispatch import Dispatch
from asdcore.engine import Pipeline
from asdcore.errors import UnitsFailedError, UnknownComponentError
from asdcore.executors import failure_report, perform
from asdcore.local_executor import LocalExecutor
from asdcore.testing import ProbeUnit, check_executor, probe_job, probe_units

RAN: list[str] = []


class ReverseExecutor(asdcore.Executor):
    """Runs ready units newest first, to show that an executor's order is its own business."""

    class Params(asdcore.Params):
        label: str = "reverse"

    def run(self, units, job, progress=True):
        dispatch = asdcore.Dispatch(units, progress)
        while not dispatch.finished:
            for unit in reversed(dispatch.ready()):
                RAN.append(unit.id)
                dispatch.finish(unit.id, job(unit))
        return dispatch.outcomes


class ExecutorPlugin:
    @staticmethod
    @asdcore.hookimpl
    def register_executors(register):
        register("reverse", ReverseExecutor)


@pytest.fixture
def with_reverse(registry):
    registry.add_plugin(ExecutorPlugin, name="executor_plugin", distribution="exec-dist")
    RAN.clear()
    return registry


def test_local_and_a_plugin_executor_pass_the_conformance_check(with_reverse, tmp_path):
    records = check_executor("local", folder=tmp_path / "local")
    assert len({r["pid"] for r in records.values()}) == 1 and "summary" in records
    check_executor("reverse", {"label": "x"}, folder=tmp_path / "reverse")
    assert RAN[:2] == ["broken", "train-b"]  # ready units, newest first


def test_the_config_and_the_command_line_choose_the_executor(with_reverse, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path / "a", seeds=[0], executor={"name": "reverse"})
    pipeline = Pipeline.create(load_config(config, registry=with_reverse), with_reverse, progress=False)
    assert isinstance(pipeline.executor(), ReverseExecutor)
    pipeline.run()
    assert set(RAN) == {u.id for u in pipeline.plan()}
    local = load_config(config, registry=with_reverse, executor="local")
    assert local.config.executor.name == "local" and local.executor_params == {"threads": None}
    with pytest.raises(asdcore.ConfigError, match=r"executor.params.workers: unknown key 'workers'; allowed keys: label"):
        load_config(config, ["executor.params.workers=2"], registry=with_reverse)
    with pytest.raises(UnknownComponentError, match="unknown executor 'revers'.*local, reverse.*Did you mean 'reverse'"):
        load_config({**config, "executor": {"name": "revers"}}, registry=with_reverse)


def test_a_failure_blocks_exactly_the_units_below_it(tmp_path):
    units = probe_units(tmp_path)
    outcomes = LocalExecutor().run(units, probe_job, progress=False)
    assert {uid for uid, o in outcomes.items() if o.status == "blocked"} == {"after-broken", "further"}
    assert outcomes["further"].reason == "upstream broken failed"
    report = failure_report(outcomes)
    assert "1 of 10 units failed and 2 were not run because they depend on them" in report
    assert f"broken: asked to fail\n    log: {tmp_path / 'logs' / 'broken.log'}" in report


def test_dispatch_hands_out_ready_units_once_and_estimates_the_time_left(tmp_path):
    units = probe_units(tmp_path)
    dispatch = Dispatch(units, progress=False, slots=2)
    assert [u.id for u in dispatch.ready()] == ["train-a", "train-b", "broken"]
    assert dispatch.ready() == [] and dispatch.estimate() is None
    dispatch.finish("train-a", asdcore.Outcome("done", 4.0))
    dispatch.finish("train-b", asdcore.Outcome("done", 2.0))
    assert [u.id for u in dispatch.ready()] == ["extract-a", "extract-b"]
    # 8 units left: no extract, score or summary ran yet, so each costs the mean of all kinds (3 s); 2 slots
    assert dispatch.estimate() == pytest.approx(8 * 3.0 / 2)
    dispatch.finish("broken", asdcore.Outcome("failed", error="x"))
    assert dispatch.outcomes["further"].status == "blocked"
    assert dispatch.estimate() == pytest.approx(5 * 3.0 / 2)


def test_perform_logs_each_unit_and_turns_errors_into_failed_outcomes(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path, seeds=[0],
                                 backends=[{"name": "distance", "params": {"fail_on": "beta"}}])
    plan = Pipeline.create(load_config(config, registry=registry), registry, progress=False).plan()
    for unit in plan:
        if unit.id.startswith(("shared/extract", "seed0/score/alpha")):
            assert perform(unit).status == "done"
    failed = perform(plan["seed0/score/beta/distance"])
    assert failed.status == "failed" and failed.error == "RuntimeError: backend failure on beta"
    text = Path(failed.log).read_text()
    assert "seed0/score/beta/distance: running (not done yet)" in text and "Traceback" in text
    assert "seed0/score/alpha/distance: running" in plan["seed0/score/alpha/distance"].log.read_text()
    assert perform(plan["seed0/score/alpha/distance"]).status == "skipped"


def test_a_run_with_failures_raises_once_every_other_unit_ran(registry, toy_root, tmp_path):
    config = toy_plugin.pipeline(toy_root, tmp_path, backends=[{"name": "distance", "params": {"fail_on": "alpha"}},
                                                               {"id": "ok", "name": "distance"}])
    with pytest.raises(UnitsFailedError, match="2 of 21 units failed and 5 were not run") as failed:
        Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    done = {uid for uid, o in failed.value.outcomes.items() if o.status == "done"}
    assert {"seed0/evaluate/alpha/ok", "seed1/evaluate/beta/ok", "seed1/evaluate/beta/distance"} <= done


def test_probe_units_are_picklable_and_fail_when_run_too_early(tmp_path):
    unit = ProbeUnit("late", "score", ("early",), str(tmp_path))
    outcome = probe_job(unit)
    assert outcome.status == "failed" and outcome.error == "upstream early not done"


def test_the_local_executor_runs_units_with_the_threads_it_is_given(tmp_path):
    import torch

    before = torch.get_num_threads()
    seen = []
    units = [ProbeUnit("only", "train", (), str(tmp_path))]
    LocalExecutor(LocalExecutor.Params(threads=1)).run(units, lambda u: seen.append(torch.get_num_threads())
                                                       or asdcore.Outcome("done"), progress=False)
    assert seen == [1] and torch.get_num_threads() == before
