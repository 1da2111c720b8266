"""The app in a real browser: `python runbooks/browse.py [--loads N] [--screenshot PNG]`.

Opens http://<app_name>.<domain>/ N times (default 3) in headless Chromium, each time a new
Chromium with an empty profile (a new connection to the VIP, a new session), and prints the
web server that answered each load, its session and db lines, and Chromium's time. With
--screenshot, one more load is saved as a PNG. Chromium resolves the app's name to the
inventory's VIP itself and no other name (no DNS or /etc/hosts needed, nothing else reached);
in lab mode only once the VIP is behind the lab bridge. Exit 0 when every load showed the
page's served-by line.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import sys

from tasks.core.settings import ProjectError, fail, load_settings
from tasks.trace.arguments import count, output_path, seconds
from tasks.web.browser import checked_site, load_page, save_screenshot


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    parser.add_argument("--loads", type=count(0, 50), default=3, metavar="N",
                        help="page loads, each in a new Chromium (0..50, default 3)")
    parser.add_argument("--screenshot", type=output_path, metavar="PNG",
                        help="also save one load as a PNG here")
    parser.add_argument("--timeout", type=seconds(1, 300), default=30,
                        help="seconds allowed for each Chromium start (default 30)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    missing = 0
    try:
        site = checked_site(load_settings(args.config))
        print(f"{site.url} (resolved by Chromium to {site.address} only)")
        for number in range(1, args.loads + 1):
            load = load_page(site, args.timeout)
            shown = " | ".join(f"{key}: {load.facts[key]}"
                               for key in ("served-by", "session", "db") if key in load.facts)
            missing += "served-by" not in load.facts
            shown = shown or "no app page here (see what it is with --screenshot)"
            print(f"load {number}: {load.seconds:.2f} s  {shown}")
        if args.screenshot is not None:
            spent = save_screenshot(site, args.screenshot, timeout=args.timeout)
            print(f"screenshot: {args.screenshot.resolve()} ({spent:.2f} s)")
    except ProjectError as exc:
        fail(exc)
    if missing:
        print(f"error: {missing} of {args.loads} loads did not show the app's page",
              file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
