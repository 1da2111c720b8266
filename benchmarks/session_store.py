"""Cost per request of the shared session store: req/s through the VIP, db against files.

Requests per second with the sessions in the database (session_store: db) and in each web
server's files, in one run:

    python benchmarks/session_store.py [--requests 600] [--clients 4] [--rounds 2]

Holds the lab lock for the whole run: rebuilds the lab, deploys the repository's inventory
(store db), then alternates the web tier between the two stores (`deploy.py --group web` with
a copy of the inventory whose web group says `session_store: files`, then the repository's
again), `--rounds` times each. Each measure: `--clients` cookie-jar clients (each its own
session, one request at a time, round-robin proxies) send `--requests` requests in all
through the VIP, after a short warm-up. Prints each measure (req/s, p50/p99 latency, sessions
lost), then the medians and the ratio db/files. Removes the lab at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tasks.core.guard import check_addresses
from tasks.core.inventory import vip
from tasks.core.nornir_build import build_nornir
from tasks.core.settings import REPO_ROOT, load_settings
from tasks.drill.session_probe import cookie_opener, session_request
from tasks.drill.sessions import SessionAnswer, session_stats
from tasks.drill.web_analysis import percentile
from tp5lab import paths
from tp5lab.control import Lab
from tp5lab.inventory_factory import write_inventory

WARM_UP = 20  # requests per measure, not counted
TIMEOUT = 15.0


def deploy(*args: str) -> None:
    """runbooks/deploy.py (this run holds the lab lock); exit on failure."""
    proc = subprocess.run([sys.executable, "runbooks/deploy.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TP5_LAB_LOCK_HELD="1"))
    if proc.returncode != 0:
        sys.exit(f"deploy {' '.join(args)} failed (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")


def client_run(url: str, client: int, count: int, out: list[SessionAnswer]) -> None:
    opener = cookie_opener()
    for _ in range(count):
        out.append(session_request(opener, url, client, TIMEOUT))


def measure(url: str, requests: int, clients: int) -> dict[str, float]:
    """`requests` requests from `clients` concurrent cookie-jar clients: req/s and latency."""
    client_run(url, 0, WARM_UP, [])
    answers: list[SessionAnswer] = []
    per_client = requests // clients
    threads = [threading.Thread(target=client_run, args=(url, n, per_client, answers))
               for n in range(1, clients + 1)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    counted = [a for a in answers if a.ok and a.session is not None]
    latencies = [a.latency_s for a in counted if a.latency_s is not None]
    return {"requests": len(answers), "counted": len(counted), "seconds": wall,
            "rps": len(counted) / wall, "p50_ms": 1000 * (percentile(latencies, 50) or 0),
            "p99_ms": 1000 * (percentile(latencies, 99) or 0),
            "lost": session_stats(answers).lost}


def show(store: str, m: dict[str, float]) -> None:
    print(f"  {store:<5} {m['counted']:>5.0f}/{m['requests']:.0f} answers with a session in "
          f"{m['seconds']:6.2f} s: {m['rps']:7.1f} req/s, p50 {m['p50_ms']:6.1f} ms, "
          f"p99 {m['p99_ms']:6.1f} ms, sessions lost {m['lost']:.0f}", flush=True)


def run(args: argparse.Namespace, files_config: Path) -> dict[str, list[dict[str, float]]]:
    settings = load_settings()
    lab = Lab(settings)
    lab.down()
    lab.up()
    deploy()  # the repository's inventory: session_store db
    address = vip(build_nornir(settings).inventory)
    if address is None or check_addresses(settings.lab_bridge, [address]):
        sys.exit("the VIP is not behind the lab bridge")
    url = f"http://{address}/"
    results: dict[str, list[dict[str, float]]] = {"db": [], "files": []}
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}", flush=True)
        for store in ("db", "files"):
            deploy("--group", "web", *(["--config", str(files_config)]
                                       if store == "files" else []))
            results[store].append(measure(url, args.requests, args.clients))
            show(store, results[store][-1])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, choices=range(10, 20001),
                        metavar="10..20000", help="requests per measure (default 600)")
    parser.add_argument("--clients", type=int, default=4, choices=range(1, 33),
                        metavar="1..32", help="concurrent cookie-jar clients (default 4)")
    parser.add_argument("--rounds", type=int, default=2, choices=range(1, 6), metavar="1..5")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, paths.lab_lock():
        files_config = write_inventory(Path(tmp), 3, {"web": {"session_store": "files"}})
        try:
            results = run(args, files_config)
        finally:
            Lab(load_settings()).down()
    pairs = list(zip(results["db"], results["files"], strict=True))
    ratios = [d["rps"] / f["rps"] for d, f in pairs]
    added = [d["p50_ms"] - f["p50_ms"] for d, f in pairs]
    rps = {s: statistics.median(m["rps"] for m in results[s]) for s in results}
    print(f"\n{args.requests} requests x {args.rounds} round(s), {args.clients} clients: "
          f"median db {rps['db']:.1f} req/s, files {rps['files']:.1f} req/s")
    print(f"ratio db/files per round: {', '.join(f'{r:.2f}' for r in ratios)} (median "
          f"{statistics.median(ratios):.2f}); p50 latency added by the shared store per "
          f"round: {', '.join(f'{a:+.1f} ms' for a in added)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
