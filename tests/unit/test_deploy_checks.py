"""Pure parts of the deploy: check parsers, VIP holders, daemon states, plans, tier order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from nornir.core.filter import F

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import load_settings
from tasks.db.sql import DbTarget
from tasks.deploy.checks import (
    RoundRobin,
    check_round_robin,
    fresh_start_reason,
    host_check_script,
    parse_check_output,
    parse_ip_br,
    problems,
    vip_holders,
)
from tasks.deploy.order import TierGate, prerequisites, verify_after
from tasks.deploy.plan import (
    BOOT_SCRIPT,
    ServicePlan,
    parse_daemons,
    parse_host_state,
    plan_host,
    read_state_script,
)
from tasks.deploy.push import DesiredFile
from tasks.deploy.stack import database_line, round_robin_hint

WEB_OK = """\
@@tp5 up apache2
@@tp5 http
HTTP/1.1 200 OK
Date: Wed, 25 Nov 2026 19:35:14 GMT
X-Served-By: web1.tp5.b2 10.5.1.11
Content-Type: text/plain; charset=utf-8

@@tp5 curl 0
"""

RP_DOWN = """\
@@tp5 up nginx
@@tp5 down keepalived
@@tp5 http
HTTP/1.1 502 Bad Gateway
Server: nginx/1.22.1

@@tp5 curl 0
@@tp5 addr
eth0@if190       UP             10.5.1.111/24 10.5.1.110/24 fe80::4457:83ff:fe4f:b553/64
"""


def plans_of(host: str, is_lab: bool, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch,
             config: Path | None = None) -> list[ServicePlan]:
    """Run the plan_host task (rendering only, no connection) for one host."""
    monkeypatch.setattr("tasks.core.state.SECRETS_DIR", secrets_dir)
    settings = load_settings(config)
    nr = build_nornir(settings, check_lab=False)
    result = nr.filter(F(name=host)).run(task=plan_host, inventory=nr.inventory,
                                         is_lab=is_lab, db=DbTarget.from_settings(settings))
    assert not result.failed, result[host][0].result
    return result[host][0].result


def test_a_healthy_web_check_has_no_problem() -> None:
    check = parse_check_output(WEB_OK)
    assert check.running == {"apache2": True}
    assert (check.http_status, check.served_by, check.curl_rc) == (
        200, "web1.tp5.b2 10.5.1.11", 0)
    assert problems("web", check, "web1.tp5.b2 10.5.1.11") == []
    assert problems("web", check, "web2.tp5.b2 10.5.1.12") == [
        "X-Served-By is 'web1.tp5.b2 10.5.1.11', expected 'web2.tp5.b2 10.5.1.12'"]


def test_a_proxy_check_reports_a_dead_daemon_a_bad_status_and_its_addresses() -> None:
    check = parse_check_output(RP_DOWN)
    assert check.addresses == ["10.5.1.111", "10.5.1.110", "fe80::4457:83ff:fe4f:b553"]
    assert problems("rp", check) == ["keepalived is not running",
                                     "HTTP 502 on the node's address"]


def test_no_http_answer_names_curls_exit_code() -> None:
    check = parse_check_output("@@tp5 up apache2\n@@tp5 http\n@@tp5 curl 7\n")
    assert problems("web", check, "x") == ["no HTTP answer on the node's address (curl exit 7)"]


def test_host_check_script_asks_what_each_tier_needs() -> None:
    web = host_check_script("web", "10.5.1.11", 80)
    assert "pidof apache2" in web and "http://10.5.1.11:80/" in web and "ip -br" not in web
    rp = host_check_script("rp", "10.5.1.111", 80, "eth0")
    assert "pidof keepalived" in rp and "ip -br addr show dev eth0" in rp
    assert "upstream" not in rp and "upstream" not in web
    both = host_check_script("rp", "10.5.1.111", 80, "eth0",
                             [("web1", "10.5.1.11", 80), ("web2", "10.5.1.12", 8080)])
    assert "http://10.5.1.11:80/" in both and "http://10.5.1.12:8080/" in both
    # The probes run in parallel with the rest of the check; their lines come after it.
    assert both.index("http://10.5.1.12:8080/") < both.index("@@tp5 http")
    assert both.index("\nwait\n") < both.index("@@tp5 upstream web1 10.5.1.11:80")


def rp_check(status: int | None, upstreams: dict[str, int], recent: str = "") -> str:
    """A proxy's check output: nginx answers `status`; the web servers (webN at 10.5.1.1N)
    answer directly with `upstreams` (0: no answer), their lines in any order (parallel
    probes); `recent`: the access log's last lines."""
    http = f"HTTP/1.1 {status} X\n" if status else ""
    lines = [f"@@tp5 upstream {name} 10.5.1.1{name[3:]}:80 {code:03d}"
             for name, code in reversed(upstreams.items())]
    return ("@@tp5 up nginx\n@@tp5 up keepalived\n@@tp5 http\n" + http
            + f"@@tp5 curl {0 if status else 7}\n@@tp5 addr\neth0 UP 10.5.1.111/24\n"
            + "@@tp5 recent\n" + recent + "\n".join(lines) + "\n")


