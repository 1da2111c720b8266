"""Pure analysis of a VRRP capture: adverts, router timelines, gratuitous ARPs, failover.

Entry point (stable, used by the failover drill)::

    analyze_capture(packets_or_path, vip, fault_time=None) -> CaptureAnalysis

``packets_or_path`` is an iterable of Scapy packets (an ``AsyncSniffer`` result) or the path
of a pcap file (``CaptureFileError`` if it is not one). Packets are decoded only through
Scapy layers (``VRRP``, ``VRRPv3``, ``ARP``), never by byte offsets. Times are the packets'
``.time`` (epoch seconds). Every result is a frozen dataclass with ``to_dict()``
(JSON-serialisable). Nothing here touches the network.

Definitions (A and B are routers, identified by source IP, within one vrid):

- Advert interval: VRRPv2 ``adv`` is in seconds, VRRPv3 ``adv`` in centiseconds.
- Live advert: an advertisement with a non-zero priority (only a master sends them).
  A priority-0 advert is a resignation (clean stop or FAULT state).
- Failover: in the time-ordered live adverts of the VIP's vrid, the first advert of B (at or
  after ``fault_time`` when given) that *starts* B's advertising (B sent no live advert in
  the ``RUN_GAP_FACTOR`` advert intervals before), whose preceding live advert is from
  A != B, and after which A sends at most ``YIELD_ADVERTS`` live adverts in
  ``SILENCE_INTERVALS`` of A's advert intervals. A is the old master, B the new one;
  ``takeover_s`` = B's first advert - A's last advert before it (priority 0 included).
- Kind: ``clean_stop`` when A's last advert has priority 0, ``demoted`` when it has a lower
  priority than A had before (a tracked script), ``preempted`` when B has a higher priority
  than A, ``crash`` otherwise (A fell silent).
- Split brain: see :func:`find_split_brains`. Expected bound: see :func:`expected_takeover`.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Packet
from scapy.utils import rdpcap

FaultKind = Literal["crash", "clean_stop", "demoted", "preempted"]
BoundKind = Literal["crash", "clean_stop"]

VRRP_TYPE_ADVERT = 1
ARP_OPS = {1: "who-has", 2: "is-at"}
SILENCE_INTERVALS = 3  # A must stay (nearly) silent this long after B's first advert
YIELD_ADVERTS = 1  # a router losing mastership may still send this many adverts (a race)
RUN_GAP_FACTOR = 1.5  # live adverts of one router further apart than this start a new run


class _Serialisable:
    """Mixin: ``to_dict()`` for frozen dataclasses of plain values."""

    def to_dict(self) -> dict[str, Any]:
        """Return the dataclass as a JSON-serialisable dict."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Advert(_Serialisable):
    """One VRRP advertisement as seen on the wire."""

    time: float
    src_ip: str
    src_mac: str | None
    vrid: int
    priority: int
    version: int
    advert_int: float  # seconds
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class RouterTimeline(_Serialisable):
    """What one router (source IP, vrid) advertised over the capture."""

    src_ip: str
    src_mac: str | None
    vrid: int
    version: int
    advert_int: float
    count: int
    first_time: float
    last_time: float
    priorities: tuple[int, ...]  # distinct, ascending
    median_gap_s: float | None  # median time between consecutive adverts


@dataclass(frozen=True)
class GratuitousArp(_Serialisable):
    """An ARP for the VIP with psrc == pdst == VIP (announcing who holds it)."""

    time: float
    op: str  # "who-has" or "is-at"
    sender_mac: str
    router: str | None  # source IP of the router advertising from that MAC, when unique


@dataclass(frozen=True)
class TakeoverBound(_Serialisable):
    """Theoretical takeover delay of a backup (RFC 3768 / RFC 5798, as keepalived does it)."""

    version: int
    advert_int: float
    backup_priority: int
    fault: str
    skew_s: float
    master_down_s: float
    bound_s: float  # master_down_s for a crash, skew_s for a clean stop


@dataclass(frozen=True)
class Failover(_Serialisable):
    """The change of master that follows the fault."""

    vrid: int
    old_master: str
    new_master: str
    kind: str  # FaultKind
    version: int  # of the old master's adverts
    advert_int: float  # the old master's advert interval, which the backup times against
    old_last_time: float
    old_last_priority: int
    new_first_time: float
    new_priority: int
    takeover_s: float  # new_first_time - old_last_time
    fault_time: float | None
    fault_to_takeover_s: float | None  # new_first_time - fault_time
    first_garp_time: float | None  # first gratuitous ARP for the VIP at/after old_last_time


