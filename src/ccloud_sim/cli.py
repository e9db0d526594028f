"""``ccloud-sim``: serve the fake Confluent Cloud, or print ground truth.

Usage::

    ccloud-sim serve --port 8080 --seed 1 --scale small [--now 2026-03-01T12:00:00Z]
                     [--metrics-retention-days 7|0|unlimited]
    ccloud-sim truth --seed 1 --scale small --date 2026-02-20 [--line-id cost-…] [--anchor D]
    ccloud-sim truth --seed 1 --scale small --date 2026-02-20 --topics lkc-…
    ccloud-sim truth --seed 1 --scale small --teams
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from ccloud_sim.app import DEFAULT_API_KEY, DEFAULT_API_SECRET, create_app
from ccloud_sim.clock import SimClock
from ccloud_sim.faults import Faults, RateLimits
from ccloud_sim.org import Organization
from ccloud_sim.scales import SCALES

__all__ = ["main"]


def _retention(text: str) -> int | None:
    """``--metrics-retention-days``: a number of days, or ``0`` / ``unlimited``."""
    if text.strip().lower() in ("0", "unlimited", "none"):
        return None
    days = int(text)
    if days < 1:
        raise argparse.ArgumentTypeError(f"expected days >= 1, 0 or 'unlimited', got {text!r}")
    return days


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ccloud-sim", description="A fake Confluent Cloud.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("serve", "truth"):
        s = sub.add_parser(name)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--scale", choices=sorted(SCALES), default="tiny")
        s.add_argument("--now", help="freeze the clock at this ISO instant (default: wall clock)")
        s.add_argument(
            "--anchor",
            type=date.fromisoformat,
            help="end of the generated history (default: the clock's date)",
        )
    serve = sub.choices["serve"]
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--api-key", default=DEFAULT_API_KEY)
    serve.add_argument("--api-secret", default=DEFAULT_API_SECRET)
    serve.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="total rate of 429/500/503/drop/truncate/cut faults",
    )
    serve.add_argument("--fault-seed", type=int, default=0)
    serve.add_argument("--rate-429", type=float)
    serve.add_argument("--rate-5xx", type=float, help="rate of 500 and of 503 each")
    serve.add_argument("--rate-drop", type=float)
    serve.add_argument("--rate-truncate", type=float)
    serve.add_argument("--rate-slow", type=float)
    serve.add_argument("--slow-seconds", type=float, default=0.5)
    serve.add_argument("--retry-after", type=int, default=1)
    serve.add_argument("--outage", action="store_true", help="answer every request with 503")
    serve.add_argument("--rate-limit-management", type=int, help="requests per minute")
    serve.add_argument("--rate-limit-telemetry", type=int, help="requests per minute")
    serve.add_argument("--max-billing-days", type=int, default=31)
    serve.add_argument(
        "--metrics-retention-days",
        type=_retention,
        default=7,
        metavar="DAYS",
        help="how long the Metrics API keeps data (default 7, like Confluent Cloud; "
        "0 or 'unlimited' keeps everything)",
    )
    truth = sub.choices["truth"]
    truth.add_argument("--date", type=date.fromisoformat, help="required unless --teams")
    truth.add_argument("--line-id")
    truth.add_argument("--topics", metavar="CLUSTER", help="the topics of a cluster on --date")
    truth.add_argument("--teams", action="store_true", help="the team catalogue")
    return p


def _clock(now: str | None) -> SimClock:
    return SimClock(datetime.fromisoformat(now.replace("Z", "+00:00")) if now else None)


def _faults(a: argparse.Namespace) -> Faults:
    f = Faults.uniform(a.fault_rate, a.fault_seed) if a.fault_rate else Faults(seed=a.fault_seed)
    f.retry_after, f.slow_seconds, f.outage = a.retry_after, a.slow_seconds, a.outage
    for attr, value in (
        ("rate_429", a.rate_429),
        ("rate_500", a.rate_5xx),
        ("rate_503", a.rate_5xx),
        ("rate_drop", a.rate_drop),
        ("rate_truncate", a.rate_truncate),
        ("rate_slow", a.rate_slow),
    ):
        if value is not None:
            setattr(f, attr, value)
    return f


def _serve(a: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - only the server needs it

    clock = _clock(a.now)
    org = Organization(a.seed, a.scale, a.anchor or clock.today())
    app = create_app(
        org,
        clock=clock,
        credentials={a.api_key: a.api_secret},
        faults=_faults(a),
        rate_limits=RateLimits(a.rate_limit_management, a.rate_limit_telemetry),
        max_billing_days=a.max_billing_days,
        metrics_retention_days=a.metrics_retention_days,
    )
    base = f"http://{a.host}:{a.port}"
    retention = a.metrics_retention_days
    print(
        f"ccloud-sim: {org!r} org_id={org.org_id} metrics retention "
        f"{'unlimited' if retention is None else f'{retention} days'}",
        flush=True,
    )
    print(f"ccloud-sim: base URL {base}  credentials {a.api_key}:{a.api_secret}", flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0


def _truth(a: argparse.Namespace) -> int:
    if a.date is None and not a.teams:
        print("ccloud-sim: truth needs --date (or --teams)", file=sys.stderr)
        return 2
    clock = _clock(a.now)
    org = Organization(a.seed, a.scale, a.anchor or clock.today())
    out: Any
    try:
        if a.teams:
            out = org.catalogue.to_json()
        elif a.topics:
            out = org.truth_topics(a.topics, a.date)
        else:
            out = org.truth(a.date, a.line_id)
    except KeyError as exc:
        print(f"ccloud-sim: {exc.args[0]}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ccloud-sim`` console script."""
    args = _parser().parse_args(argv)
    return _serve(args) if args.command == "serve" else _truth(args)