# Access log lines (templates/nginx/site.conf.j2, format `trace`) as NGINX 1.22 writes them.
LOG_OK = ('1795708332.066 f8e5cb 10.5.1.111 "GET / HTTP/1.1" 200 10.5.1.11:80 200 0.007 '
          '0.007\n')
LOG_RETRIED = ('1795708332.473 51f16e 10.5.1.1 "GET / HTTP/1.1" 200 10.5.1.12:80, '
               '10.5.1.13:80 502, 200 0.000, 0.010 0.011\n')
LOG_NO_LIVE = ('1795708058.613 d43f7a 10.5.1.1 "GET / HTTP/1.1" 502 app_nulle_servers 502 '
               '0.000 0.000\n')
LOG_TIMEOUT = ('1795708059.100 e1 10.5.1.1 "GET /a\\x22b HTTP/1.1" 504 10.5.1.11:80 504 '
               '1.001 1.001\n')


def test_failed_attempts_in_the_access_log() -> None:
    from tasks.deploy.checks import failed_attempts

    assert failed_attempts([LOG_OK]) == []
    assert failed_attempts([LOG_OK, LOG_RETRIED]) == ["10.5.1.12:80"]
    assert failed_attempts([LOG_NO_LIVE]) == ["app_nulle_servers"]
    assert failed_attempts([LOG_TIMEOUT, LOG_RETRIED]) == ["10.5.1.11:80", "10.5.1.12:80"]
    assert failed_attempts(["garbage", ""]) == []


def test_nginx_times_in_seconds() -> None:
    from tasks.deploy.checks import nginx_seconds

    assert [nginx_seconds(v) for v in ("10s", "10", "1m", "500ms", " 2h ")] == [
        10, 10, 60, 0.5, 7200]
    with pytest.raises(ValueError, match="not an NGINX time"):
        nginx_seconds("ten")


def test_a_proxy_check_reads_its_upstreams_in_name_order() -> None:
    check = parse_check_output(rp_check(200, {"web2": 200, "web10": 0, "web1": 500}, LOG_OK))
    assert list(check.upstreams) == ["web1", "web2", "web10"]
    assert check.upstream_addresses["web10"] == "10.5.1.110:80" and check.failed_recently == []
    assert check.upstreams == {"web1": 500, "web2": 200, "web10": 0}
    assert check.serving == ["web2"] and check.addresses == ["10.5.1.111"]
    assert problems("rp", check) == []  # the proxy answers: a silent web server is no fault


@pytest.mark.parametrize(("status", "upstreams", "hint", "expected"), [
    (502, {"web1": 0, "web2": 0, "web3": 0}, ": deploy it first, or run without --group/--host",
     "web tier not answering on web1, web2, web3: deploy it first, or run without "
     "--group/--host"),
    (502, {"web1": 0, "web2": 0}, "", "web tier not answering on web1, web2"),
    (500, {"web1": 500, "web2": 0}, "", "HTTP 500 on the node's address; no web server serves "
     "200 from here (web1 HTTP 500, web2 no answer)"),
    (502, {"web1": 200, "web2": 0}, "x", "HTTP 502 on the node's address"),
    (502, {}, "x", "HTTP 502 on the node's address"),
])
def test_a_proxy_that_does_not_answer_says_why_in_words(
    status: int, upstreams: dict[str, int], hint: str, expected: str
) -> None:
    assert problems("rp", parse_check_output(rp_check(status, upstreams)), "", hint) == [expected]


