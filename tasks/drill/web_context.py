"""What a web drill works with, read once from the settings, the inventory and the proxies.

`build_web_context` checks the request (target) against the inventory before anything
connects, builds Nornir once, then reads the proxy's deployed site file: its timeouts bound
the extra latency of a fault and give the default probe timeout, its access log shows what
NGINX did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from nornir.core import Nornir

from tasks.core.guard import ensure_lab_targets
from tasks.core.inventory import expected_master, fqdn, natural_key, tier_hosts, vip
from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import ProjectError, Settings
from tasks.deploy.files import rp_files
from tasks.drill.context import DrillOptions, LabControl
from tasks.drill.nginx_site import NginxTimeouts, SiteError, access_log_path, parse_site
from tasks.drill.proxies import DrillError, sh

SITE_TEMPLATE = "nginx/site.conf.j2"


@dataclass(frozen=True)
class WebDrillContext:
    """Everything a web experiment needs; nothing in it changes during a drill."""

    proxies: Nornir  # the rp group: VIP holders, site file, access logs
    webs: Nornir  # the web group: the faults over SSH
    lab: LabControl | None
    vip: str
    interface: str  # the proxies' VRRP interface
    bridge: str | None
    master: str | None  # the proxy that must hold the VIP (None: any single one)
    web_fqdns: tuple[str, ...]
    names: Mapping[str, str]
    target: str
    target_fqdn: str  # as it answers (X-Served-By)
    target_server: str  # as NGINX logs it: "10.5.1.11:80"
    access_log: str
    nginx: NginxTimeouts
    session_store: str  # the web servers' session_store: "db" (shared) or "files"
    options: DrillOptions  # probe_timeout resolved (default: nginx.probe_timeout_s)
    progress: Callable[[str], None]


def build_web_context(settings: Settings, options: DrillOptions, *, target: str | None = None,
                      probe_timeout: float | None = None, lab: LabControl | None = None,
                      progress: Callable[[str], None] = lambda _m: None) -> WebDrillContext:
    """Check the request, build Nornir once, read the proxies' site; refusals (exit 2: bad
    target; exit 3: lab not reachable) come before any connection."""
    nr = build_nornir(settings, check_lab=False)
    webs, proxies = select_hosts(nr, ["web"]), select_hosts(nr, ["rp"])
    chosen = _check_target(webs, target)
    address = vip(nr.inventory)
    if address is None:
        raise ProjectError(f"{settings.groups_file}: no VIP: the inventory has no proxy tier", 2)
    if settings.is_lab:
        ensure_reachable(nr, settings)
        ensure_lab_targets(settings, [address])
    host = webs.inventory.hosts[chosen]
    server = f"{host.hostname}:{host['http_port']}"
    site = next(f.path for f in rp_files(str(host["app_name"])) if f.template == SITE_TEMPLATE)
    timeouts, log = read_site(proxies, site, server)
    first_proxy = tier_hosts(nr.inventory, "rp")[0]
    return WebDrillContext(
        proxies=proxies, webs=webs, lab=lab, vip=address,
        interface=str(first_proxy["vrrp_interface"]),
        bridge=settings.lab_bridge if settings.is_lab else None,
        master=expected_master(nr.inventory),
        web_fqdns=tuple(sorted(fqdn(h) for h in tier_hosts(nr.inventory, "web"))),
        names={h.hostname: h.name for h in nr.inventory.hosts.values()},
        target=chosen, target_fqdn=fqdn(host), target_server=server, access_log=log,
        nginx=timeouts, session_store=str(host["session_store"]),
        options=replace(options, probe_timeout=probe_timeout or timeouts.probe_timeout_s),
        progress=progress,
    )


def _check_target(webs: Nornir, target: str | None) -> str:
    hosts = sorted(webs.inventory.hosts, key=natural_key)
    if len(hosts) < 2:
        raise ProjectError(f"group web has {len(hosts)} host(s); a web drill needs two (one "
                           "to fault, one to answer)", 2)
    if target is not None and target not in hosts:
        raise ProjectError(f"--target {target}: not a host of group web "
                           f"(its hosts: {', '.join(hosts)})", 2)
    return target or hosts[0]


def read_site(proxies: Nornir, site: str, server: str) -> tuple[NginxTimeouts, str]:
    """The timeouts for `server` and the access log, from the first proxy whose deployed
    site file reads and parses; ProjectError naming each proxy's problem otherwise."""
    errors = []
    for name in sorted(proxies.inventory.hosts, key=natural_key):
        try:
            text = sh(proxies, name, f"cat {site}")
            return parse_site(text, server), access_log_path(text)
        except (DrillError, SiteError) as exc:
            errors.append(f"{name}: {site}: {exc}")
    raise ProjectError("cannot read the NGINX site of the proxies (deploy the rp tier "
                       "first): " + "; ".join(errors))
