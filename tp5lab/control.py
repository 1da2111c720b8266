"""The local lab: one isolated node per inventory host, on the bridge tp5br0.

A node is a network namespace (`ip netns`, veth on the bridge) in which `unshare` makes its
own mount, UTS and PID namespaces: copy-on-write /etc and /var (overlayfs over the host's),
fresh /run and /tmp, its own /root, its own hostname, and `tini` as PID 1 running sshd.
It cannot see the controller's state folder (masked) nor write the host's /usr (read-only).
Killing PID 1 kills every process of the node, which is how a crash is made.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.guard import check_addresses
from tasks.core.inventory import natural_key
from tasks.core.settings import ProjectError, Settings
from tp5lab import etc_hosts, paths
from tp5lab.etc_hosts import AppEntry
from tp5lab.topology import Node, lab_mac, load_nodes

REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "tini", "sshd", "ssh-keygen", "mount")
SETUP_HINT = "run `make setup` as root (installs the Debian packages and the virtualenv)"
SSH_READY_TIMEOUT = 30.0

# Runs as PID 1 of a fresh PID namespace, then becomes tini, which runs sshd.
# The node's sshd files are copied to its own /run before the controller's state folder
# (its private key, the database passwords, every node's files) is masked by an empty tmpfs;
# the host's system folders are bind-remounted read-only.
NODE_INIT = r"""
set -e
fqdn="$1"; dir="$2"; sshd_config="$3"; state="$4"; own="$5"; boot_lock="$6"
hostname "$fqdn"
for d in etc var; do
  mkdir -p "$dir/$d/upper" "$dir/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$dir/$d/upper,workdir=$dir/$d/work" "/$d"
done
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
# root's own home, as on a VM: the machine's /root (its shell start-up files) stays out.
mkdir -p "$dir/root" && chmod 700 "$dir/root" && mount --bind "$dir/root" /root
mkdir -p /run/lock /run/sshd /run/mysqld
chmod 1777 /run/lock
chown mysql:mysql /run/mysqld 2>/dev/null || true
echo "$fqdn" > /etc/hostname
cp "$dir/hosts" /etc/hosts
mkdir -m 0700 "$own"
cp "$sshd_config" "$state/authorized_keys" "$dir/ssh_host_ed25519_key" "$own/"
mount -t tmpfs -o mode=0700,size=64k,nosuid,nodev,noexec tmpfs "$state"
for d in /usr /bin /sbin /lib /lib32 /lib64 /libx32 /opt /boot; do
  if [ -d "$d" ] && [ ! -L "$d" ]; then mount --bind "$d" "$d" && mount -o remount,bind,ro "$d"; fi
