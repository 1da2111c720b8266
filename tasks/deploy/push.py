"""Push files to a host the way napalm's configure does: compare, then act only on a diff.

`push_files` (a Nornir task) handles the files of one service on one host in two SSH round
trips at most:
1. read what is there (content, mode, owner, or link target; or take what the caller read
   already: the per-host task reads every service at once) and compute a unified diff;
   no difference: nothing is touched, `changed=False`;
2. one remote script writes every candidate beside its target, keeps a backup, swaps them
   in, runs the daemon's checker (e.g. `nginx -t`), and only if it passes runs the reload.
   If the checker fails, every file is put back from its backup before anything reloads, so
   the running daemon never loads a rejected candidate; the host fails with the checker's
   message. Under Nornir's dry-run, step 2 is skipped and the diff is still reported.
"""

from __future__ import annotations

import base64
import difflib
import shlex
import time
from dataclasses import dataclass, field
from typing import Literal

from nornir.core.task import Result, Task

from tasks.core.remote import RemoteCommandError, run_command

VALIDATION_FAILED = 90
RELOAD_FAILED = 91
WRITE_FAILED = 92


@dataclass(frozen=True)
class DesiredFile:
    """What one path on the host must be: a file with content, a symlink, or absent."""

    path: str
    content: str = field(default="", repr=False)  # never in a printed Result (passwords)
    mode: str = "0644"
    owner: str = "root:root"
    state: Literal["file", "link", "absent"] = "file"
    link_target: str = ""
    secret: bool = False  # its diff says that it differs, never how (passwords)


@dataclass(frozen=True)
class CurrentFile:
    """What a path is now on the host."""

    path: str
    state: Literal["file", "link", "absent"]
    content: str = field(default="", repr=False)
    mode: str = ""
    owner: str = ""
    link_target: str = ""


class ValidationFailed(Exception):
    """The daemon's checker rejected the candidate; the previous files are back."""


def read_script(paths: list[str]) -> str:
    """Shell script printing, per path, a header line then base64 content for files."""
    lines = []
    for p in paths:
        q = shlex.quote(p)
        lines.append(
            f'if [ -L {q} ]; then echo "L $(readlink {q})"; '
            f'elif [ -f {q} ]; then echo "F $(stat -c "%a %U:%G" {q})"; base64 -w0 {q}; echo; '
            'else echo A; fi'
        )
    return "\n".join(lines) + "\n"


def parse_read(paths: list[str], output: str) -> list[CurrentFile]:
    """Parse read_script's output (pure; tested with captured output)."""
    lines = output.splitlines()
    result, i = [], 0
    for p in paths:
        head = lines[i]
        i += 1
        if head.startswith("L "):
            result.append(CurrentFile(p, "link", link_target=head[2:]))
        elif head.startswith("F "):
            mode, owner = head[2:].split()
            content = base64.b64decode(lines[i]).decode(errors="replace")
            i += 1
            result.append(CurrentFile(p, "file", content, mode.zfill(4), owner))
        else:
            result.append(CurrentFile(p, "absent"))
    return result


def read_files(task: Task, paths: list[str]) -> list[CurrentFile]:
    """Read what `paths` are on the host, in one round trip."""
    read = run_command(task, read_script(paths))
    if not read.ok:
        raise RemoteCommandError(task.host.name, "read files", read, read.stderr.strip())
    return parse_read(paths, read.stdout)


def describe(cur: CurrentFile | DesiredFile) -> list[str]:
    """Lines representing a path's state for diffing."""
    if cur.state == "file":
        return cur.content.splitlines(keepends=True)
    if cur.state == "link":
        return [f"symlink -> {cur.link_target}\n"]
    return []


def diff_file(current: CurrentFile, desired: DesiredFile) -> str:
    """Unified diff from what is on the host to what is wanted ('' when identical)."""
    meta = []
    if desired.state == "file" and current.state == "file":
        if (current.mode, current.owner) != (desired.mode.zfill(4), desired.owner):
            meta.append(f"# {desired.path}: mode/owner {current.mode} {current.owner} -> "
                        f"{desired.mode.zfill(4)} {desired.owner}\n")
    old_name = desired.path if current.state != "absent" else "/dev/null"
    new_name = desired.path if desired.state != "absent" else "/dev/null"
    body = list(difflib.unified_diff(describe(current), describe(desired),
                                     fromfile=old_name, tofile=new_name))
    if current.state == desired.state == "absent":
        body = []
    if body and desired.secret:
        body = [f"--- {old_name}\n", f"+++ {new_name}\n",
                "# secret content differs (not shown)\n"]
    if body and not body[-1].endswith("\n"):
        body[-1] += "\n"
    return "".join(meta + body)


