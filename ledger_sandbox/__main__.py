"""Run the ledger sandbox as a standalone process (demo, benchmarks).

    python3 -m ledger_sandbox --provider xero|qbo|both --host 127.0.0.1 --port 8070 \
        [--qbo-port 8071] [--seed FILE.json] [--window-seconds 60] \
        [--webhook-url URL --webhook-key KEY]

Prints each emulator's base URL and the OAuth2 client credentials, then serves until Ctrl-C.
Only loopback hosts are accepted: the sandbox must never be reachable from another machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from .core import SandboxApp, SandboxServer, is_loopback


def _seed_for(provider: str, seed: dict | None) -> dict | None:
    # A seed file holds either one provider's dump or {"xero": {...}, "qbo": {...}}.
    if not seed:
        return None
    if provider in seed and isinstance(seed[provider], dict):
        return seed[provider]
    if seed.get("provider") in (None, provider):
        return seed
    return None


def build_xero(args: argparse.Namespace, seed: dict | None) -> SandboxApp:
    """The Xero emulator configured from the command line."""
    from .xero.app import XeroSandbox

    options: dict[str, Any] = {"window_seconds": args.window_seconds,
                               "seed": _seed_for("xero", seed),
                               "webhook_url": args.webhook_url}
    if args.webhook_key:
        options["webhook_key"] = args.webhook_key
    app = XeroSandbox(**options)
    if args.currency:
        app.configure(base_currency=args.currency)
    return app


def build_qbo(args: argparse.Namespace, seed: dict | None) -> SandboxApp:
    """The QuickBooks Online emulator (provided by ledger_sandbox.qbo when present)."""
    try:
        from .qbo.app import QboSandbox
    except ImportError as error:  # the QBO emulator is optional while being built
        raise SystemExit(
            f"ledger_sandbox: the QuickBooks emulator is not available ({error})") from None
    options: dict[str, Any] = {"window_seconds": args.window_seconds,
                               "seed": _seed_for("qbo", seed), "webhook_url": args.webhook_url}
    if args.webhook_key:
        options["verifier_token"] = args.webhook_key
    app = QboSandbox(**options)
    if args.currency:
        app.configure(base_currency=args.currency)
    return app


BUILDERS = {"xero": build_xero, "qbo": build_qbo}


def describe(provider: str, app: SandboxApp, url: str) -> dict:
    """What a client needs: base URLs and credentials (the app's own describe() if any)."""
    custom = getattr(app, "describe", None)
    info = custom(url) if callable(custom) else {"url": url}
    return {"provider": provider, **info}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the emulator(s), print how to reach them and serve."""
    parser = argparse.ArgumentParser(prog="python3 -m ledger_sandbox",
                                     description="Local Xero / QuickBooks Online emulators.")
    parser.add_argument("--provider", choices=("xero", "qbo", "both"), default="xero")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8070,
                        help="port of the first provider (xero, or qbo when alone)")
    parser.add_argument("--qbo-port", type=int, default=8071,
                        help="port of the QuickBooks emulator with --provider both")
    parser.add_argument("--seed", help="JSON file: a /_sandbox/dump output or "
                        '{"xero": ..., "qbo": ...}')
    parser.add_argument("--window-seconds", type=float, default=60.0,
                        help="length of a rate-limit 'minute' (compress for benchmarks)")
    parser.add_argument("--webhook-url", help="where webhooks are delivered")
    parser.add_argument("--webhook-key", help="Xero webhook key / Intuit verifier token")
    parser.add_argument("--currency", help="base (home) currency of the Xero organisations "
                        "and QuickBooks companies (default NZD and GBP, as their demo "
                        "companies)")
    parser.add_argument("--verbose", action="store_true", help="log request lines")
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error(f"refusing to bind {args.host!r}: the sandbox serves loopback only")
    seed = None
    if args.seed:
        with open(args.seed, encoding="utf-8") as handle:
            seed = json.load(handle)
    plan = {"xero": [("xero", args.port)], "qbo": [("qbo", args.port)],
            "both": [("xero", args.port), ("qbo", args.qbo_port)]}[args.provider]
    servers = []
    try:
        for provider, port in plan:
            app = BUILDERS[provider](args, seed)
            server = SandboxServer(app, host=args.host, port=port, verbose=args.verbose).start()
            servers.append(server)
            print(json.dumps(describe(provider, app, server.url), indent=2), flush=True)
        print("ledger_sandbox: serving; Ctrl-C stops", file=sys.stderr, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