done
# The boot script runs holding BOOT_LOCK (taken here, before sshd exists): whoever waits for
# it (wait_booted) starts or restarts a service only once boot's own starts are done.
exec 9>"$boot_lock"
flock 9
# (`; exit 0`: boot must not be the subshell's last command, which sh would exec in place,
# closing the lock's last descriptor at once.)
if [ -x /etc/tp5lab/boot ]; then (/etc/tp5lab/boot >/var/log/tp5lab-boot.log 2>&1 9>&-; exit 0) & fi
exec 9>&-
exec tini -s -- /usr/sbin/sshd -D -e -f "$own/sshd_config" -h "$own/ssh_host_ed25519_key"
"""

# Inside a node: where its sshd finds its config, authorized key and host key (its own /run).
NODE_SSHD_DIR = "/run/tp5lab-node"
# Inside a node: held while its boot script starts its services.
BOOT_LOCK = "/run/lock/tp5lab-boot"
BOOT_TIMEOUT = 120.0

SSHD_CONFIG = """\
# Written by the tp5 lab. Used by every lab node's sshd (one per node namespace).
Port 22
ListenAddress 0.0.0.0
PermitRootLogin prohibit-password
AuthorizedKeysFile {authorized_keys}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
MaxStartups 200
MaxSessions 50
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
"""


class LabError(ProjectError):
    """The lab cannot do what was asked; the message says what to run."""


@dataclass
class NodeState:
    """What the kernel says about one node, without connecting to it."""

    node: Node
    netns: bool
    link_up: bool
    pid1: int | None


@dataclass
class UpReport:
    """What `up` did: nodes created, started, repaired, removed (no longer in the
    inventory), the app name written to the hosts file (if any), and how long it took."""

    created: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    app: AppEntry | None = None
    seconds: float = 0.0


def _run(argv: list[str], check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def require_root_and_tools() -> None:
    """Raise LabError with what to run when the machine cannot host the lab."""
    if os.geteuid() != 0:
        raise LabError(
            "the local lab needs root (network namespaces, bridge, mounts): run it as root, "
            "e.g. `sudo .venv/bin/python runbooks/lab.py up`"
        )
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        raise LabError(f"missing on this machine: {', '.join(missing)}; {SETUP_HINT}")


def namespaces_supported() -> tuple[bool, str]:
    """Whether this machine can make network namespaces (for tests to skip honestly)."""
    if os.geteuid() != 0:
        return False, "needs root"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return False, f"missing tools: {', '.join(missing)} ({SETUP_HINT})"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return False, "this kernel or sandbox refuses network namespaces"
    return True, ""


def _ns_pid1(netns: str) -> int | None:
    """PID (in the root namespace) of the node's PID 1, found among the netns's processes."""
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) == 2 and ids[1] == "1":
                    return int(pid)
    return None


def wait_ssh(address: str, deadline: float) -> bool:
    """True once address:22 answers with an SSH banner (bounded by deadline)."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, 22), timeout=1) as sock:
                sock.settimeout(1)
                if sock.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def wait_booted(node: Node) -> None:
    """Return once the node's boot script has started its services (as a VM's boot ends):
    a start or restart sent before would race with boot's own (two mariadbd, the late one
    taking over with the settings of before)."""
    pid = _ns_pid1(node.netns)
    if pid is None:
        raise LabError(f"node {node.name} is not running")
    argv = ["nsenter", "-t", str(pid), "-m", "--", "flock", "-w", f"{BOOT_TIMEOUT:.0f}",
            BOOT_LOCK, "true"]
    if subprocess.run(argv, capture_output=True, check=False).returncode != 0:
        raise LabError(f"node {node.name}: its boot script did not end within "
                       f"{BOOT_TIMEOUT:.0f} s (see /var/log/tp5lab-boot.log inside it)")


