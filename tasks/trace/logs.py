"""Reading the nodes' logs over SSH (commands next to their pure parsers).

- `grep_command` / `parse_grep_output`: one round trip per node that prints, per log kind, the
  lines holding any of the request ids (ids are 32 hex characters, checked before use).
- `read_request_lines`: the Nornir task around them; `collect_lines`: read every selected
  node until each id has its proxy, web and app lines, for a bounded time.
- `tail_command`, `open_tail`, `stop_tail`: a live tail of one log on its own SSH exec
  channel, from the file's size when it starts (nothing written after that is missed, even
  before tail opens the file), with its PID printed first so that it can be stopped, and a
  remote `timeout` so that it ends by itself if the controller goes away.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from nornir.core import Nornir
from nornir.core.task import Result, Task

from tasks.core.connection import CONNECTION
from tasks.core.inventory import tier_of
from tasks.core.remote import run_command
from tasks.trace.join import Seen
from tasks.trace.parse import REQUEST_ID, parse_app_line, parse_proxy_line, parse_web_line
from tasks.trace.paths import APP, PROXY, WEB, access_logs, log_files

MARK = "@@tp5 "
PARSERS: dict[str, Callable[[str], object]] = {
    PROXY: parse_proxy_line, WEB: parse_web_line, APP: parse_app_line}


def grep_command(files: dict[str, str], ids: list[str]) -> str:
    """Shell command printing, for each kind, a marker then its log's lines with any id."""
    bad = [i for i in ids if not REQUEST_ID.match(i)]
    if bad:
        raise ValueError(f"not a request id: {bad[0]!r}")
    patterns = " ".join(f"-e {i}" for i in ids)
    parts = []
    for kind, path in files.items():
        quoted = shlex.quote(path)
        parts.append(f"echo '{MARK}{kind}'; if [ -r {quoted} ]; then grep -F -h {patterns} "
                     f"{quoted}; else echo '{MARK}missing {kind}'; fi")
    return "; ".join(parts) + "; true"


def parse_grep_output(node: str, output: str) -> tuple[list[Seen], list[str]]:
    """(the parsed lines, the kinds whose log file is missing) from `grep_command` output."""
    seen: list[Seen] = []
    missing: list[str] = []
    kind = ""
    for line in output.splitlines():
        if line.startswith(MARK):
            word = line[len(MARK):].split()
            if word[0] == "missing":
                missing.append(word[1])
            else:
                kind = word[0]
            continue
        parsed = PARSERS[kind](line) if kind in PARSERS else None
        if parsed is not None:
            seen.append(Seen(node, parsed))  # type: ignore[arg-type]
    return seen, missing


def read_request_lines(task: Task, ids: list[str], app_name: str) -> Result:
    """Result.result: (lines of these ids in the host's logs, kinds whose log is missing)."""
    files = log_files(tier_of(task.host), app_name)
    out = run_command(task, grep_command(files, ids), timeout=20)
    return Result(host=task.host, result=parse_grep_output(task.host.name, out.stdout))


@dataclass
class Collected:
    """Every line read for the ids, and what went wrong on which node."""

    seen: list[Seen]
    problems: dict[str, str]
    waited: float


def collect_lines(nr: Nornir, ids: list[str], app_name: str, wait: float,
                  complete: Callable[[list[Seen]], bool], interval: float = 0.3) -> Collected:
    """Read the ids' lines on every node of `nr` until `complete(lines)`, at most `wait` s."""
    started = time.monotonic()
    while True:
        results = nr.run(task=read_request_lines, ids=ids, app_name=app_name)
        seen: list[Seen] = []
        problems: dict[str, str] = {}
        for host, multi in results.items():
            if multi.failed:
                reason = str(multi[0].exception or multi[0].result).strip().splitlines()
                problems[host] = "logs not read: " + (reason[0] if reason else "failed")
                continue
            lines, missing = multi[0].result
            seen.extend(lines)
            if missing:
                problems[host] = "no log file: " + ", ".join(missing)
        waited = time.monotonic() - started
        if complete(seen) or waited >= wait:
            return Collected(seen, problems, waited)
        time.sleep(interval)


def tail_command(path: str, max_seconds: int) -> str:
    """Print `@@tp5 pid <pid>`, then every line appended to `path` from now on (follows a
    rotated or recreated file), for at most `max_seconds`."""
    quoted = shlex.quote(path)
    return (f"size=$(stat -c %s {quoted} 2>/dev/null || echo 0); echo '{MARK}pid' $$; "
            f"exec timeout {max_seconds} tail -q -F -c +$((size + 1)) {quoted} 2>/dev/null")


def _as_root(task: Task, command: str) -> str:
    if (task.host.username or "root") == "root":
        return command
    return f"sudo -n sh -c {shlex.quote(command)}"


@dataclass
class Tail:
    """A running remote tail: its node, log kind and path, SSH channel, remote PID."""

    node: str
    kind: str
    path: str
    channel: object
    pid: int | None = None


def open_tail(task: Task, app_name: str, max_seconds: int) -> Result:
    """Result.result: a Tail per access log of the host, each on its own exec channel."""
    conn = task.host.get_connection(CONNECTION, task.nornir.config)
    transport = conn.remote_conn.get_transport()
    tails = []
    for kind, path in access_logs(tier_of(task.host), app_name).items():
        channel = transport.open_session(timeout=10)
        channel.exec_command(_as_root(task, tail_command(path, max_seconds)))
        tails.append(Tail(task.host.name, kind, path, channel))
    return Result(host=task.host, result=tails)


def stop_tail(task: Task, pids: dict[str, list[int]]) -> Result:
    """Stop this host's remote tails (by the PIDs they printed); changed when one was running."""
    mine = pids.get(task.host.name, [])
    if not mine:
        return Result(host=task.host, changed=False)
    out = run_command(task, "kill " + " ".join(str(p) for p in mine) + " 2>/dev/null", timeout=5)
    return Result(host=task.host, changed=out.ok)