@pytest.mark.parametrize(("before", "now", "reason"), [
    # A first deploy: nothing answered at the first read, everything answers now.
    ((None, {"web1": 0, "web2": 0}), (502, {"web1": 200, "web2": 200}),
     "web server(s) up since the deploy began: web1, web2"),
    # Even when the proxy answers (through web1), web2 may still be marked failed.
    ((200, {"web1": 200, "web2": 0}), (200, {"web1": 200, "web2": 200}),
     "web server(s) up since the deploy began: web2"),
    # Up all along, but the proxy keeps failing them: marks from an earlier run.
    ((502, {"web1": 200, "web2": 200}), (502, {"web1": 200, "web2": 200}),
     "HTTP 502 through NGINX while web1, web2 answer(s) directly: stale failure marks"),
    ((200, {"web1": 200, "web2": 0}), (200, {"web1": 200, "web2": 0}), ""),
    # The proxy answers through web3, but web2 failed a request lately: still marked.
    ((200, {"web2": 200, "web3": 200}),
     (200, {"web2": 200, "web3": 200}, LOG_OK + LOG_RETRIED),
     "web2 answer(s) directly but failed a request through NGINX within its fail_timeout: "
     "stale failure marks"),
    ((200, {"web1": 200, "web2": 200}), (200, {"web1": 200, "web2": 200}, LOG_NO_LIVE),
     "web1, web2 answer(s) directly but failed a request through NGINX within its "
     "fail_timeout: stale failure marks"),
    # A web server that failed and still does not answer: nothing to start afresh.
    ((200, {"web1": 200, "web2": 0}), (200, {"web1": 200, "web2": 0}, LOG_RETRIED), ""),
    ((502, {"web1": 0}), (502, {"web1": 0}), ""),  # nothing to start afresh: deploy web first
    ((200, {"web1": 200}), (200, {"web1": 200}), ""),  # a healthy proxy is left alone
])
def test_when_a_proxy_starts_its_upstreams_afresh(
    before: tuple[int | None, dict[str, int]], now: tuple, reason: str
) -> None:
    assert fresh_start_reason(parse_check_output(rp_check(*before)),
                              parse_check_output(rp_check(*now))) == reason


def test_vip_holders_and_ip_br() -> None:
    assert parse_ip_br("lo UNKNOWN 127.0.0.1/8 ::1/128\n") == ["127.0.0.1", "::1"]
    addrs = {"rp1": ["10.5.1.111", "10.5.1.110"], "rp2": ["10.5.1.112"]}
    assert vip_holders(addrs, "10.5.1.110") == ["rp1"]
    addrs["rp2"].append("10.5.1.110")
    assert vip_holders(addrs, "10.5.1.110") == ["rp1", "rp2"]


class _RoundRobinServer(BaseHTTPRequestHandler):
    """Answers like the proxies (one round-robin shared by every worker, as NGINX's upstream
    zone): web1, web2, web3, web1... in the order the requests arrive; slow enough that
    requests sent together overlap. Records the most requests it held at once."""

    turn = 0
    busy = 0
    most = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        cls = type(self)
        with cls.lock:
            server = f"web{cls.turn % 3 + 1}.tp5.b2"
            cls.turn += 1
            cls.busy += 1
            cls.most = max(cls.most, cls.busy)
        time.sleep(0.05)
        with cls.lock:
            cls.busy -= 1
        self.send_response(200)
        self.send_header("X-Served-By", f"{server} 10.5.1.1x")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def loopback_proxy() -> Iterator[int]:
    _RoundRobinServer.turn = _RoundRobinServer.busy = _RoundRobinServer.most = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RoundRobinServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_round_robin_requests_in_flight_keep_the_distribution(loopback_proxy: int) -> None:
    one = check_round_robin("127.0.0.1", 6, port=loopback_proxy)
    assert _RoundRobinServer.most == 1  # one after the other
    assert one.order == ["web1.tp5.b2", "web2.tp5.b2", "web3.tp5.b2"] * 2 and not one.errors
    _RoundRobinServer.most = 0
    rr = check_round_robin("127.0.0.1", 9, port=loopback_proxy, in_flight=3)
    assert _RoundRobinServer.most > 1  # they overlapped
    assert rr.counts == {"web1.tp5.b2": 3, "web2.tp5.b2": 3, "web3.tp5.b2": 3}
    assert not rr.errors and len(rr.order) == 9


def test_round_robin_counts_and_coverage() -> None:
    rr = RoundRobin(["web1", "web2", "web1"], [])
    assert rr.counts == {"web1": 2, "web2": 1}
    assert rr.covers(["web1", "web2"]) and not rr.covers(["web1", "web2", "web3"])
    assert not RoundRobin(["web1"], ["HTTP 502"]).covers(["web1"])
    # A web host whose deploy failed may still answer; a server outside the tier may not.
    assert rr.covers(["web1"], allowed=["web1", "web2"])
    assert not rr.covers(["web1"], allowed=["web1"])


