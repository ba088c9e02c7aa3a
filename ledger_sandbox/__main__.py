"""Run the ledger sandbox as a standalone process (demo, benchmarks).

    python3 -m ledger_sandbox --provider xero|qbo|both --host 127.0.0.1 --port 8070 \
        [--qbo-port 8071] [--seed FILE.json] [--state-dir DIR [--save-interval 0.5]] \
        [--window-seconds 60] [--webhook-url URL --webhook-key KEY]

Prints each emulator's base URL and the OAuth2 client credentials, then serves until Ctrl-C
or SIGTERM.  Only loopback hosts are accepted: the sandbox must never be reachable from
another machine.  With ``--state-dir`` each emulator keeps its state in a file there across
restarts (see :mod:`ledger_sandbox.persist`); without it, state lives in memory only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from .core import SandboxApp, SandboxServer, is_loopback
from .persist import StateFileError, StatePersister


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
    return XeroSandbox(**options)


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
    return QboSandbox(**options)


BUILDERS = {"xero": build_xero, "qbo": build_qbo}


def describe(provider: str, app: SandboxApp, url: str) -> dict:
    """What a client needs: base URLs and credentials (the app's own describe() if any)."""
    custom = getattr(app, "describe", None)
    info = custom(url) if callable(custom) else {"url": url}
    return {"provider": provider, **info}


def apply_command_line(app: SandboxApp, args: argparse.Namespace) -> None:
    """Options given on the command line win over those a state file restored."""
    options: dict[str, Any] = {}
    if args.webhook_url:
        options["webhook_url"] = args.webhook_url
    if args.webhook_key:
        options["webhook_key"] = args.webhook_key
    if args.currency:
        options["base_currency"] = args.currency
    if options:
        app.configure(**options)


class _Stop(Exception):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP: stop cleanly."""


_signalled = threading.Event()


def _stop_on_signal(signum: int, frame: Any) -> None:
    # only the first signal stops; a second one (Ctrl-C in `make demo` reaches the sandbox,
    # then the harness's SIGTERM) must not cut the stop, and its last save, short
    if not _signalled.is_set():
        _signalled.set()
        raise _Stop(signum)


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
    parser.add_argument("--state-dir", metavar="DIR",
                        help="keep each emulator's state in DIR/<provider>-state.json across "
                        "restarts: loaded at start when present (over --seed), saved after "
                        "every change and on exit; without it the state lives in memory only")
    parser.add_argument("--save-interval", type=float, default=0.5, metavar="SECONDS",
                        help="with --state-dir: at most one save per SECONDS while changes "
                        "keep coming (what a kill -9 may lose); a clean stop always saves")
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
    _signalled.clear()
    # (a signal ignored by whoever started us, e.g. SIGHUP under nohup, stays ignored)
    previous = {sig: signal.signal(sig, _stop_on_signal)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    servers: list[SandboxServer] = []
    persisters: list[StatePersister] = []
    status = 0
    try:
        apps = []
        for provider, port in plan:
            app = BUILDERS[provider](args, seed)
            if args.state_dir:
                # every state file is read before any port is bound
                persister = StatePersister(app, args.state_dir, interval=args.save_interval)
                restored = persister.open()
                persisters.append(persister)
                if restored:
                    print(f"ledger_sandbox: {provider} state restored from {persister.path}",
                          file=sys.stderr, flush=True)
            apply_command_line(app, args)
            apps.append((provider, port, app))
        for persister in persisters:
            persister.start()
        for provider, port, app in apps:
            try:
                server = SandboxServer(app, host=args.host, port=port,
                                       verbose=args.verbose).start()
            except OSError as error:
                print(f"ledger_sandbox: cannot serve the {provider} emulator on "
                      f"{args.host}:{port}: {error.strerror or error}", file=sys.stderr,
                      flush=True)
                status = 2
                break
            servers.append(server)
            info = describe(provider, app, server.url)
            if args.state_dir:
                info["state_file"] = str(next(p.path for p in persisters if p.app is app))
            print(json.dumps(info, indent=2), flush=True)
        else:
            print("ledger_sandbox: serving; Ctrl-C stops", file=sys.stderr, flush=True)
            threading.Event().wait()
    except StateFileError as error:
        print(error, file=sys.stderr, flush=True)
        status = 2
    except (KeyboardInterrupt, _Stop):
        pass  # a clean stop
    finally:
        _signalled.set()  # from now on signals are ignored: the last save has to run
        for server in servers:
            server.stop()  # drained: no request changes the state any more
        for persister in persisters:
            try:
                persister.close()  # the last save: every answered request is on disk
            except Exception as error:  # noqa: BLE001 - say so, and fail the exit status
                reason = getattr(error, "strerror", None) or error
                print(f"ledger_sandbox: could not save the {persister.label} state to "
                      f"{persister.path}: {reason}; what changed since the last save is "
                      f"lost", file=sys.stderr, flush=True)
                status = 1
        for sig, handler in previous.items():
            if handler is not None:  # None: not installed from Python, nothing to restore
                signal.signal(sig, handler)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
