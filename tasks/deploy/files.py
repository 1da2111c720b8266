"""What each tier gets on disk: the files to render, link or remove, in the order to apply them.

Every generated file is a template under ``templates/`` (the web tier's ``db.php`` and the
MariaDB settings included). A ``validate_cmd`` containing ``{candidate}`` checks one file
(``by_service`` puts the file's own path there); one without it checks the service's whole
configuration. Either way it runs on the new files in place, before the reload, and a failure
means: restore the previous files, do not reload (tasks/deploy/push.py).
``by_service`` groups the files per service with one check and one reload, for ``push_files``.
``DAEMONS`` names the process of each service that must run (started when it does not).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from nornir.core.inventory import Host

from tasks.core import tls
from tasks.core.inventory import tier_of

FileState = Literal["file", "link", "absent"]
DAEMONS = {"apache2": "apache2", "nginx": "nginx", "keepalived": "keepalived",
           "mariadb": "mariadbd"}

def reload_or_start(service: str, daemon: str) -> str:
    """Reload ``service`` when its daemon runs, start it otherwise (fresh nodes)."""
    return (f"if pidof {daemon} >/dev/null; then service {service} reload; "
            f"else service {service} start; fi")


def nginx_reload(timeout: float = 10.0, interval: float = 0.05) -> str:
    """Reload NGINX and return once its new workers serve: every worker that is not
    shutting down is a new one (old ones close their listening sockets when told to quit
    and then read "worker process is shutting down"). Polled, at most `timeout` seconds."""
    polls = max(1, int(timeout / interval))
    return ("workers() { ps -o pid=,args= --ppid \"$(cat /run/nginx.pid)\" | "
            "awk '/worker process$/ {print $1}'; }; "
            "old=$(workers); service nginx reload >/dev/null || exit 1; i=0; "
            f"while [ $i -lt {polls} ]; do now=$(workers); fresh=${{now:+yes}}; "
            "for p in $now; do if printf '%s\\n' $old | grep -qx \"$p\"; then fresh=; fi; "
            f"done; [ -n \"$fresh\" ] && exit 0; i=$((i+1)); sleep {interval}; done; "
            f"echo \"nginx: the previous workers still serve {timeout:.0f} s after the reload\" "
            ">&2; exit 1")


APACHE_CHECK = "apache2ctl configtest"
APACHE_RELOAD = reload_or_start("apache2", "apache2")
NGINX_CHECK = "nginx -t"
NGINX_FRESH_START = nginx_reload()
NGINX_RELOAD = (f"if pidof nginx >/dev/null; then {NGINX_FRESH_START}; "
                "else service nginx start; fi")
KEEPALIVED_CHECK = "keepalived --config-test -f {candidate}"
KEEPALIVED_RELOAD = reload_or_start("keepalived", "keepalived")
PHP_CHECK = "php -l {candidate}"
MARIADB_SETTINGS = "/etc/mysql/mariadb.conf.d/60-tp5.cnf"
MARIADB_RESTART = "service mariadb restart"


@dataclass(frozen=True)
class FileSpec:
    """One file on a host.

    ``state``: "file" (render ``template`` to ``path``), "link" (``path`` is a symlink to
    ``target``) or "absent" (``path`` must not exist). ``service`` is the daemon the file
    belongs to (to start it when it is not running); ``reload_cmd`` applies a change.
    """

    path: str
    template: str | None
    mode: str = "0644"
    owner: str = "root:root"
    service: str | None = None
    validate_cmd: str | None = None
    reload_cmd: str | None = None
    state: FileState = "file"
    target: str | None = None
    secret: bool = False  # holds a password or key: its diff never shows the content
    # Generated values the template needs besides the inventory (tasks.deploy.plan):
    # "db_pass" (the app's password), "tls_ca", "tls_cert", "tls_key" (the node's TLS PEMs).
    inputs: tuple[str, ...] = ()

    @property
    def checks_candidate(self) -> bool:
        """True when ``validate_cmd`` checks the staged candidate (before the swap)."""
        return self.validate_cmd is not None and "{candidate}" in self.validate_cmd

    def validate_command(self, candidate: str) -> str | None:
        """The checker command for a candidate staged at ``candidate``."""
        if self.validate_cmd is None:
            return None
        return self.validate_cmd.replace("{candidate}", candidate)


@dataclass(frozen=True)
class ServiceFiles:
    """The files of one service, pushed together: one check, then one reload."""

    service: str
    files: tuple[FileSpec, ...]
    validate_cmd: str | None
    reload_cmd: str | None


def by_service(specs: list[FileSpec]) -> list[ServiceFiles]:
    """Group ``specs`` per service (first-seen order); checks run on the files in place."""
    order: dict[str, list[FileSpec]] = {}
    for spec in specs:
        order.setdefault(spec.service or "", []).append(spec)
    groups = []
    for service, files in order.items():
        checks = _unique(f.validate_command(f.path) for f in files)
        reloads = _unique(f.reload_cmd for f in files)
        groups.append(ServiceFiles(
            service=service, files=tuple(files),
            validate_cmd=" && ".join(f"({c})" if len(checks) > 1 else c for c in checks) or None,
            reload_cmd=" && ".join(reloads) or None,
        ))
    return groups


def _unique(items: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _apache(path: str, template: str | None = None, state: FileState = "file",
            target: str | None = None) -> FileSpec:
    return FileSpec(path=path, template=template, service="apache2", validate_cmd=APACHE_CHECK,
                    reload_cmd=APACHE_RELOAD, state=state, target=target)


def web_files(app_name: str) -> list[FileSpec]:
    """Apache + PHP serving ``app_name`` on the node's address, default site disabled."""
    site = f"{app_name}.conf"
    return [
        _apache("/etc/apache2/ports.conf", "apache/ports.conf.j2"),
        _apache(f"/etc/apache2/sites-available/{site}", "apache/site.conf.j2"),
        FileSpec(path=f"/var/www/{app_name}/index.php", template="php/index.php.j2",
                 service="apache2", validate_cmd=PHP_CHECK),
        _apache(f"/etc/apache2/sites-enabled/{site}", state="link",
                target=f"../sites-available/{site}"),
        _apache("/etc/apache2/sites-enabled/000-default.conf", state="absent"),
        # The page's database settings: live only once the db tier is deployed ("app").
        FileSpec(path=f"/etc/{app_name}/db.php", template="php/db.php.j2", mode="0640",
                 owner="root:www-data", service="app", validate_cmd=PHP_CHECK, secret=True,
                 inputs=("db_pass",)),
    ]


