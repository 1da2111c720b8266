"""The web drill's pure parsers: the proxy's site file (timeouts, passive health, access
log) and its access log lines (one request each, the upstreams tried)."""

from __future__ import annotations

import pytest

from tasks.core.settings import REPO_ROOT
from tasks.drill.nginx_log import parse_line, parse_log, tries_on
from tasks.drill.nginx_site import (
    SiteError,
    access_log_path,
    nginx_seconds,
    parse_site,
    retries_on_failure,
)

GOLDEN_SITE = REPO_ROOT / "tests/unit/golden/rp1/etc/nginx/conf.d/app_nulle.conf"

OK = '1700000000.512 4f1c0a 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.12:80 200 0.004 0.005'
RETRIED = ('1700000005.020 9b2e77 10.5.1.1 "GET /?x=1 HTTP/1.1" 200 10.5.1.11:80, '
           '10.5.1.12:80 504, 200 5.001, 0.006 5.008')
REFUSED = ('1700000001.100 a1 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.11:80, 10.5.1.13:80 '
           '502, 200 0.000, 0.003 0.004')
NO_ANSWER = ('1700000002.000 a2 10.5.1.1 "GET / HTTP/1.1" 502 10.5.1.11:80, 10.5.1.12:80 : '
             'app_nulle_servers -, 502, 502 1.001, 0.002, 0.000 1.004')


@pytest.mark.parametrize(("text", "seconds"), [
    ("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("10", 10.0), ("1h", 3600.0)])
def test_nginx_seconds(text: str, seconds: float) -> None:
    assert nginx_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "1.5s", "5 s", "-1s"])
def test_nginx_seconds_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="NGINX time"):
        nginx_seconds(text)


def test_the_deployed_site_gives_the_timeouts_and_the_log() -> None:
    text = GOLDEN_SITE.read_text()
    timeouts = parse_site(text, "10.5.1.11:80")
    assert (timeouts.connect_s, timeouts.read_s) == (1.0, 5.0)
    assert (timeouts.max_fails, timeouts.fail_timeout_s) == (1, 10.0)
    assert retries_on_failure(timeouts)
    assert timeouts.try_bound_s == 5.0
    assert timeouts.latency_bound_s == 6.0 and timeouts.probe_timeout_s == 7.0
    assert access_log_path(text) == "/var/log/nginx/app_nulle_access.log"


def test_site_values_per_server_and_nginx_defaults() -> None:
    text = ("upstream u {\n  server 10.0.0.1:80 max_fails=3 fail_timeout=30s;\n"
            "  server 10.0.0.2:8080;\n}\nproxy_read_timeout 2500ms;\n"
            "proxy_next_upstream error;\n")
    first = parse_site(text, "10.0.0.1:80")
    assert (first.max_fails, first.fail_timeout_s, first.read_s) == (3, 30.0, 2.5)
    assert first.connect_s == 60.0  # NGINX's default
    assert not retries_on_failure(first)
    second = parse_site(text, "10.0.0.2:8080")
    assert (second.max_fails, second.fail_timeout_s) == (1, 10.0)
    with pytest.raises(SiteError, match="no `server 10.0.0.1:8080`"):
        parse_site(text, "10.0.0.1:8080")
    with pytest.raises(SiteError, match="logs no requests"):
        access_log_path(text + "access_log off;\n")


def test_a_site_with_a_bad_time_is_a_site_error() -> None:
    with pytest.raises(SiteError, match="NGINX time"):
        parse_site("server 10.0.0.1:80 fail_timeout=soon;\n", "10.0.0.1:80")


def test_a_request_answered_at_once() -> None:
    line = parse_line(OK, "rp1")
    assert line is not None and line.proxy == "rp1" and line.status == 200
    assert line.request_id == "4f1c0a" and line.request == "GET / HTTP/1.1"
    assert line.start == pytest.approx(1700000000.507)
    (only,) = line.tries
    assert (only.addr, only.status, only.seconds, only.ok) == ("10.5.1.12:80", 200, 0.004, True)
    assert only.sent == pytest.approx(line.start)


def test_a_request_retried_after_a_timeout() -> None:
    line = parse_line(RETRIED)
    assert line is not None
    first, second = line.tries
    assert (first.addr, first.status, first.ok) == ("10.5.1.11:80", 504, False)
    assert first.sent == pytest.approx(1700000000.012)
    assert first.ended == pytest.approx(1700000005.013)
    assert (second.addr, second.ok) == ("10.5.1.12:80", True)
    assert second.sent == pytest.approx(first.ended)  # sent when the first try gave up


def test_a_request_no_server_answered_across_upstream_groups() -> None:
    line = parse_line(NO_ANSWER)
    assert line is not None and line.status == 502
    assert [(t.addr, t.status) for t in line.tries] == [
        ("10.5.1.11:80", None), ("10.5.1.12:80", 502), ("app_nulle_servers", 502)]
    assert not any(t.ok for t in line.tries)


@pytest.mark.parametrize("text", [
    "", "garbage", OK.replace('"GET / HTTP/1.1"', "GET"),
    OK.replace(" 200 0.004", " 200, 200 0.004"),  # two statuses for one server
    OK.replace("0.004 0.005", "x 0.005"),
])
def test_lines_in_another_format_are_not_understood(text: str) -> None:
    assert parse_line(text) is None


def test_a_log_by_start_time_with_the_lines_not_understood() -> None:
    lines, unparsed = parse_log("\n".join([RETRIED, "nonsense", OK, "", REFUSED]), "rp2")
    assert unparsed == 1
    assert [a.request_id for a in lines] == ["9b2e77", "4f1c0a", "a1"]
    assert [t.status for t in tries_on(lines, "10.5.1.11:80")] == [504, 502]
