"""The lines of each request id put together into its path (pure), and the log commands."""

from __future__ import annotations

import subprocess

import pytest

from tasks.trace.join import Names, Seen, Sent, join_traces, missing_ids
from tasks.trace.logs import MARK, grep_command, parse_grep_output, tail_command
from tasks.trace.parse import parse_app_line, parse_proxy_line, parse_web_line
from tasks.trace.paths import access_logs, log_files

A = "a" * 32
B = "b" * 32
NAMES = Names.of([("web1", "web1.tp5.b2", "10.5.1.11", 80),
                  ("web2", "web2.tp5.b2", "10.5.1.12", 80),
                  ("rp1", "rp1.tp5.b2", "10.5.1.111", None),
                  ("db1", "db1.tp5.b2", "10.5.1.211", None)])


def proxy(rid: str, upstreams: str = "10.5.1.12:80 200 0.004", status: int = 200) -> Seen:
    line = parse_proxy_line(f'2.0 {rid} 10.5.1.1 "GET / HTTP/1.1" {status} {upstreams} 0.005')
    assert line is not None
    return Seen("rp1", line)


def web(node: str, rid: str, status: int = 200, at: float = 1.9) -> Seen:
    line = parse_web_line(f'{at} {rid} 10.5.1.1 "GET / HTTP/1.0" {status} 3100 {node}.tp5.b2')
    assert line is not None
    return Seen(node, line)


def app(node: str, rid: str, rest: str = "node=db1.tp5.b2 host=10.5.1.211 visit=7") -> Seen:
    line = parse_app_line(f"[x] [php:notice] app_nulle: trace request={rid} db-write {rest}")
    assert line is not None
    return Seen(node, line)


def test_a_request_read_from_the_three_logs() -> None:
    (trace,) = join_traces([Sent(1.0, A, 200)], [proxy(A), web("web2", A), app("web2", A),
                                                  web("web1", B)], NAMES)
    assert trace.complete and trace.path == "rp1 -> web2 -> db1"
    assert trace.describe() == f"{A}  rp1 -> web2 -> db1  (200, proxy 5 ms, web 3.1 ms, visit 7)"
    data = trace.to_dict()
    assert data["proxy"]["upstreams"] == [{"address": "10.5.1.12:80", "node": "web2",
                                           "status": 200, "seconds": 0.004}]
    assert data["web"]["node"] == "web2" and data["db"]["node"] == "db1"


def test_the_web_server_is_the_one_nginx_tried_last() -> None:
    seen = [proxy(A, "10.5.1.11:80, 10.5.1.12:80 502, 200 0.001, 0.003"),
            web("web1", A, 502, at=1.95), app("web1", A, "failed host=10.5.1.211"),
            web("web2", A, at=1.9), app("web2", A)]
    (trace,) = join_traces([Sent(1.0, A, 200)], seen, NAMES)
    assert trace.path == "rp1 -> web2 -> db1"
    assert "tried first: web1 502" in trace.notes()


def test_a_failed_write_and_missing_lines_show_in_the_path() -> None:
    traces = join_traces([Sent(1.0, A, 200), Sent(1.1, B, 200)],
                         [proxy(A), web("web2", A), app("web2", A, "failed host=10.5.1.211"),
                          proxy(B)], NAMES)
    assert traces[0].path == "rp1 -> web2 -> db failed" and not traces[0].complete
    assert traces[1].path == "rp1 -> ? -> ?"
    assert traces[1].notes()[-1] == "not in the web/app log"
    assert missing_ids(traces) == [B]


def test_a_request_without_answer_has_no_id() -> None:
    (trace,) = join_traces([Sent(1.0, None, None, "timeout")], [proxy(A)], NAMES)
    assert not trace.complete and "no answer through the VIP (timeout)" in trace.describe()


def test_the_db_node_is_the_server_s_own_name() -> None:
    (trace,) = join_traces([Sent(1.0, A, 200)],
                           [proxy(A), web("web2", A), app("web2", A, "node=mariadb-7 "
                                                               "host=10.5.1.211 visit=1")],
                           NAMES)
    assert trace.db_node == "mariadb-7"  # not the address dialled: who really wrote
    assert NAMES.name("10.5.1.211") == "db1" and NAMES.name("db1") == "db1"


def test_log_files_by_tier() -> None:
    assert log_files("rp", "app") == {"proxy": "/var/log/nginx/app_access.log"}
    assert log_files("web", "app") == {"web": "/var/log/apache2/app_access.log",
                                       "app": "/var/log/apache2/app_error.log"}
    assert access_logs("web", "app") == {"web": "/var/log/apache2/app_access.log"}
    assert log_files("db", "app") == {}


def test_the_grep_command_finds_the_ids_in_real_files(tmp_path) -> None:  # noqa: ANN001
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    access.write_text(f'1.9 {A} 10.5.1.1 "GET / HTTP/1.0" 200 3100 web2.tp5.b2\n'
                      f'1.9 {"c" * 32} 10.5.1.1 "GET / HTTP/1.0" 200 3100 web2.tp5.b2\n')
    error.write_text(f"[x] app_nulle: trace request={A} db-write skipped\n")
    files = {"web": str(access), "app": str(error), "proxy": str(tmp_path / "none.log")}
    out = subprocess.run(["sh", "-c", grep_command(files, [A, B])], capture_output=True,
                         text=True, check=True).stdout
    seen, missing = parse_grep_output("web2", out)
    assert [(s.node, type(s.line).__name__, s.line.request_id) for s in seen] == [
        ("web2", "WebLine", A), ("web2", "AppLine", A)]
    assert missing == ["proxy"]


def test_the_grep_command_refuses_anything_but_request_ids() -> None:
    with pytest.raises(ValueError, match="not a request id"):
        grep_command({"web": "/x"}, [A, "x; rm -rf /"])


def test_grep_output_lines_of_no_known_kind_are_skipped() -> None:
    out = f"{A}\n{MARK}web\nnot a log line\n"
    assert parse_grep_output("web1", out) == ([], [])


def test_the_tail_command_prints_its_pid_then_only_new_lines(tmp_path) -> None:  # noqa: ANN001
    log = tmp_path / "a b.log"
    log.write_text("old line\n")
    proc = subprocess.Popen(["sh", "-c", tail_command(str(log), 3)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith(MARK + "pid ") and int(first.split()[-1]) == proc.pid
    with log.open("a") as out:
        out.write("new line\n")
    assert proc.stdout.readline() == "new line\n"
    proc.terminate()
    assert proc.wait(timeout=5) != 0