def rp_files(app_name: str) -> list[FileSpec]:
    """NGINX load balancer (default site removed) and Keepalived holding the VIP."""
    return [
        FileSpec(path=f"/etc/nginx/conf.d/{app_name}.conf", template="nginx/site.conf.j2",
                 service="nginx", validate_cmd=NGINX_CHECK, reload_cmd=NGINX_RELOAD),
        FileSpec(path="/etc/nginx/sites-enabled/default", template=None, service="nginx",
                 validate_cmd=NGINX_CHECK, reload_cmd=NGINX_RELOAD, state="absent"),
        FileSpec(path="/etc/keepalived/keepalived.conf", template="keepalived/keepalived.conf.j2",
                 service="keepalived", validate_cmd=KEEPALIVED_CHECK,
                 reload_cmd=KEEPALIVED_RELOAD),
    ]


def expected_variables(host: Host, tls_on: bool = False) -> dict[str, str]:
    """Values `mariadbd --help --verbose` must show once the settings are read (`tls_on`:
    real machines, the TLS files)."""
    tls_files = {"ssl-ca": tls.NODE_CA, "ssl-cert": tls.NODE_CERT, "ssl-key": tls.NODE_KEY}
    return {
        "server-id": str(host["db_server_id"]),
        "bind-address": str(host.hostname),
        "port": str(host["db_port"]),
        "read-only": "TRUE",  # every node boots read-only (templates/mariadb)
        "init-rpl-role": "SLAVE",
        "log-bin": "tp5-bin",
        "gtid-strict-mode": "TRUE",
        "log-slave-updates": "TRUE",
        "skip-name-resolve": "TRUE",
        **(tls_files if tls_on else {}),
    }


