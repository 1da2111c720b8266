"""The web drill's order of steps and its guarantees, with the network steps replaced by
recorders (a fault once injected is always restored, the probes always stop), its faults as
data, and its context's refusals before any connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core.settings import ProjectError, Settings, load_settings
from tasks.drill import arguments, web_experiment, web_steps
from tasks.drill.context import DrillOptions
from tasks.drill.nginx_site import NginxTimeouts
from tasks.drill.proxies import DrillError
from tasks.drill.web_context import WebDrillContext, build_web_context
from tasks.drill.web_faults import WEB_FAULTS, WebFault, web_fault_named
from tasks.drill.web_record import WebExperiment
from tp5lab.inventory_factory import write_inventory

NGINX = NginxTimeouts(1.0, 5.0, 1, 10.0, ("error", "timeout"))


class FakeNornir:
    def __init__(self) -> None:
        self.closed = 0

    def close_connections(self) -> None:
        self.closed += 1


def make_ctx() -> WebDrillContext:
    return WebDrillContext(
        proxies=FakeNornir(), webs=FakeNornir(), lab=None, vip="10.5.1.110",  # type: ignore[arg-type]
        interface="eth0", bridge=None, master="rp1", web_fqdns=("web1.tp5.b2", "web2.tp5.b2"),
        names={}, target="web1", target_fqdn="web1.tp5.b2", target_server="10.5.1.11:80",
        access_log="/var/log/nginx/app_nulle_access.log", nginx=NGINX, session_store="db",
        options=DrillOptions(probe_timeout=7.0), progress=lambda _m: None)


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []

    class FakeObservation:
        def __init__(self, *_args: Any, **_kwargs: Any) -> None:
            self.records: list[Any] = []
            self.session_answers: list[Any] = []

        def __enter__(self) -> FakeObservation:
            seen.append("observe")
            return self

        def __exit__(self, *_exc: Any) -> None:
            seen.append("stop observing")

    def steady(_ctx: WebDrillContext, _exp: WebExperiment) -> bool:
        seen.append("steady")
        return "no steady state" not in seen

    def logs(*_a: Any) -> tuple[list[Any], int]:
        seen.append("logs")
        return [], 0

    monkeypatch.setattr(web_experiment, "Observation", FakeObservation)
    monkeypatch.setattr(web_steps, "check_steady_state", steady)
    monkeypatch.setattr(web_steps, "observe_baseline", lambda: seen.append("baseline"))
    monkeypatch.setattr(web_steps, "hold", lambda _ctx: seen.append("hold"))
    monkeypatch.setattr(web_steps, "settle", lambda *_a: seen.append("settle"))
    monkeypatch.setattr(web_steps, "read_access_logs", logs)
    yield seen


def fault(calls: list[str], inject_raises: BaseException | None = None,
          restore_raises: BaseException | None = None) -> WebFault:
    def inject(_ctx: WebDrillContext, target: str) -> None:
        calls.append(f"inject {target}")
        if inject_raises is not None:
            raise inject_raises

    def restore(_ctx: WebDrillContext, target: str) -> None:
        calls.append(f"restore {target}")
        if restore_raises is not None:
            raise restore_raises

    return WebFault("test", "a test fault", False, inject, restore)


def test_the_steps_run_in_order(calls: list[str]) -> None:
    exp = web_experiment.run_web_experiment(make_ctx(), fault(calls))
    assert calls == ["steady", "observe", "baseline", "inject web1", "hold", "restore web1",
                     "settle", "stop observing", "logs"]
    assert exp.injected and exp.restored_time is not None and exp.left_faulted is None
    assert set(exp.phases) == {"before", "during", "after"}  # the verdict ran


def test_nothing_is_injected_without_the_steady_state(calls: list[str]) -> None:
    calls.append("no steady state")
    exp = web_experiment.run_web_experiment(make_ctx(), fault(calls))
    assert calls[1:] == ["steady"] and not exp.injected and exp.phases == {}


@pytest.mark.parametrize(("error", "last"), [
    (KeyboardInterrupt(), ["restore web1", "stop observing"]),  # Ctrl-C: no analysis
    (DrillError("refused"), ["restore web1", "stop observing", "logs"]),
])
def test_a_failed_or_interrupted_injection_is_restored(
    calls: list[str], error: BaseException, last: list[str]
) -> None:
    exp = web_experiment.run_web_experiment(make_ctx(), fault(calls, error))
    assert calls[3:] == ["inject web1", *last]
    assert exp.left_faulted is None
    assert exp.interrupted == isinstance(error, KeyboardInterrupt)
    assert exp.problems[0] == ("interrupted (Ctrl-C)" if exp.interrupted
                               else "inject test on web1 failed: refused")


def test_a_failed_restore_names_the_target_and_the_drill_stops(calls: list[str]) -> None:
    ctx = make_ctx()
    run = web_experiment.run_web_drill(ctx, fault(calls, restore_raises=DrillError("no ssh")),
                                       repeat=3)
    assert len(run.experiments) == 1 and not run.ok and run.left_faulted == "web1"
    assert "restore of web1 failed: no ssh" in run.experiments[0].problems
    assert "settle" not in calls
    assert ctx.proxies.closed == ctx.webs.closed == 1  # type: ignore[attr-defined]


def test_the_timings_come_from_the_proxy_timeouts() -> None:
    ctx = make_ctx()
    assert web_steps.hold_s(ctx) == 5.0 + 10.0 + web_steps.HOLD_MARGIN_S
    assert web_steps.return_window_s(ctx) == 10.0 + 5.0 + web_steps.RETURN_MARGIN_S
    assert web_steps.observation_s(ctx) > web_steps.hold_s(ctx) + web_steps.return_window_s(ctx)


def test_web_faults_are_data() -> None:
    assert list(WEB_FAULTS) == ["crash", "stop", "hang"]
    assert {f.name for f in WEB_FAULTS.values() if f.needs_lab} == {"crash"}
    assert web_fault_named("hang", is_lab=False) is WEB_FAULTS["hang"]
    for name, message in (("crash", "needs the local lab"), ("link", "crash, stop, hang")):
        with pytest.raises(ProjectError) as err:
            web_fault_named(name, is_lab=False)
        assert err.value.exit_code == 2 and message in str(err.value)


@pytest.mark.parametrize(("group", "fault", "given", "message"), [
    ("rp", "crash", set(), None),
    ("web", "hang", set(), None),
    ("rp", "hang", set(), "--fault hang: not a fault of group rp; its faults are: crash, link, "
                          "stop, nginx"),
    ("web", "link", set(), "--fault link: not a fault of group web; its faults are: crash, "
                           "stop, hang"),
    ("web", "nginx", set(), "crash, stop, hang"),
    ("web", "crash", {"capture", "pcap"}, "--capture, --pcap: the web tier has no VRRP"),
    ("rp", "stop", {"capture", "iface"}, None),
])
def test_faults_and_options_per_group(group: str, fault: str, given: set[str],
                                      message: str | None) -> None:
    problem = arguments.combination_problem(group, fault, given)
    assert problem == message if message is None else message in (problem or "")


def real_settings(tmp_path: Path, webs: int = 3) -> Settings:
    config = write_inventory(tmp_path, webs)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["target"] = "real"
    config.write_text(yaml.safe_dump(raw))
    return load_settings(config)


@pytest.mark.parametrize(("webs", "target", "message"), [
    (3, "rp1", "--target rp1: not a host of group web (its hosts: web1, web2, web3)"),
    (3, "web4", "--target web4: not a host of group web"),
    (1, None, "group web has 1 host(s); a web drill needs two"),
])
def test_bad_web_requests_are_refused_before_any_connection(
    tmp_path: Path, webs: int, target: str | None, message: str
) -> None:
    with pytest.raises(ProjectError) as err:
        build_web_context(real_settings(tmp_path, webs), DrillOptions(), target=target)
    assert err.value.exit_code == 2 and message in str(err.value)
