"""One line for a failure, whatever raised it: SSH (netmiko, paramiko), MariaDB (pymysql), or
a step of the deploy (its own message)."""

from __future__ import annotations

from nornir.core.exceptions import NornirSubTaskError
from nornir.core.inventory import Host


def root_cause(exc: BaseException) -> BaseException:
    """The exception that failed the innermost subtask (``task.run`` wraps it)."""
    while isinstance(exc, NornirSubTaskError):
        inner = next((r.exception for r in exc.result if r.exception is not None), None)
        if inner is None:
            break
        exc = inner
    return exc


def describe_error(exc: BaseException, host: Host | None = None) -> str:
    """'(code) message' for a MariaDB error; for an SSH failure with `host`, what happened and
    which setting is involved; otherwise the exception's own message."""
    import pymysql

    exc = root_cause(exc)
    if isinstance(exc, pymysql.MySQLError) and len(exc.args) == 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    if host is not None:
        ssh = _describe_ssh_error(exc, host)
        if ssh:
            return ssh
    return str(exc).strip() or type(exc).__name__


def _describe_ssh_error(exc: BaseException, host: Host) -> str | None:
    from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException
    from paramiko.ssh_exception import BadHostKeyException, SSHException

    extras = host.get_connection_parameters("netmiko").extras or {}
    pinned = extras.get("alt_key_file", "known_hosts")
    message = str(exc)
    if isinstance(exc, BadHostKeyException) or "does not match" in message:
        return (f"refused: the SSH host key of {host.hostname} does not match the one pinned "
                f"in {pinned} (not trusted blindly)")
    if "not found in known_hosts" in message:
        return f"refused: {host.hostname} has no pinned host key in {pinned}"
    if isinstance(exc, NetmikoTimeoutException):
        return (f"unreachable: no SSH session with {host.hostname}:22 within "
                f"{extras.get('conn_timeout', '?')} s (host down, cable cut or filtered)")
    if isinstance(exc, NetmikoAuthenticationException):
        return f"SSH authentication refused by {host.hostname} (wrong key or user)"
    if isinstance(exc, SSHException):
        return f"SSH error with {host.hostname}: {message.splitlines()[0] if message else exc}"
    return None