class Lab:
    """The local lab built from one inventory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bridge = settings.lab_bridge
        self.nodes = {n.name: n for n in load_nodes(settings)}
        bridge_if = ipaddress.ip_interface(settings.lab_bridge_address)
        outside = [f"{n.name} ({n.address})" for n in self.nodes.values()
                   if ipaddress.ip_address(n.address) not in bridge_if.network
                   or ipaddress.ip_address(n.address) == bridge_if.ip]
        if outside:
            raise LabError(f"{settings.hosts_file}: field hostname: not a free address of the "
                           f"lab network {bridge_if.network} (bridge {bridge_if.ip}): "
                           f"{', '.join(outside)}", 2)
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # nodes started here

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise LabError(
                f"{self.settings.hosts_file}: no host {name!r} (hosts: {', '.join(self.nodes)})",
                2,
            ) from None

    # --- observation -------------------------------------------------------------------
    def _links(self) -> dict[str, dict]:
        return {link["ifname"]: link for link in json.loads(_run(["ip", "-j", "link"]) or "[]")}

    def _netns_names(self) -> set[str]:
        out = _run(["ip", "-j", "netns", "list"], check=False) or "[]"
        return {entry["name"] for entry in json.loads(out)}

    def states(self) -> list[NodeState]:
        links, netns = self._links(), self._netns_names()
        result = []
        for node in self.nodes.values():
            link = links.get(node.veth)
            up = bool(link) and "UP" in link.get("flags", [])
            pid1 = _ns_pid1(node.netns) if node.netns in netns else None
            result.append(NodeState(node, node.netns in netns, up, pid1))
        return result

    def pid1(self, name: str) -> int | None:
        return _ns_pid1(self.node(name).netns)

    def is_up(self) -> bool:
        return self.bridge in self._links()

    # --- up ----------------------------------------------------------------------------
    def _ensure_state_dir(self) -> None:
        paths.STATE_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(paths.STATE_DIR, 0o700)
        paths.NODES_DIR.mkdir(exist_ok=True)
        if not paths.KEY_FILE.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tp5-lab-controller",
                  "-f", str(paths.KEY_FILE)])
        controller = self.settings.lab_bridge_address.split("/")[0]
        pub = paths.KEY_FILE.with_suffix(".pub").read_text().strip()
        paths.AUTHORIZED_KEYS.write_text(f'from="{controller}" {pub}\n')
        os.chmod(paths.AUTHORIZED_KEYS, 0o600)
        paths.SSHD_CONFIG.write_text(
            SSHD_CONFIG.format(authorized_keys=f"{NODE_SSHD_DIR}/authorized_keys"))

    def _ensure_bridge(self, links: dict[str, dict]) -> bool:
        changed = False
        # A fixed MAC: by default a bridge takes its lowest port's, which changes as nodes
        # come and go and leaves the nodes' entry for the controller pointing nowhere.
        mac = lab_mac(self.settings.lab_bridge_address.split("/")[0])
        if self.bridge not in links:
            _run(["ip", "link", "add", self.bridge, "address", mac, "type", "bridge"])
            changed = True
        elif links[self.bridge].get("address") != mac:
            _run(["ip", "link", "set", self.bridge, "address", mac])
        addrs = json.loads(_run(["ip", "-j", "addr", "show", "dev", self.bridge]))
        have = {f"{a['local']}/{a['prefixlen']}" for a in addrs[0].get("addr_info", [])}
        if self.settings.lab_bridge_address not in have:
            _run(["ip", "addr", "add", self.settings.lab_bridge_address, "dev", self.bridge])
            changed = True
        if changed or "UP" not in links.get(self.bridge, {}).get("flags", []):
            _run(["ip", "link", "set", self.bridge, "up"])
        return changed

    def _write_hosts_file(self, node: Node, app: AppEntry | None = None) -> None:
        lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{node.fqdn} {node.name}"]
        lines += [f"{n.address}\t{n.fqdn} {n.name}" for n in self.nodes.values()]
        lines += [app.line] if app is not None else []
        (paths.node_dir(node.name) / "hosts").write_text("\n".join(lines) + "\n")

    def _ensure_host_key(self, node: Node) -> None:
        key = paths.node_dir(node.name) / "ssh_host_ed25519_key"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.fqdn, "-f", str(key)])

    def _write_known_hosts(self) -> None:
        lines = []
        for node in self.nodes.values():
            pub = (paths.node_dir(node.name) / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{node.address} {pub[0]} {pub[1]}")
        paths.KNOWN_HOSTS.write_text("\n".join(lines) + "\n")
        os.chmod(paths.KNOWN_HOSTS, 0o600)

    def _ensure_network(self, node: Node, links: dict[str, dict], netns: set[str]) -> bool:
        """Create or repair the node's namespace and cable; True if anything changed."""
        changed = False
        if node.netns not in netns:
            _run(["ip", "netns", "add", node.netns])
            changed = True
        if node.veth not in links:
            _run(["ip", "link", "add", node.veth, "type", "veth",
                  "peer", "name", node.veth_peer, "address", node.mac])
            _run(["ip", "link", "set", node.veth_peer, "netns", node.netns])
            _run(["ip", "-n", node.netns, "link", "set", node.veth_peer, "name", "eth0"])
            changed = True
        link = links.get(node.veth, {})
        if changed or link.get("master") != self.bridge or "UP" not in link.get("flags", []):
            _run(["ip", "link", "set", node.veth, "master", self.bridge, "up"])
            changed = True
        inside = json.loads(_run(["ip", "-n", node.netns, "-j", "addr", "show"]))
        by_name = {i["ifname"]: i for i in inside}
        eth0 = by_name.get("eth0")
        if eth0 is None:
            raise LabError(f"node {node.name}: no eth0 in namespace {node.netns}; run lab down")
        if eth0.get("address") != node.mac:
            _run(["ip", "-n", node.netns, "link", "set", "eth0", "address", node.mac])
            changed = True
        cidr = f"{node.address}/{node.prefix}"
        if cidr not in {f"{a['local']}/{a['prefixlen']}" for a in eth0.get("addr_info", [])}:
            _run(["ip", "-n", node.netns, "addr", "add", cidr, "dev", "eth0"])
            changed = True
        for ifname in ("lo", "eth0"):
            if "UP" not in by_name.get(ifname, {}).get("flags", []):
                _run(["ip", "-n", node.netns, "link", "set", ifname, "up"])
                changed = True
        return changed

    def _reset_addresses(self, node: Node) -> None:
        """Only the node's own address on eth0, as after a reboot (no VIP left by a crash)."""
        _run(["ip", "-n", node.netns, "addr", "flush", "dev", "eth0"])
        _run(["ip", "-n", node.netns, "addr", "add", f"{node.address}/{node.prefix}",
              "dev", "eth0"])

    def _start(self, node: Node) -> None:
        directory = paths.node_dir(node.name)
        log = open(directory / "console.log", "ab")  # noqa: SIM115 - handed to the child
        self._children[node.name] = subprocess.Popen(
            ["ip", "netns", "exec", node.netns, "unshare", "--mount", "--uts", "--pid",
             "--fork", "--mount-proc", "--propagation", "private",
             "/bin/sh", "-c", NODE_INIT, "node-init", node.fqdn, str(directory),
             str(paths.SSHD_CONFIG), str(paths.STATE_DIR), NODE_SSHD_DIR, BOOT_LOCK],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
        log.close()

    def _prepare_node_files(self, app: AppEntry | None) -> None:
        for node in self.nodes.values():
            paths.node_dir(node.name).mkdir(exist_ok=True)
            self._ensure_host_key(node)
            self._write_hosts_file(node, app)
        self._write_known_hosts()

    def _start_missing(self, report: UpReport) -> list[Node]:
        """Create or repair every node's network, start the stopped nodes; those to wait for."""
        links, netns = self._links(), self._netns_names()
        to_wait = []
        for node in self.nodes.values():
            existed = node.netns in netns and node.veth in links
            if self._ensure_network(node, links, netns):
                (report.repaired if existed else report.created).append(node.name)
            if _ns_pid1(node.netns) is None:
                self._reset_addresses(node)
                self._start(node)
                report.started.append(node.name)
                to_wait.append(node)
        return to_wait

    @staticmethod
    def _wait_ready(to_wait: list[Node]) -> None:
        deadline = time.monotonic() + SSH_READY_TIMEOUT
        with ThreadPoolExecutor(max_workers=32) as pool:
            ready = list(pool.map(lambda n: wait_ssh(n.address, deadline), to_wait))
        late = [n.name for n, ok in zip(to_wait, ready, strict=True) if not ok]
        if late:
            logs = ", ".join(str(paths.node_dir(n) / "console.log") for n in late)
            raise LabError(f"sshd did not answer within {SSH_READY_TIMEOUT:.0f} s on: "
                           f"{', '.join(late)} (see {logs})")
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(wait_booted, to_wait))

    def up(self, progress: Callable[[str], None] = lambda _m: None,
           hosts_file: Path | None = etc_hosts.HOSTS_FILE) -> UpReport:
        """Create what is missing, repair what is broken, start what is stopped, remove the
        nodes that are not in this inventory; name the app (`<app_name>.<domain>` -> VIP) in
        hosts_file (None: leave the machine's hosts file alone)."""
        require_root_and_tools()
        started_at = time.monotonic()
        report = UpReport()
        app = etc_hosts.app_entry(self.settings)
        self._ensure_state_dir()
        if self._ensure_bridge(self._links()):
            progress(f"bridge {self.bridge} {self.settings.lab_bridge_address}")
        report.removed = self.remove_strays()
        if report.removed:
            progress(f"removed {' '.join(report.removed)} (not in {self.settings.hosts_file})")
        self._prepare_node_files(app)
        addresses = [n.address for n in self.nodes.values()] + ([app.address] if app else [])
        refused = check_addresses(self.bridge, addresses)
        if refused:
            raise LabError("refusing to start the nodes: " + "; ".join(refused), 3)
        to_wait = self._start_missing(report)
        if to_wait:
            progress(f"starting {len(to_wait)} node(s): waiting for their sshd")
        self._wait_ready(to_wait)
        if hosts_file is not None:
            report.app = self._name_app(app, hosts_file)
        report.seconds = time.monotonic() - started_at
        return report

    def _name_app(self, app: AppEntry | None, hosts_file: Path) -> AppEntry | None:
        """Write the app's block in hosts_file (remove an old one without a proxy tier)."""
        if app is None:
            etc_hosts.remove(hosts_file)
        else:
            etc_hosts.install(app, self.settings.config_file, hosts_file)
        return app

    # --- nodes that left the inventory --------------------------------------------------
    def stray_nodes(self) -> list[str]:
        """Lab nodes (namespace tp5-NAME or a node folder) that are not in this inventory."""
        names = {ns.removeprefix("tp5-") for ns in self._netns_names() if ns.startswith("tp5-")}
        if paths.NODES_DIR.is_dir():
            names |= {d.name for d in paths.NODES_DIR.iterdir() if d.is_dir()}
        return sorted(names - set(self.nodes), key=natural_key)

    def _remove_stray_links(self) -> None:
        """Delete the lab cables (tp5v-*, tp5p-*) that belong to no node of this inventory."""
        ours = {n.veth for n in self.nodes.values()} | {n.veth_peer for n in self.nodes.values()}
        for ifname in self._links():
            if ifname.startswith(("tp5v-", "tp5p-")) and ifname not in ours:
                _run(["ip", "link", "del", ifname], check=False)

    def remove_strays(self) -> list[str]:
        """Remove the nodes that left the inventory: processes, namespace, cable, folder."""
        names = self.stray_nodes()
        present = self._netns_names()
        netns = [f"tp5-{n}" for n in names if f"tp5-{n}" in present]
        self._kill_namespaces(netns)
        for name in names:
            child = self._children.pop(name, None)
            if child is not None:
                child.wait(timeout=10)
        self._remove_stray_links()
        for ns in netns:
            _run(["ip", "netns", "del", ns])
        for name in names:
            shutil.rmtree(paths.node_dir(name), ignore_errors=True)
        return names

    # --- faults --------------------------------------------------------------------------
    def crash(self, name: str) -> None:
        """Take the node's cable down, then kill its PID 1 (every process dies), as a dead box:
        the cable first, so that no FIN or RST of the dying processes reaches a peer (a box
        that loses power sends nothing; its peers notice only by timeouts)."""
        node = self.node(name)
        pid = _ns_pid1(node.netns)
        if pid is None:
            raise LabError(f"node {name} is not running")
        _run(["ip", "link", "set", node.veth, "down"])
        os.kill(pid, signal.SIGKILL)
        self._wait_gone(node)

    def _wait_gone(self, node: Node, timeout: float = 5.0) -> None:
        """Wait until no process is left in the node's namespace (its launcher reaped)."""
        deadline = time.monotonic() + timeout
        child = self._children.pop(node.name, None)
        if child is not None:
            child.wait(timeout=timeout)
        while _run(["ip", "netns", "pids", node.netns], check=False).split():
            if time.monotonic() > deadline:
                raise LabError(f"node {node.name}: processes still alive after the crash")
            time.sleep(0.01)

    def cut_link(self, name: str) -> None:
        """Pull the node's cable: its veth goes down, the node keeps running."""
        _run(["ip", "link", "set", self.node(name).veth, "down"])

    def restore_link(self, name: str) -> None:
        _run(["ip", "link", "set", self.node(name).veth, "up"])

    def restart(self, name: str) -> None:
        """Boot a crashed node again: clean addresses, cable up, start PID 1, wait for sshd."""
        node = self.node(name)
        if _ns_pid1(node.netns) is not None:
            raise LabError(f"node {name} is still running; crash or stop it first")
        self._reset_addresses(node)
        _run(["ip", "link", "set", node.veth, "up"])
        refused = check_addresses(self.bridge, [node.address])
        if refused:
            raise LabError("refusing to restart: " + "; ".join(refused), 3)
        self._start(node)
        if not wait_ssh(node.address, time.monotonic() + SSH_READY_TIMEOUT):
            raise LabError(f"node {name}: sshd did not come back; see "
                           f"{paths.node_dir(name) / 'console.log'}")
        wait_booted(node)

    # --- inside a node -------------------------------------------------------------------
    def nsenter_argv(self, name: str, argv: Iterable[str]) -> list[str]:
        """Command line that runs argv inside the node's namespaces (as root)."""
        pid = _ns_pid1(self.node(name).netns)
        if pid is None:
            raise LabError(f"node {name} is not running (python runbooks/lab.py up)")
        return ["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "--", *argv]

    def netns_argv(self, name: str, argv: Iterable[str]) -> list[str]:
        """Command line that runs argv in the node's network namespace only (the host's
        files and programs, the node's addresses and routes)."""
        node = self.node(name)
        if _ns_pid1(node.netns) is None:
            raise LabError(f"node {name} is not running (python runbooks/lab.py up)")
        return ["ip", "netns", "exec", node.netns, *argv]

    # --- down ----------------------------------------------------------------------------
    def _kill_namespaces(self, netns: list[str]) -> None:
        """SIGKILL every process of the namespaces, then wait (10 s at most) until none is left."""
        for ns in netns:
            for pid in _run(["ip", "netns", "pids", ns], check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for ns in netns:
            while _run(["ip", "netns", "pids", ns], check=False).split():
                if time.monotonic() > deadline:
                    raise LabError(f"processes of {ns} did not die")
                time.sleep(0.02)

    def down(self, progress: Callable[[str], None] = lambda _m: None,
             hosts_file: Path = etc_hosts.HOSTS_FILE) -> list[str]:
        """Remove every node, cable, namespace, the bridge, the state and the app's block in
        hosts_file; return what went.

        Also removes tp5 namespaces and cables left by a larger inventory run earlier.
        """
        require_root_and_tools()
        removed = [f"{hosts_file} block"] if etc_hosts.remove(hosts_file) else []
        netns = sorted(n for n in self._netns_names() if n.startswith("tp5-"))
        self._kill_namespaces(netns)
        for ifname in self._links():
            if ifname.startswith("tp5v-"):
                _run(["ip", "link", "del", ifname], check=False)
        for ns in netns:
            _run(["ip", "netns", "del", ns])
            removed.append(ns)
        if self.bridge in self._links():
            _run(["ip", "link", "del", self.bridge])
            removed.append(self.bridge)
        if paths.STATE_DIR.exists():
            shutil.rmtree(paths.STATE_DIR)
            removed.append(str(paths.STATE_DIR))
        progress(f"removed {len(netns)} node(s)")
        return removed