def test_parse_daemons() -> None:
    assert parse_daemons("up nginx\ndown keepalived\nnoise\n") == {"nginx": True,
                                                                  "keepalived": False}


def test_plans_group_files_per_service_and_add_the_boot_script_in_lab_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rp = plans_of("rp1", True, tmp_path, monkeypatch)
    assert [p.service for p in rp] == ["nginx", "keepalived", "boot"]
    assert rp[0].validate == "nginx -t" and rp[1].daemon == "keepalived"
    boot = rp[2].files[0]
    assert boot.path == BOOT_SCRIPT and boot.mode == "0755"
    assert boot.content.splitlines()[2:] == ["service nginx start", "service keepalived start"]
    web = plans_of("web1", False, tmp_path, monkeypatch)
    assert [p.service for p in web] == ["apache2", "app"]
    assert web[1].validate == "php -l /etc/app_nulle/db.php" and web[1].reload is None
    db_php = web[1].files[0]
    assert db_php.secret and (db_php.mode, db_php.owner) == ("0640", "root:www-data")
    assert db_php.content not in repr(web)  # a printed Result never shows the password
    script = read_state_script(web)
    assert script.count("base64 -w0") == 6 and "pidof apache2" in script
    db = plans_of("db2", True, tmp_path, monkeypatch)
    assert [p.service for p in db] == ["mariadb", "boot"]
    assert db[0].daemon == "mariadbd" and db[0].reload == "service mariadb restart"
    assert "read-only=TRUE" in str(db[0].validate)
    assert db[1].files[0].content.splitlines()[2:] == ["service mariadb start"]


def test_the_web_tiers_db_settings_follow_the_config_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config is honoured: a 'real' config gets the environment's password and no lab
    boot script, whatever the repository's own config.yaml says."""
    from tp5lab.inventory_factory import write_inventory

    config = write_inventory(tmp_path / "real", 3)
    text = config.read_text().replace("target: lab", "target: real")
    config.write_text(text)
    for name, value in (("TP5_DB_APP_PASSWORD", "from-the-env'x"),
                        ("TP5_DB_REPL_PASSWORD", "r"), ("TP5_DB_ADMIN_PASSWORD", "a")):
        monkeypatch.setenv(name, value)
    lab_dir = tmp_path / "lab-secrets"
    real = plans_of("web1", load_settings(config).is_lab, lab_dir, monkeypatch, config)
    assert [p.service for p in real] == ["apache2", "app"]  # no boot script
    assert "$db_pass = 'from-the-env\\'x';" in real[1].files[0].content
    assert not lab_dir.exists()  # the lab's password files were never made
    lab = plans_of("web1", True, lab_dir, monkeypatch)
    password = (lab_dir / "db_app").read_text().strip()
    assert f"$db_pass = '{password}';" in lab[1].files[0].content


def test_parse_host_state_splits_files_daemons_and_check() -> None:
    plans = [ServicePlan("nginx", [DesiredFile("/a"), DesiredFile("/b")], None, None, "nginx"),
             ServicePlan("boot", [DesiredFile("/c")], None, None, None)]
    output = ("F 644 root:root\naGVsbG8K\nA\nL /x\n@@daemons\ndown nginx\n"
              "@@check\n@@tp5 up nginx\n")
    state = parse_host_state(plans, output)
    assert [[c.state for c in files] for files in state.files] == [["file", "absent"], ["link"]]
    assert state.files[0][0].content == "hello\n" and state.files[1][0].link_target == "/x"
    assert state.running == {"nginx": False}
    assert state.check_output == "@@tp5 up nginx\n"


def test_the_tier_gate_orders_db_web_rp_and_skips_absent_tiers() -> None:
    gate = TierGate({"web": 1, "rp": 1})
    assert gate.wait("web", timeout=1) < 0.1  # no db host in this run
    seen: list[str] = []

    def proxy() -> None:
        gate.wait("rp", timeout=5)
        seen.append("rp")

    thread = threading.Thread(target=proxy)
    thread.start()
    time.sleep(0.1)
    seen.append("web")
    gate.finished("web")
    thread.join(5)
    assert seen == ["web", "rp"]


def test_what_waits_for_which_tier() -> None:
    assert prerequisites("web", "apache2") == ()
    assert prerequisites("web", "app") == ("db",)
    # A serving NGINX waits for the tiers it sends traffic to; a proxy that runs nothing yet
    # goes live at once (its VRRP election overlaps the web and db tiers' work)...
    assert prerequisites("rp", "nginx", running=True) == ("db", "web")
    assert prerequisites("rp", "nginx", running=False) == ()
    assert prerequisites("rp", "keepalived", running=True) == ()
    assert prerequisites("db", "mariadb") == ()
    # ...then the proxy is checked after them (and reloaded when its web servers came up:
    # test_when_a_proxy_starts_its_upstreams_afresh).
    assert verify_after("rp") == ("web",) and verify_after("web") == ()
    assert verify_after("db") == ()


