"""What every benchmark shares: its command line and one JSON line per provider."""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parser(description):
    """The arguments every benchmark takes (add its own to the parser returned)."""
    out = argparse.ArgumentParser(description=description)
    out.add_argument("--config", required=True)
    out.add_argument("--database", required=True)
    out.add_argument("--providers", default="xero,qbo")
    return out


def each_provider(args, run):
    """Open the Odoo database of ``args`` and print ``run(env, provider, args)`` as one
    JSON line per provider."""
    import odoo
    from odoo import SUPERUSER_ID, api

    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database,
                                    "--log-level=warn"])
    registry = odoo.modules.registry.Registry(args.database)
    for provider in args.providers.split(","):
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            print(json.dumps(run(env, provider, args)), flush=True)