@dataclass(frozen=True)
class SplitBrain(_Serialisable):
    """An interval where two routers both claim to be master of one vrid."""

    vrid: int
    routers: tuple[str, str]
    start: float
    end: float
    duration_s: float
    adverts: tuple[int, int]  # live adverts of each router inside [start, end]


@dataclass(frozen=True)
class CaptureAnalysis(_Serialisable):
    """Everything :func:`analyze_capture` finds in one capture."""

    vip: str
    vrid: int | None  # the vrid carrying the VIP (or the busiest one)
    fault_time: float | None
    packet_count: int
    start_time: float | None
    end_time: float | None
    adverts: tuple[Advert, ...]
    routers: tuple[RouterTimeline, ...]
    garps: tuple[GratuitousArp, ...]
    resignations: tuple[Advert, ...]  # priority-0 adverts
    failover: Failover | None
    expected: TakeoverBound | None
    takeover_delta_s: float | None  # measured takeover - expected bound
    split_brains: tuple[SplitBrain, ...]


class CaptureFileError(ValueError):
    """A file that cannot be read as a capture (message names the file)."""


def read_capture(path: str | Path) -> list[Packet]:
    """The packets of a pcap or pcapng file; CaptureFileError naming it if it is not one."""
    try:
        return list(rdpcap(str(path)))
    except Exception as exc:  # noqa: BLE001 - Scapy raises many kinds on a foreign file
        reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc) or type(
            exc).__name__
        raise CaptureFileError(f"{path}: not a readable pcap/pcapng capture ({reason})") from exc


def load_packets(packets_or_path: Iterable[Packet] | str | Path) -> list[Packet]:
    """Return the packets of a pcap path, or the given packets as a list."""
    if isinstance(packets_or_path, str | Path):
        return read_capture(packets_or_path)
    return list(packets_or_path)


def decode_advert(pkt: Packet) -> Advert | None:
    """Decode a VRRP advertisement (v2 or v3, IPv4 or IPv6), or return None."""
    if pkt.haslayer(VRRPv3):
        layer, version = pkt[VRRPv3], 3
        interval = layer.adv / 100
    elif pkt.haslayer(VRRP):
        layer, version = pkt[VRRP], int(pkt[VRRP].version)
        interval = float(layer.adv)
    else:
        return None
    if layer.type != VRRP_TYPE_ADVERT:
        return None
    if pkt.haslayer(IP):
        src_ip = pkt[IP].src
    elif pkt.haslayer(IPv6):
        src_ip = pkt[IPv6].src
    else:
        return None
    return Advert(
        time=float(pkt.time),
        src_ip=str(src_ip),
        src_mac=str(pkt[Ether].src) if pkt.haslayer(Ether) else None,
        vrid=int(layer.vrid),
        priority=int(layer.priority),
        version=version,
        advert_int=float(interval),
        addresses=tuple(str(a) for a in layer.addrlist),
    )


def decode_adverts(packets: Iterable[Packet]) -> list[Advert]:
    """Return the VRRP advertisements among ``packets``, in time order."""
    adverts = [a for a in map(decode_advert, packets) if a is not None]
    return sorted(adverts, key=lambda a: a.time)


def summarize_routers(adverts: Sequence[Advert]) -> list[RouterTimeline]:
    """Return one timeline per (vrid, source IP), ordered by first advert."""
    groups: dict[tuple[int, str], list[Advert]] = defaultdict(list)
    for advert in adverts:
        groups[(advert.vrid, advert.src_ip)].append(advert)
    timelines = []
    for (vrid, src_ip), own in groups.items():
        own.sort(key=lambda a: a.time)
        gaps = [b.time - a.time for a, b in zip(own, own[1:], strict=False)]
        timelines.append(
            RouterTimeline(
                src_ip=src_ip,
                src_mac=_most_common(a.src_mac for a in own),
                vrid=vrid,
                version=_most_common(a.version for a in own),
                advert_int=_most_common(a.advert_int for a in own),
                count=len(own),
                first_time=own[0].time,
                last_time=own[-1].time,
                priorities=tuple(sorted({a.priority for a in own})),
                median_gap_s=statistics.median(gaps) if gaps else None,
            )
        )
    return sorted(timelines, key=lambda t: (t.first_time, t.src_ip))