def mariadb_check(expected: dict[str, str]) -> str:
    """Shell check: mariadbd parses the option files cleanly and reads the expected values
    (mariadbd only warns about a bad boolean: ``read_only = maybe`` would become OFF)."""
    wants = " ".join(shlex.quote(f"{k}={v}") for k, v in expected.items())
    return (
        "vars=$(mktemp) && err=$(mariadbd --help --verbose 2>&1 >\"$vars\"); rc=$?; "
        "bad=$(printf '%s\\n' \"$err\" | grep -E \"\\[ERROR\\]|wasn't recognized|"
        "Unknown suffix\"); "
        "if [ $rc -ne 0 ] || [ -n \"$bad\" ]; then rm -f \"$vars\"; "
        "echo \"mariadbd rejects the settings: ${bad:-exit $rc}\"; exit 1; fi; "
        f"for want in {wants}; do k=${{want%%=*}}; v=${{want#*=}}; "
        "got=$(awk -v k=\"$k\" '$1 == k {print $2}' \"$vars\"); "
        "if [ \"$got\" != \"$v\" ]; then rm -f \"$vars\"; "
        "echo \"mariadbd would run with $k = ${got:-?}, the settings want $v\"; exit 1; fi; "
        "done; rm -f \"$vars\""
    )


def tls_check() -> str:
    """Shell check of a node's TLS files: present, and the key readable by mariadbd (which
    otherwise starts without TLS, logging only a warning)."""
    files = " ".join(shlex.quote(p) for p in (tls.NODE_CA, tls.NODE_CERT, tls.NODE_KEY))
    key = shlex.quote(tls.NODE_KEY)
    return (f"for f in {files}; do [ -s \"$f\" ] || {{ echo \"$f is missing or empty\"; "
            "exit 1; }; done; "
            f"runuser -u mysql -- test -r {key} || {{ echo \"mysql cannot read {key}\"; "
            "exit 1; }")


def tls_files() -> list[FileSpec]:
    """A db node's TLS files (real machines): the CA, its certificate and its key (root's,
    readable by the mysql group only); generated on the controller (tasks.core.tls)."""
    common = {"service": "mariadb", "validate_cmd": tls_check(), "reload_cmd": MARIADB_RESTART}
    return [
        FileSpec(path=tls.NODE_CA, template="mariadb/tls/ca.pem.j2", inputs=("tls_ca",),
                 **common),
        FileSpec(path=tls.NODE_CERT, template="mariadb/tls/server.pem.j2",
                 inputs=("tls_cert",), **common),
        FileSpec(path=tls.NODE_KEY, template="mariadb/tls/server.key.j2", mode="0640",
                 owner="root:mysql", secret=True, inputs=("tls_key",), **common),
    ]


def db_files(host: Host, tls_on: bool = False) -> list[FileSpec]:
    """The MariaDB server settings, checked by mariadbd itself; a change restarts it.
    `tls_on` (real machines): the node's TLS files first, which the settings name."""
    settings = FileSpec(path=MARIADB_SETTINGS, template="mariadb/60-tp5.cnf.j2",
                        service="mariadb",
                        validate_cmd=mariadb_check(expected_variables(host, tls_on)),
                        reload_cmd=MARIADB_RESTART)
    return [*(tls_files() if tls_on else []), settings]


def host_files(host: Host, tls_on: bool = False) -> list[FileSpec]:
    """The files of ``host``'s tier, in the order to apply them (`tls_on`: real machines,
    the db nodes' TLS files)."""
    tier = tier_of(host)
    app_name = str(host["app_name"])
    if tier == "web":
        return web_files(app_name)
    if tier == "rp":
        return rp_files(app_name)
    return db_files(host, tls_on)
