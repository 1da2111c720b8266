"""Which logs each tier writes (paths set by the templates), by kind of line."""

from __future__ import annotations

PROXY, WEB, APP = "proxy", "web", "app"
# Kinds of line that `runbooks/trace.py --follow` tails: the access logs.
ACCESS_KINDS = (PROXY, WEB)


def log_files(tier: str, app_name: str) -> dict[str, str]:
    """kind -> path of the logs a node of `tier` writes for the app ({} for the db tier)."""
    if tier == "rp":
        return {PROXY: f"/var/log/nginx/{app_name}_access.log"}
    if tier == "web":
        return {WEB: f"/var/log/apache2/{app_name}_access.log",
                APP: f"/var/log/apache2/{app_name}_error.log"}
    return {}


def access_logs(tier: str, app_name: str) -> dict[str, str]:
    """The access logs only (what --follow tails)."""
    return {k: v for k, v in log_files(tier, app_name).items() if k in ACCESS_KINDS}