def apply_script(files: list[DesiredFile], validate: str | None, reload: str | None) -> str:
    """The remote script: back up, write and swap each file, check, then reload (pure).

    Each file's state is recorded (`s<i>=bak`: backed up, `new`: did not exist) before it
    is touched, and `restore` undoes only the files touched so far: a write that fails
    half-way leaves the files after it as they were. A backup that cannot be made stops
    everything before that file is touched.
    """
    out = ["set -u", "restore() {"]
    for i, f in enumerate(files):
        q, bak = shlex.quote(f.path), shlex.quote(f.path + ".tp5-bak")
        out.append(f'  if [ "$s{i}" = bak ]; then mv -f {bak} {q}; '
                   f'elif [ "$s{i}" = new ]; then rm -f {q}; fi')
    out.append("  :")
    out.append("}")
    out.append(" ".join(f"s{i}=" for i in range(len(files))))
    fail = f"{{ restore; exit {WRITE_FAILED}; }}"
    for i, f in enumerate(files):
        q, new, bak = (shlex.quote(f.path + s) for s in ("", ".tp5-new", ".tp5-bak"))
        out.append(f"mkdir -p $(dirname {q}) || {fail}")
        out.append(f"rm -f {bak}; if [ -e {q} ] || [ -L {q} ]; then "
                   f"cp -a {q} {bak} || {fail}; s{i}=bak; else s{i}=new; fi")
        if f.state == "file":
            data = base64.b64encode(f.content.encode()).decode()
            out.append(f"echo {data} | base64 -d > {new} && chmod {f.mode} {new} && "
                       f"chown {f.owner} {new} && mv -f {new} {q} || {fail}")
        elif f.state == "link":
            out.append(f"ln -sfn {shlex.quote(f.link_target)} {new} && mv -Tf {new} {q} "
                       f"|| {fail}")
        else:
            out.append(f"rm -f {q} || {fail}")
    if validate:
        out.append(f"if ! check_out=$( ({validate}) 2>&1); then restore; "
                   f'echo "$check_out" >&2; exit {VALIDATION_FAILED}; fi')
    for f in files:
        out.append(f"rm -f {shlex.quote(f.path + '.tp5-bak')}")
    if reload:
        out.append(f"if ! reload_out=$( ({reload}) 2>&1); then "
                   f'echo "$reload_out" >&2; exit {RELOAD_FAILED}; fi')
    return "\n".join(out) + "\n"


def push_files(
    task: Task,
    files: list[DesiredFile],
    validate: str | None = None,
    reload: str | None = None,
    current: list[CurrentFile] | None = None,
) -> Result:
    """Make `files` true on the host; validate, then reload once, only if anything changed
    (and not under Nornir's dry-run).

    `current`: what the caller already read for `files` (same order), which saves the read
    round trip (e.g. one read for every service of a host).
    Result: `changed` (a difference existed), `diff` (unified diff of every file),
    `result` = {"files": changed paths, "timings": seconds per phase}. Raises
    ValidationFailed (checker output) or RemoteCommandError, which fails the host.
    """
    timings: dict[str, float] = {}
    started = time.monotonic()
    if current is None:
        current = read_files(task, [f.path for f in files])
    diffs = {d.path: diff_file(c, d) for c, d in zip(current, files, strict=True)}
    changed = [f for f in files if diffs[f.path]]
    timings["read"] = time.monotonic() - started
    diff = "".join(diffs[f.path] for f in changed)
    if not changed or task.is_dry_run():
        return Result(host=task.host, changed=bool(changed), diff=diff,
                      result={"files": [f.path for f in changed], "timings": timings})
    started = time.monotonic()
    applied = run_command(task, "sh -s", stdin=apply_script(changed, validate, reload),
                          timeout=120)
    timings["apply"] = time.monotonic() - started
    if applied.rc == VALIDATION_FAILED:
        raise ValidationFailed(f"{task.host.name}: `{validate}` rejected the new "
                               f"{', '.join(f.path for f in changed)}; previous files restored, "
                               f"nothing reloaded:\n{applied.stderr.strip()}")
    if applied.rc == WRITE_FAILED:
        raise RemoteCommandError(task.host.name, "write files", applied,
                                 "failed; the files touched were put back: "
                                 f"{applied.stderr.strip()[-2000:]}")
    if not applied.ok:
        raise RemoteCommandError(task.host.name, reload or "apply", applied,
                                 f"exited {applied.rc}: {applied.stderr.strip()[-2000:]}")
    return Result(host=task.host, changed=True, diff=diff,
                  result={"files": [f.path for f in changed], "timings": timings})
