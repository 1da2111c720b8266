"""The trace's log parsers on sample lines, including odd ones (pure)."""

from __future__ import annotations

import pytest

from tasks.trace.parse import (
    Upstream,
    line_time,
    parse_app_line,
    parse_proxy_line,
    parse_web_line,
    request_id,
)

RID = "5bda1ae673140f25310207e57fa4bff4"


def test_a_proxy_line_with_one_upstream() -> None:
    line = parse_proxy_line(f'1795707706.634 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 '
                            "10.5.1.11:80 200 0.004 0.005\n")
    assert line is not None
    assert (line.time, line.request_id, line.client, line.request) == (
        1795707706.634, RID, "10.5.1.1", "GET / HTTP/1.1")
    assert line.status == 200 and line.seconds == 0.005
    assert line.upstreams == (Upstream("10.5.1.11:80", 200, 0.004),)


def test_a_proxy_line_with_several_upstreams_tried() -> None:
    line = parse_proxy_line(f'1.5 {RID} 10.5.1.1 "GET /x HTTP/1.1" 200 '
                            "10.5.1.11:80, 10.5.1.12:80 502, 200 0.001, 0.003 0.004")
    assert line is not None
    assert line.upstreams == (Upstream("10.5.1.11:80", 502, 0.001),
                              Upstream("10.5.1.12:80", 200, 0.003))


def test_a_proxy_line_across_an_internal_redirect() -> None:
    line = parse_proxy_line(f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 '
                            "10.5.1.11:80 : 10.5.1.13:80 404 : 200 0.001 : 0.002 0.004")
    assert line is not None
    assert [u.address for u in line.upstreams] == ["10.5.1.11:80", "10.5.1.13:80"]
    assert [u.status for u in line.upstreams] == [404, 200]


def test_a_proxy_line_without_upstream_and_dash_statuses() -> None:
    line = parse_proxy_line(f'1.5 {RID} 10.5.1.1 "" 400 - - - 0.000')
    assert line is not None
    assert line.upstreams == () and line.status == 400 and line.request == ""


def test_a_proxy_line_whose_upstream_answered_nothing() -> None:
    line = parse_proxy_line(f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1" 504 '
                            "10.5.1.11:80, 10.5.1.12:80 -, 504 1.001, 5.002 6.004")
    assert line is not None
    assert [u.status for u in line.upstreams] == [None, 504]
    assert line.upstreams[1].seconds == 5.002


def test_a_proxy_line_with_an_escaped_quote_in_the_request() -> None:
    line = parse_proxy_line(f'1.5 {RID} 10.5.1.1 "GET /\\x22a HTTP/1.1" 200 '
                            "10.5.1.11:80 200 0.001 0.001")
    assert line is not None and line.request == "GET /\\x22a HTTP/1.1"


@pytest.mark.parametrize("text", [
    "",
    "garbage",
    f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.11:80 200 0.001',  # a field short
    f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.11:80 200 0.001 0.1 9',  # one too many
    f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.11:80,  200 0.001 0.1',  # double space
    f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.11:80, 200 0.001, 0.1',  # dangling list
    f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1 200 10.5.1.11:80 200 0.001 0.1',  # no closing quote
])
def test_lines_that_are_not_proxy_lines(text: str) -> None:
    assert parse_proxy_line(text) is None


def test_a_web_line() -> None:
    line = parse_web_line(f'1795707706.630 {RID} 10.5.1.1 "GET / HTTP/1.0" 200 3658 '
                          "web1.tp5.b2\n")
    assert line is not None
    assert (line.time, line.request_id, line.status, line.microseconds, line.fqdn) == (
        1795707706.630, RID, 200, 3658, "web1.tp5.b2")


def test_a_web_line_without_request_id_is_still_read_but_has_no_id() -> None:
    line = parse_web_line('1.001 - 10.5.1.1 "GET / HTTP/1.1" 200 812 web2.tp5.b2')
    assert line is not None and line.request_id is None and line.fqdn == "web2.tp5.b2"


def test_a_web_line_with_a_forged_id_has_no_id() -> None:
    line = parse_web_line('1.001 <script> 10.5.1.1 "GET / HTTP/1.1" 200 812 web2.tp5.b2')
    assert line is not None and line.request_id is None


@pytest.mark.parametrize("text", [
    '1.001 a b c 10.5.1.1 "GET / HTTP/1.1" 200 812 web2.tp5.b2',  # id with spaces
    '1.001 - 10.5.1.1 "GET / HTTP/1.1" 200 812',  # no server name
    '[Thu Nov 26 15:41:44 2026] [php:notice] app_nulle: trace request=- db-write skipped',
    f'1.5 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.11:80 200 0.004 0.005',  # a proxy line
])
def test_lines_that_are_not_web_lines(text: str) -> None:
    assert parse_web_line(text) is None


def test_the_app_line_in_apache_s_error_log() -> None:
    line = parse_app_line(
        "[Thu Nov 26 15:41:46.633364 2026] [php:notice] [pid 126:tid 126] [client "
        f"10.5.1.1:0] app_nulle: trace request={RID} db-write node=db1.tp5.b2 "
        "host=10.5.1.211 visit=24, referer: http://x/")
    assert line is not None
    assert (line.app, line.request_id, line.outcome, line.node, line.host, line.visit) == (
        "app_nulle", RID, "written", "db1.tp5.b2", "10.5.1.211", 24)


@pytest.mark.parametrize(("text", "outcome", "host"), [
    (f"app_nulle: trace request={RID} db-write failed host=10.5.1.211", "failed", "10.5.1.211"),
    ("app_nulle: trace request=- db-write skipped", "skipped", None),
])
def test_app_lines_without_a_write(text: str, outcome: str, host: str | None) -> None:
    line = parse_app_line(text)
    assert line is not None
    assert (line.outcome, line.node, line.host, line.visit) == (outcome, None, host, None)


def test_other_error_log_lines_are_not_app_lines() -> None:
    assert parse_app_line("[php:notice] app_nulle: database error: Connection refused") is None


def test_request_ids_are_32_lowercase_hex_characters() -> None:
    assert request_id(RID) == RID
    assert request_id("-") is None
    assert request_id(RID.upper()) is None
    assert request_id(RID + "0") is None


def test_line_time_reads_the_leading_epoch() -> None:
    assert line_time(f"1795707706.634 {RID} x") == 1795707706.634
    assert line_time("[Thu Nov 26] x") is None
