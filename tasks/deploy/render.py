"""Render the configuration templates: the context comes from the Nornir inventory only.

``host_context`` (pure) is every input a template may use; ``environment`` is the project's
strict Jinja2 environment (StrictUndefined: a missing input fails the render);
``render_file`` is the Nornir task that renders one template for a host through
nornir-jinja2's ``template_file`` with that environment. Each template is compiled once per
process, however many hosts render it at the same time (``compiled``), and not again while
its source is unchanged (Jinja2's bytecode cache).
"""

from __future__ import annotations

import math
import threading
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    Template,
)
from nornir.core.inventory import Host, Inventory
from nornir.core.task import Result, Task
from nornir_jinja2.plugins.tasks import template_file

from tasks.core import tls
from tasks.core.inventory import app_fqdn, fqdn, tier_hosts, tier_of

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

_WEB_KEYS = ("http_port", "session_cookie", "session_store")
_RP_KEYS = (
    "vip", "vip_prefix", "vrrp_interface", "vrrp_router_id", "vrrp_state", "vrrp_priority",
    "vrrp_preempt", "vrrp_preempt_delay", "vrrp_profile", "lb_affinity", "lb_max_fails",
    "lb_fail_timeout",
)
_DB_KEYS = ("db_role", "db_server_id", "db_port")


NOT_SHOWN = "(secret: content not shown)"
# Jinja2's template cache has no lock: hosts rendering the same template at the same time
# would each compile it.
_COMPILING = threading.Lock()


def php_string(value: object) -> str:
    """A PHP single-quoted string literal (filter ``php_string``)."""
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bytecode_cache() -> BytecodeCache | None:
    """Jinja2's own cache of compiled templates (this user's private folder under the
    system's temporary directory, keyed by each template's source): a run compiles only the
    templates that changed since the last one. None when that folder cannot be used."""
    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


@cache
def environment(templates_dir: Path = TEMPLATES_DIR) -> Environment:
    """The Jinja2 environment: StrictUndefined, blocks trimmed, trailing newline kept."""
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=bytecode_cache(),
    )
    env.filters["php_string"] = php_string
    return env


def compiled(name: str) -> Template:
    """``templates/<name>`` compiled, from the environment's cache after the first time."""
    with _COMPILING:
        return environment().get_template(name)


def render_template(name: str, /, **context: Any) -> str:
    """Render ``templates/<name>``; an input missing from ``context`` raises UndefinedError."""
    return compiled(name).render(**context)


def render_file(task: Task, template: str, context: dict[str, Any],
                secret: bool = False) -> Result:
    """Nornir task: render ``templates/<template>`` for the host (nornir-jinja2's
    ``template_file``, the strict environment). ``Result.content`` is the text; ``result``
    shows it too, unless the file is secret (it holds a password)."""
    compiled(template)  # in the environment's cache before template_file asks for it
    text = template_file(task, template=template, jinja_env=environment(), **context).result
    return Result(host=task.host, result=NOT_SHOWN if secret else text, content=text)


def web_servers(inventory: Inventory) -> list[dict[str, Any]]:
    """Every web server: name, fqdn, address and HTTP port, in natural name order."""
    return [
        {"name": h.name, "fqdn": fqdn(h), "address": h.hostname, "port": h["http_port"]}
        for h in tier_hosts(inventory, "web")
    ]


def _proxy(host: Host) -> dict[str, Any]:
    return {
        "name": host.name, "fqdn": fqdn(host), "address": host.hostname,
        "state": host["vrrp_state"], "priority": host["vrrp_priority"],
    }


def _db(host: Host) -> dict[str, Any]:
    return {
        "name": host.name, "fqdn": fqdn(host), "address": host.hostname,
        "port": host["db_port"], "role": host["db_role"], "server_id": host["db_server_id"],
    }


def _session_cookie(inventory: Inventory) -> str:
    cookies = {h["session_cookie"] for h in tier_hosts(inventory, "web")}
    if len(cookies) != 1:
        raise ValueError(f"the web servers must share one session_cookie, got {sorted(cookies)}")
    return str(cookies.pop())


def _vrrp(host: Host) -> dict[str, Any]:
    profile_name = host["vrrp_profile"]
    profile = host["vrrp_profiles"][profile_name]
    advert_int = profile["advert_int"]
    return {
        "vrrp_version": profile["version"],
        "vrrp_advert_int": advert_int,
        "vrrp_instance": f"VI_{host['app_name']}",
        # vrrp_script intervals are whole seconds in keepalived.
        "check_interval": max(1, math.ceil(advert_int)),
    }


def host_context(host: Host, inventory: Inventory, tls_on: bool = False) -> dict[str, Any]:
    """Everything the templates of ``host`` may use, built from the inventory only (and
    `tls_on`: real machines, whose db nodes serve TLS).

    Always: name, fqdn, address, domain, app_name, app_fqdn, app_root, db_config, tier,
    web_servers, proxies, db_servers, db_primary. Plus the tier's own data: web (http_port,
    session_cookie, session_store), rp (VIP, VRRP settings and timers of the selected
    profile, rp_peers, upstream, lb_* and session_cookie of the web tier), db (db_role,
    db_server_id, db_port, and tls: the node's TLS file paths {ca, cert, key}, or None in
    the lab).
    """
    tier = tier_of(host)
    app_name = host["app_name"]
    domain = host["domain"]
    dbs = [_db(h) for h in tier_hosts(inventory, "db")]
    primaries = [db for db in dbs if db["role"] == "primary"]
    context: dict[str, Any] = {
        "name": host.name,
        "fqdn": fqdn(host),
        "address": host.hostname,
        "domain": domain,
        "app_name": app_name,
        "app_fqdn": app_fqdn(host),
        "app_root": f"/var/www/{app_name}",
        "db_config": f"/etc/{app_name}/db.php",
        "tier": tier,
        "web_servers": web_servers(inventory),
        "proxies": [_proxy(h) for h in tier_hosts(inventory, "rp")],
        "db_servers": dbs,
        "db_primary": primaries[0] if len(primaries) == 1 else None,
    }
    if tier == "web":
        context.update({key: host[key] for key in _WEB_KEYS})
    elif tier == "rp":
        context.update({key: host[key] for key in _RP_KEYS})
        context.update(_vrrp(host))
        context["rp_peers"] = [p for p in context["proxies"] if p["name"] != host.name]
        context["upstream"] = f"{app_name}_servers"
        context["session_cookie"] = _session_cookie(inventory)
    else:
        context.update({key: host[key] for key in _DB_KEYS})
        context["tls"] = ({"ca": tls.NODE_CA, "cert": tls.NODE_CERT, "key": tls.NODE_KEY}
                          if tls_on else None)
    return context
