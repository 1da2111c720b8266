"""Sessions seen by cookie-jar clients, judged without a network: a restart (another id, or
a count not above the last one) is a lost session; a jump, an answer without a session or a
failed request is not. The web drill's verdict expects none lost with the db store only."""

from __future__ import annotations

import json

import pytest

from tasks.drill.nginx_site import NginxTimeouts
from tasks.drill.sessions import (
    SessionAnswer,
    parse_session,
    restarts_of,
    session_stats,
    skipped_of,
)
from tasks.drill.web_record import WebExperiment
from tasks.drill.web_report import experiment_lines
from tasks.drill.web_verdict import session_problems

NGINX = NginxTimeouts(1.0, 5.0, 1, 10.0, ("error", "timeout", "http_502"))
SID = "0kl25p4f8evbujml81gjr5pe9r"
OTHER = "1ob2d8pj6sc3a3sfh7ef2jaulv"


def ok(client: int, t: float, hits: int, sid: str = SID, server: str = "web1.tp5.b2"
       ) -> SessionAnswer:
    return SessionAnswer(client, t, True, sid, hits, server, 0.01)


@pytest.mark.parametrize(("value", "parsed"), [
    (f"{SID} hits=3", (SID, 3)),
    ("a,b-C hits=12", ("a,b-C", 12)),
    ("unavailable (session store error, see the web server error log)", None),
    (f"{SID} hits=", None), (f"{SID} hits=1 extra", None), (f"{SID}' hits=1", None),
    ("", None), (None, None),
])
def test_the_session_value_is_parsed_whole(value: str | None,
                                           parsed: tuple[str, int] | None) -> None:
    assert parse_session(value) == parsed


@pytest.mark.parametrize(("series", "restarts", "skipped"), [
    ([(SID, 1), (SID, 2), (SID, 3)], [], 0),
    ([(SID, 1), (SID, 2), (OTHER, 1)], [2], 0),  # a new id: the session is gone
    ([(SID, 1), (SID, 2), (SID, 1)], [2], 0),  # same id, counter back to 1
    ([(SID, 1), (SID, 3), (SID, 3)], [2], 1),  # a saved hit lost (went back)
    ([(SID, 1), (SID, 4), (SID, 5)], [], 2),  # two answers lost in flight: no loss
    ([(SID, 5), (SID, 6)], [], 0),  # a series may start anywhere
    ([], [], 0),
])
def test_restarts_and_skipped_hits(series: list[tuple[str, int]], restarts: list[int],
                                   skipped: int) -> None:
    assert restarts_of(series) == restarts
    assert skipped_of(series) == skipped


def test_clients_are_judged_apart_in_send_order() -> None:
    answers = [
        ok(1, 1.0, 1), ok(2, 1.1, 1, OTHER), ok(1, 2.0, 2, server="web2.tp5.b2"),
        SessionAnswer(1, 3.0, False, error="timeout"),
        SessionAnswer(2, 2.1, True, server="web3.tp5.b2", error="no session: unavailable"),
        ok(2, 3.1, 2, OTHER, "web3.tp5.b2"), ok(1, 4.0, 4),
        ok(2, 0.5, 7, OTHER),  # sent first: the series is 7, 1, 2 (a restart at 1.1)
    ]
    stats = session_stats(answers)
    assert (stats.clients, stats.answers, stats.without_session, stats.failed) == (2, 6, 1, 1)
    assert stats.skipped_hits == 1 and stats.lost == 1
    assert [(r.client, r.time, r.before, r.after) for r in stats.restarts] == [
        (2, 1.1, (OTHER, 7), (OTHER, 1))]
    assert stats.servers == {1: ("web1.tp5.b2", "web2.tp5.b2"),
                             2: ("web1.tp5.b2", "web3.tp5.b2")}
    assert json.loads(json.dumps(stats.to_dict()))["servers"]["1"] == ["web1.tp5.b2",
                                                                       "web2.tp5.b2"]


def test_an_answer_round_trips_through_json() -> None:
    answer = ok(3, 12.5, 9)
    assert SessionAnswer.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer


def experiment(store: str, answers: list[SessionAnswer]) -> WebExperiment:
    exp = WebExperiment("crash", "web1", NGINX, 7.0, fault_time=10.0, session_store=store,
                        session_answers=answers)
    exp.sessions = session_stats(answers)
    return exp


def test_the_verdict_expects_no_lost_session_with_the_db_store() -> None:
    lost = [ok(1, 1.0, 1), ok(1, 2.0, 2), ok(1, 3.0, 1, OTHER), ok(2, 1.5, 1)]
    problems = session_problems(experiment("db", lost))
    assert problems == [f"1 of 2 session client(s) lost their session (first: client 1 went "
                        f"from {SID} hits=2 to {OTHER} hits=1)"]
    assert session_problems(experiment("files", lost)) == []  # reported, not expected
    kept = [ok(1, 1.0, 1), ok(1, 2.0, 3)]
    assert session_problems(experiment("db", kept)) == []
    blind = [SessionAnswer(1, 1.0, True, server="web1.tp5.b2", error="no session: x")]
    assert session_problems(experiment("db", blind)) == [
        "no answer to the session clients showed a session"]


def test_the_report_gives_the_sessions_lost() -> None:
    exp = experiment("db", [ok(1, 1.0, 1), ok(1, 2.0, 2), ok(1, 3.0, 1, OTHER)])
    exp.problems = session_problems(exp)
    lines = experiment_lines(exp)
    assert any(line.startswith("sessions (store db, 1 cookie-jar clients): 1 lost "
                               "(expected 0), 3 answers counted on") for line in lines), lines
    assert lines[-1].startswith("expectation (") and "no session lost" in lines[-1]
    assert "FAIL: 1 of 1 session client(s) lost their session" in lines[-1]
