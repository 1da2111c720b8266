"""The app by name on this machine: a marked block in /etc/hosts (app name -> VIP).

`lab.py up` writes (or replaces) one block between a begin and an end comment line naming the
project and the config; `lab.py down` removes it. Every other byte of the file is kept. The
file is replaced atomically (temp file + rename, mode and owner kept), or rewritten in place
when it cannot be renamed over (a bind mount, as in some containers).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tasks.core.settings import EXIT_BAD_INVENTORY, ProjectError, Settings

HOSTS_FILE = Path("/etc/hosts")
PROJECT = "tp5ha"
BEGIN = f"# BEGIN {PROJECT} lab"
END = f"# END {PROJECT} lab"
# A plain DNS name (ASCII labels; "_" allowed as in app_nulle), checked again before writing.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PLAIN_PATH = re.compile(r"[\x21-\x7e]{1,512}")
# rename() over a bind-mounted file fails with one of these: rewrite it in place instead.
_NO_RENAME = (errno.EBUSY, errno.EXDEV, errno.EPERM, errno.EACCES, errno.EROFS)


@dataclass(frozen=True)
class AppEntry:
    """The app's name and the address it resolves to (the proxies' VIP)."""

    name: str
    address: str

    @property
    def line(self) -> str:
        return f"{self.address}\t{self.name}"


def checked_entry(name: object, address: object, source: str) -> AppEntry:
    """AppEntry once name is a plain DNS name and address an IPv4 address, else exit 2."""
    if not isinstance(name, str) or len(name) > 253 or not DNS_NAME.fullmatch(name):
        raise ProjectError(f"{source}: app name {name!r} is not a plain DNS name; "
                           "nothing written to /etc/hosts", EXIT_BAD_INVENTORY)
    try:
        ip = ipaddress.IPv4Address(address) if isinstance(address, str) else None
    except ValueError:
        ip = None
    if ip is None or str(ip) != address:
        raise ProjectError(f"{source}: field vip {address!r} is not an IPv4 address; "
                           "nothing written to /etc/hosts", EXIT_BAD_INVENTORY)
    return AppEntry(name, address)


def app_entry(settings: Settings) -> AppEntry | None:
    """`<app_name>.<domain>` -> VIP, read through the framework's inventory (no connection).

    None when the inventory has no proxy tier (no VIP to name)."""
    from tasks.core.inventory import app_at_vip
    from tasks.core.nornir_build import build_nornir

    app = app_at_vip(build_nornir(settings, check_lab=False).inventory)
    if app is None:
        return None
    name, address, proxy = app
    return checked_entry(name, address, f"{settings.groups_file} (host {proxy.name})")


def _shown_path(path: Path) -> str:
    text = str(path)
    return text if _PLAIN_PATH.fullmatch(text) else repr(text)


def render_block(entry: AppEntry, config: Path) -> str:
    """The marked block, newline-terminated."""
    where = f"(config {_shown_path(config)})"
    return (f"{BEGIN} {where}: written by runbooks/lab.py up, removed by lab.py down\n"
            f"{entry.line}\n{END} {where}\n")


def _is_marker(line: str, marker: str) -> bool:
    return line.rstrip("\r\n").startswith(marker)


def split_block(text: str) -> tuple[list[str], int | None]:
    """The file's lines (ends kept) without any of our blocks, and where the first one was.

    A begin line without its end line is dropped alone: the lines after it are kept."""
    kept: list[str] = []
    pending: list[str] | None = None  # lines inside an open block
    position: int | None = None
    for line in text.splitlines(keepends=True):
        if pending is None and _is_marker(line, BEGIN):
            pending = []
            position = len(kept) if position is None else position
        elif pending is not None and _is_marker(line, END):
            pending = None
        elif pending is not None:
            pending.append(line)
        else:
            kept.append(line)
    return kept + (pending or []), position


def without_block(text: str) -> str:
    return "".join(split_block(text)[0])


def with_block(text: str, block: str) -> str:
    """text with block in place of our old block, else after the last complete line."""
    lines, position = split_block(text)
    if position is None:
        complete = bool(lines) and not lines[-1].endswith("\n")
        position = len(lines) - 1 if complete else len(lines)
    return "".join(lines[:position]) + block + "".join(lines[position:])


def _rewrite_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: Path, data: bytes) -> str:
    """Replace the file's content: "renamed" (temp + rename, mode and owner kept), or
    "in place" when the file cannot be renamed over."""
    target = path.resolve()
    info = target.stat()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tp5-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), stat.S_IMODE(info.st_mode))
            os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            os.fsync(handle.fileno())
        try:
            os.replace(tmp, target)
            return "renamed"
        except OSError as exc:
            if exc.errno not in _NO_RENAME:
                raise
        _rewrite_in_place(target, data)
        return "in place"
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _update(path: Path, change: str | None) -> bool:
    """Write our block (change) or remove it (None); True when the file changed."""
    try:
        old = path.read_bytes()
        text = old.decode("utf-8", "surrogateescape")
        new = with_block(text, change) if change is not None else without_block(text)
        data = new.encode("utf-8", "surrogateescape")
        if data == old:
            return False
        write_atomic(path, data)
    except OSError as exc:
        raise ProjectError(f"{path}: cannot update the {PROJECT} lab block: {exc.strerror or exc}"
                           ) from None
    return True


def install(entry: AppEntry, config: Path, path: Path = HOSTS_FILE) -> bool:
    """Write (or replace) the block; True when the file changed."""
    entry = checked_entry(entry.name, entry.address, str(config))
    return _update(path, render_block(entry, config))


def remove(path: Path = HOSTS_FILE) -> bool:
    """Remove the block (if any); True when the file changed."""
    if not path.exists():
        return False
    return _update(path, None)


def listed(path: Path = HOSTS_FILE) -> list[str]:
    """The lines inside our blocks (for checks and tests), without line ends."""
    inside: list[str] = []
    current: list[str] | None = None
    for line in path.read_text(errors="surrogateescape").splitlines():
        if _is_marker(line, BEGIN):
            current = []
        elif current is not None and _is_marker(line, END):
            inside += current
            current = None
        elif current is not None:
            current.append(line)
    return inside
