"""Sessions in the database tier (session_store: db): a cookie-jar client through the VIP
keeps one session whichever web server answers, and keeps it when the web server that served
it dies. The proxies stay round-robin (lb_affinity: none)."""

from __future__ import annotations

import subprocess
import time
import urllib.request

import pytest

from tasks.core.guard import check_addresses
from tasks.drill.session_probe import cookie_opener, session_request
from tasks.drill.sessions import SessionAnswer, session_stats
from tp5lab.control import Lab

pytestmark = pytest.mark.lab

VIP = "10.5.1.110"
BRIDGE = "tp5br0"
URL = f"http://{VIP}/"
WEB = {"web1.tp5.b2", "web2.tp5.b2", "web3.tp5.b2"}
NODE = {"web1.tp5.b2": "web1", "web2.tp5.b2": "web2", "web3.tp5.b2": "web3"}
ADDRESS = {"web1": "10.5.1.11", "web2": "10.5.1.12", "web3": "10.5.1.13"}
TIMEOUT = 15.0  # a request may meet a dead server (proxy timeouts) before another answers


@pytest.fixture(scope="module")
def routed(deployed: object) -> None:
    assert check_addresses(BRIDGE, [VIP, *ADDRESS.values()]) == []


def requests(opener: urllib.request.OpenerDirector, count: int) -> list[SessionAnswer]:
    answers = [session_request(opener, URL, 1, TIMEOUT) for _ in range(count)]
    for answer in answers:
        assert answer.ok and answer.session is not None, answer
    return answers


def sql(lab: Lab, node: str, query: str) -> str:
    out = subprocess.run(lab.nsenter_argv(node, ["mysql", "-N", "-B", "-e", query]),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_session_continues_across_round_robin(routed: None, lab: Lab) -> None:
    answers = requests(cookie_opener(), 12)
    assert [a.hits for a in answers] == list(range(1, 13))
    assert len({a.session for a in answers}) == 1
    assert {a.server for a in answers} == WEB  # round-robin: every server counted on it
    assert session_stats(answers).lost == 0
    # The session is a row of the database, on the primary and (semi-sync) on the replica.
    session = answers[0].session
    row = f"SELECT data FROM app_nulle.sessions WHERE id = '{session}'"
    assert sql(lab, "db1", row) == "hits|i:12;"
    deadline = time.monotonic() + 10  # acknowledged by the replica, applied soon after
    while sql(lab, "db2", row) != "hits|i:12;":
        assert time.monotonic() < deadline, sql(lab, "db2", row)
        time.sleep(0.1)


def test_an_unknown_session_id_is_not_adopted(routed: None) -> None:
    request = urllib.request.Request(URL, headers={"Cookie": "app_nulle_sid=chosenbytheclient1"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=TIMEOUT) as answer:
        body = answer.read().decode()
        cookie = answer.headers.get("Set-Cookie", "")
    assert "chosenbytheclient1" not in body and "chosenbytheclient1" not in cookie
    assert cookie.startswith("app_nulle_sid=") and "hits=1\n" in body


def back_in_rotation(lab: Lab, node: str, timeout: float = 60.0) -> None:
    """The restarted node runs Apache and answers through the VIP again (bounded: NGINX
    skips it up to fail_timeout after its last failed try), so the next test finds the
    stack as it was."""
    deadline = time.monotonic() + timeout
    subprocess.run(lab.nsenter_argv(node, ["sh", "-c", "pidof apache2 >/dev/null || "
                                                       "service apache2 start"]),
                   capture_output=True, timeout=30, check=False)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(URL, timeout=TIMEOUT) as answer:
                if (answer.headers.get("X-Served-By") or "").startswith(f"{node}."):
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{node} is not back in rotation"
        time.sleep(0.2)


def test_a_session_continues_after_its_web_server_is_crashed(routed: None, lab: Lab) -> None:
    opener = cookie_opener()
    before = requests(opener, 4)
    victim = NODE[str(before[-1].server)]  # the server that saved the session last
    lab.crash(victim)
    try:
        after = requests(opener, 6)
    finally:
        lab.restart(victim)
        back_in_rotation(lab, victim)
    series = before + after
    assert [a.hits for a in series] == list(range(1, 11))  # strictly on: nothing lost
    assert len({a.session for a in series}) == 1
    assert f"{victim}.tp5.b2" not in {a.server for a in after}
    assert len({a.server for a in after}) == 2  # the two survivors, in turn