def find_gratuitous_arps(
    packets: Iterable[Packet], vip: str, adverts: Sequence[Advert] = ()
) -> list[GratuitousArp]:
    """Return the gratuitous ARPs for ``vip`` (who-has or is-at), in time order.

    ``router`` is filled when exactly one advertising router uses the ARP's sender MAC.
    """
    routers_by_mac: dict[str | None, set[str]] = defaultdict(set)
    for advert in adverts:
        routers_by_mac[advert.src_mac].add(advert.src_ip)
    garps = []
    for pkt in packets:
        if not pkt.haslayer(ARP):
            continue
        arp = pkt[ARP]
        if arp.psrc != vip or arp.pdst != vip or arp.op not in ARP_OPS:
            continue
        owners = routers_by_mac.get(str(arp.hwsrc), set())
        garps.append(
            GratuitousArp(
                time=float(pkt.time),
                op=ARP_OPS[arp.op],
                sender_mac=str(arp.hwsrc),
                router=next(iter(owners)) if len(owners) == 1 else None,
            )
        )
    return sorted(garps, key=lambda g: g.time)


def expected_takeover(
    version: int, advert_int: float, backup_priority: int, fault: BoundKind = "crash"
) -> TakeoverBound:
    """Return the theoretical takeover delay of a backup after its master fails.

    Master-down interval = 3 * advert_int + skew, with skew = (256 - prio) / 256 s for
    VRRPv2 and (256 - prio) * advert_int / 256 for VRRPv3. After a crash (no more adverts)
    the backup waits the master-down interval from the last advert it received; after a
    clean stop (a priority-0 advert) it waits the skew alone.
    """
    if version not in (2, 3):
        raise ValueError(f"VRRP version must be 2 or 3, not {version}")
    if advert_int <= 0:
        raise ValueError(f"advert_int must be positive, not {advert_int}")
    if not 1 <= backup_priority <= 255:
        raise ValueError(f"backup priority must be in 1..255, not {backup_priority}")
    if fault not in ("crash", "clean_stop"):
        raise ValueError(f"fault must be 'crash' or 'clean_stop', not {fault!r}")
    scale = 1.0 if version == 2 else advert_int
    skew = (256 - backup_priority) * scale / 256
    master_down = 3 * advert_int + skew
    return TakeoverBound(
        version=version,
        advert_int=advert_int,
        backup_priority=backup_priority,
        fault=fault,
        skew_s=skew,
        master_down_s=master_down,
        bound_s=skew if fault == "clean_stop" else master_down,
    )


def select_vrid(adverts: Sequence[Advert], vip: str) -> int | None:
    """Return the vrid whose adverts carry ``vip`` most often, else the busiest vrid."""
    counts = Counter(a.vrid for a in adverts if vip in a.addresses)
    counts = counts or Counter(a.vrid for a in adverts)
    return counts.most_common(1)[0][0] if counts else None


def find_failover(
    adverts: Sequence[Advert],
    vrid: int,
    fault_time: float | None = None,
    garps: Sequence[GratuitousArp] = (),
) -> Failover | None:
    """Return the first takeover in ``vrid`` (at/after ``fault_time``), as the module defines."""
    live = [a for a in adverts if a.vrid == vrid and a.priority > 0]
    last_seen: dict[str, Advert] = {}
    for i, cur in enumerate(live):
        own, last_seen[cur.src_ip] = last_seen.get(cur.src_ip), cur
        if i == 0 or (fault_time is not None and cur.time < fault_time):
            continue
        if own is not None and cur.time - own.time <= RUN_GAP_FACTOR * own.advert_int:
            continue  # B was already advertising: not the start of a mastership
        prev = live[i - 1]
        if prev.src_ip == cur.src_ip:
            continue
        horizon = cur.time + SILENCE_INTERVALS * prev.advert_int
        later = sum(a.src_ip == prev.src_ip and a.time <= horizon for a in live[i + 1 :])
        if later > YIELD_ADVERTS:
            continue  # A kept advertising: a split brain, not a takeover
        return _failover(adverts, prev, cur, fault_time, garps)
    return None


def _failover(
    adverts: Sequence[Advert],
    prev: Advert,
    cur: Advert,
    fault_time: float | None,
    garps: Sequence[GratuitousArp],
) -> Failover:
    """Build the Failover for the change ``prev`` (old master) -> ``cur`` (new master)."""
    old = [a for a in adverts if a.vrid == cur.vrid and a.src_ip == prev.src_ip]
    old_last = [a for a in old if a.time <= cur.time][-1]
    earlier_max = max(a.priority for a in old if a.time <= prev.time)
    kind: FaultKind = "crash"
    if old_last.priority == 0:
        kind = "clean_stop"
    elif old_last.priority < earlier_max:
        kind = "demoted"
    elif cur.priority > old_last.priority:
        kind = "preempted"
    garp_times = [g.time for g in garps if g.time >= old_last.time]
    return Failover(
        vrid=cur.vrid,
        old_master=prev.src_ip,
        new_master=cur.src_ip,
        kind=kind,
        version=prev.version,
        advert_int=prev.advert_int,
        old_last_time=old_last.time,
        old_last_priority=old_last.priority,
        new_first_time=cur.time,
        new_priority=cur.priority,
        takeover_s=cur.time - old_last.time,
        fault_time=fault_time,
        fault_to_takeover_s=None if fault_time is None else cur.time - fault_time,
        first_garp_time=min(garp_times) if garp_times else None,
    )