def test_the_tier_gate_says_when_tiers_are_done_without_waiting() -> None:
    gate = TierGate({"db": 1, "web": 2})
    assert gate.done(()) and not gate.done(("db",))
    gate.finished("db")
    assert gate.done(("db",)) and not gate.done(("db", "web"))
    gate.finished("web")
    gate.finished("web")
    assert gate.done(("db", "web", "rp"))


def test_the_tier_gate_tells_which_tiers_are_in_the_run_and_whether_they_changed() -> None:
    gate = TierGate({"db": 1, "web": 2})
    assert gate.present("web") and not gate.present("rp")
    gate.finished("db", changed=False)
    assert gate.done(("db",)) and not gate.changed(("db",))
    gate.finished("web", changed=False)
    assert not gate.changed(("db", "web"))
    gate.finished("web", changed=True)
    assert gate.changed(("db", "web")) and gate.changed(("web",)) and not gate.changed(("rp",))


def test_the_tier_gate_refuses_to_go_on_out_of_order_after_its_timeout() -> None:
    gate = TierGate({"db": 1, "web": 1})
    with pytest.raises(TimeoutError, match="the db tier did not finish"):
        gate.wait_for(("db",), timeout=0.05)


def test_vip_check_without_preemption_accepts_any_single_holder() -> None:
    from tasks.deploy.checks import VipCheck

    assert VipCheck("10.5.1.110", "rp1", ["rp1"], 0.0).ok
    assert not VipCheck("10.5.1.110", "rp1", ["rp2"], 0.0).ok
    assert VipCheck("10.5.1.110", None, ["rp2"], 0.0).ok
    assert not VipCheck("10.5.1.110", None, ["rp1", "rp2"], 0.0).ok
    assert not VipCheck("10.5.1.110", None, [], 0.0).ok


def test_no_keepalived_anywhere_fails_the_vip_check_at_once_in_words() -> None:
    from tasks.deploy.checks import VipCheck

    none = VipCheck("10.5.1.110", "rp1", [], 0.1, silent=["rp1", "rp2"], proxies=2)
    assert none.hopeless and not none.ok
    assert none.describe() == ("VIP 10.5.1.110 held by no proxy: Keepalived runs on none of "
                               "rp1, rp2 (rp tier not deployed: deploy it first, or run "
                               "without --group/--host)")
    half = VipCheck("10.5.1.110", "rp1", [], 10.0, ["rp1"], silent=["rp2"], proxies=2)
    assert not half.hopeless
    assert half.describe() == ("VIP 10.5.1.110 held by no proxy after 10.0 s, expected rp1 "
                               "alone; unreachable: rp1; Keepalived not running on rp2")
    assert not VipCheck("10.5.1.110", "rp1", ["rp1"], 0.0, silent=["rp2"], proxies=2).hopeless


def test_the_database_check_line() -> None:
    seen = {"db2": {"role": "replica", "marker_delay_s": 0.0021,
                    "write_refused": "(1290) read-only"},
            "db1": {"role": "primary", "gtid_binlog_pos": "0-1-9"}}
    assert database_line(seen, {}, []) == (
        "database: db1 primary writable, binlog at 0-1-9; db2 read the marker after 2.1 ms "
        "and refused a write ((1290) read-only)")
    line = database_line({}, {"db2": "db2: a write on the replica was accepted"}, ["db1"])
    assert line == ("database: db2: db2: a write on the replica was accepted; "
                    "db1: not checked (its deploy failed)")


def test_a_round_robin_that_misses_servers_or_gets_502s_says_why() -> None:
    assert round_robin_hint(["timed out", "HTTP 503"], [], False, "10s") == ""
    assert round_robin_hint(["HTTP 502"], [], True, "10s") == (
        "; 502: the proxies found no live web server")
    assert round_robin_hint([], ["web1.tp5.b2", "web3.tp5.b2"], True, "10s") == (
        "; never answered: web1.tp5.b2, web3.tp5.b2")
    outside = round_robin_hint(["timed out", "HTTP 502"], ["web2.tp5.b2"], False, "7s")
    assert outside.startswith("; never answered: web2.tp5.b2; 502: the proxies found no live")
    assert "marked failed for 7s" in outside and "--group rp" in outside
