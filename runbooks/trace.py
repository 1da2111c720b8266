"""Follow requests through the stack, as the nodes' own logs tell it.

`python runbooks/trace.py --requests N [--json FILE|-]` or
`python runbooks/trace.py --follow [--group rp --group web] [--duration S]`.

--requests: N GETs through the VIP, then per request the path it took (proxy -> web server
-> db node) read from the proxies' and web servers' logs; exit 0 when every one was traced.
--follow: the access logs of the selected nodes, live, interleaved in time order with each
node's name, until Ctrl-C or --duration; exit 0 unless a node's log could not be followed.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import json
import sys

from tasks.core.settings import ProjectError, fail
from tasks.trace.arguments import check_combination, count, output_path, seconds
from tasks.trace.follow import follow_logs
from tasks.trace.requests import trace_requests


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--requests", type=count(1, 1000), metavar="N",
                      help="send N requests through the VIP and trace each (1..1000)")
    mode.add_argument("--follow", action="store_true",
                      help="print the access logs of the selected nodes live")
    parser.add_argument("--json", type=output_path, metavar="FILE",
                        help="--requests: also write the traces as JSON here ('-': stdout)")
    parser.add_argument("--wait", type=seconds(0, 120), default=None,
                        help="--requests: seconds to wait for every id in the logs (10)")
    parser.add_argument("--group", action="append", choices=["rp", "web"],
                        help="--follow: nodes of this group (repeatable; default rp and web)")
    parser.add_argument("--duration", type=seconds(1, 3600), default=None,
                        help="--follow: stop after this many seconds (default 60, max 3600)")
    args = parser.parse_args(argv)
    problem = check_combination(args)
    if problem:
        parser.error(problem)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.follow:
        summary = follow_logs(args.config, args.group or ["rp", "web"], args.duration or 60.0)
        print(summary.describe())
        for node, problem in sorted(summary.problems.items()):
            print(f"{node}: {problem}", file=sys.stderr)
        return 1 if summary.problems else 0
    wait = 10.0 if args.wait is None else args.wait
    report = trace_requests(args.config, args.requests, wait)
    if args.json is not None and str(args.json) == "-":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
        if args.json is not None:
            args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ProjectError as exc:
        fail(exc)
