"""The database passwords: generated once for the lab, taken from the environment otherwise.

Lab (config.yaml ``user_defined.target: lab``): each password is created on first use as
``<SECRETS_DIR>/<name>`` (directory 0700, file 0600, under the lab's state directory, which
``lab.py down`` removes with the nodes' data) and read back afterwards.

Real machines (``target: real``): read from the environment, nothing is written:

- ``TP5_DB_APP_PASSWORD``: the web application's account (``app_nulle``);
- ``TP5_DB_REPL_PASSWORD``: the replication account (``repl``);
- ``TP5_DB_ADMIN_PASSWORD``: the controller's admin account (``tp5admin``).

A password is never printed: ``DbSecrets`` hides its values from ``repr``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe

from tasks.core import state
from tasks.core.settings import ProjectError

ENV_VARS: dict[str, str] = {
    "app": "TP5_DB_APP_PASSWORD",
    "replication": "TP5_DB_REPL_PASSWORD",
    "admin": "TP5_DB_ADMIN_PASSWORD",
}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class DbSecrets:
    """The three database passwords (not shown by repr)."""

    app: str = field(repr=False)
    replication: str = field(repr=False)
    admin: str = field(repr=False)


def _read_or_create(path: Path) -> str:
    """The password stored at path, created (0600, exclusive) when absent."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text().strip()
        if not value:
            raise ProjectError(f"{path} is empty: remove it to generate a new password") from None
        return value
    value = token_urlsafe(24)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def lab_secrets(secrets_dir: Path | None = None) -> DbSecrets:
    """The lab's passwords, generated on first use into secrets_dir (default
    ``tasks.core.state.SECRETS_DIR``; directory 0700, files 0600)."""
    secrets_dir = secrets_dir or state.SECRETS_DIR
    with _LOCK:
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)
        values = {name: _read_or_create(secrets_dir / f"db_{name}") for name in ENV_VARS}
    return DbSecrets(**values)


def env_secrets(environ: Mapping[str, str] | None = None) -> DbSecrets:
    """The passwords from the environment; ProjectError naming every missing variable."""
    env = os.environ if environ is None else environ
    missing = [var for var in ENV_VARS.values() if not env.get(var)]
    if missing:
        raise ProjectError(
            "target is 'real': set the database password(s) in the environment: "
            + ", ".join(missing)
        )
    return DbSecrets(**{name: env[var] for name, var in ENV_VARS.items()})


def db_secrets(target: str, environ: Mapping[str, str] | None = None) -> DbSecrets:
    """The passwords for target 'lab' (generated files) or 'real' (environment)."""
    if target == "lab":
        return lab_secrets()
    if target == "real":
        return env_secrets(environ)
    raise ProjectError(f"unknown target {target!r} (expected 'lab' or 'real')")