def find_split_brains(adverts: Sequence[Advert], min_adverts: int = 2) -> list[SplitBrain]:
    """Return the intervals where two routers both act as master of the same vrid.

    A router's *claim* is a run of its live adverts whose consecutive gaps stay within
    ``RUN_GAP_FACTOR`` advert intervals; it lasts from the run's first advert until one
    advert interval after its last one (the router was master all that time). Two claims
    of different routers in one vrid that overlap form a split brain when *each* router
    sends at least ``min_adverts`` live adverts inside the overlap. This excludes the normal
    election and preemption: a router that loses an election stops at once, so it sends at
    most one advert after the winner's first. ``start``/``end`` are the overlap's bounds.
    """
    claims = _claims(adverts)
    found = []
    for i, (vrid_a, src_a, times_a, end_a) in enumerate(claims):
        for vrid_b, src_b, times_b, end_b in claims[i + 1 :]:
            if vrid_a != vrid_b or src_a == src_b:
                continue
            start, end = max(times_a[0], times_b[0]), min(end_a, end_b)
            if start >= end:
                continue
            count_a = sum(start <= t <= end for t in times_a)
            count_b = sum(start <= t <= end for t in times_b)
            if count_a >= min_adverts and count_b >= min_adverts:
                first, second = sorted([(src_a, count_a), (src_b, count_b)])
                found.append(
                    SplitBrain(
                        vrid=vrid_a,
                        routers=(first[0], second[0]),
                        start=start,
                        end=end,
                        duration_s=end - start,
                        adverts=(first[1], second[1]),
                    )
                )
    return sorted(found, key=lambda s: (s.start, s.vrid))


def _claims(adverts: Sequence[Advert]) -> list[tuple[int, str, list[float], float]]:
    """Return the claims (vrid, source, advert times, end) of every router."""
    groups: dict[tuple[int, str], list[Advert]] = defaultdict(list)
    for advert in adverts:
        if advert.priority > 0:
            groups[(advert.vrid, advert.src_ip)].append(advert)
    claims = []
    for (vrid, src), own in groups.items():
        own.sort(key=lambda a: a.time)
        run = [own[0]]
        for advert in own[1:]:
            if advert.time - run[-1].time > RUN_GAP_FACTOR * run[-1].advert_int:
                claims.append((vrid, src, [a.time for a in run], run[-1].time + run[-1].advert_int))
                run = []
            run.append(advert)
        claims.append((vrid, src, [a.time for a in run], run[-1].time + run[-1].advert_int))
    return claims


def analyze_capture(
    packets_or_path: Iterable[Packet] | str | Path,
    vip: str,
    fault_time: float | None = None,
    *,
    min_split_adverts: int = 2,
) -> CaptureAnalysis:
    """Analyse a capture (packets or pcap path) of a failover of ``vip``."""
    packets = load_packets(packets_or_path)
    adverts = decode_adverts(packets)
    garps = find_gratuitous_arps(packets, vip, adverts)
    vrid = select_vrid(adverts, vip)
    failover = None if vrid is None else find_failover(adverts, vrid, fault_time, garps)
    expected = None
    if failover is not None and failover.kind in ("crash", "clean_stop"):
        expected = expected_takeover(
            failover.version, failover.advert_int, failover.new_priority,
            "clean_stop" if failover.kind == "clean_stop" else "crash",
        )
    times = [float(p.time) for p in packets]
    return CaptureAnalysis(
        vip=vip,
        vrid=vrid,
        fault_time=fault_time,
        packet_count=len(packets),
        start_time=min(times) if times else None,
        end_time=max(times) if times else None,
        adverts=tuple(adverts),
        routers=tuple(summarize_routers(adverts)),
        garps=tuple(garps),
        resignations=tuple(a for a in adverts if a.priority == 0),
        failover=failover,
        expected=expected,
        takeover_delta_s=(
            None if expected is None or failover is None
            else failover.takeover_s - expected.bound_s
        ),
        split_brains=tuple(find_split_brains(adverts, min_split_adverts)),
    )


def _most_common(values: Iterable[Any]) -> Any:
    """Return the most frequent value (the first seen on ties)."""
    return Counter(values).most_common(1)[0][0]
