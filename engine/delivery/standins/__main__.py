"""Run the stand-ins on loopback to try delivery without touching a real service::

    python -m engine.delivery.standins [--port 5050]

prints the environment that points ``sedmtui`` at them (a throw-away token, nothing secret) and
keeps them running until interrupted; on exit it prints what each received.
"""

from __future__ import annotations

import argparse
import signal
import threading

from engine.delivery.standins.skyportal import SkyPortalStandin
from engine.delivery.standins.slack import SlackStandin
from engine.delivery.standins.tns import TnsStandin


def main(argv: list[str] | None = None) -> int:
    """Start the three stand-ins and wait for Ctrl-C."""
    ap = argparse.ArgumentParser(prog="python -m engine.delivery.standins")
    ap.add_argument("--port", type=int, default=0, help="SkyPortal's port (Slack and TNS take any free one)")
    ns = ap.parse_args(argv)
    portal, slack, tns = SkyPortalStandin(), SlackStandin(), TnsStandin()
    url = portal.start(ns.port)
    slack_url, tns_url = slack.start(), tns.start()
    print("export SEDMTUI_DELIVERY_ENABLED=1 SEDMTUI_DELIVERY_MAX_AGE_DAYS=100000")
    print(f"export SEDMTUI_FRITZ_BASE_URL={url} SEDMTUI_FRITZ_TOKEN={portal.token}")
    print(f"export SEDMTUI_SLACK_API_URL={slack_url}/api SEDMTUI_SLACK_TOKEN={slack.token} "
          f"SEDMTUI_SLACK_CHANNEL_ID={slack.channels[0]}")
    print(f"export SEDMTUI_TNS_ENABLED=1 SEDMTUI_TNS_BASE_URL={tns_url}/api SEDMTUI_TNS_BOT_ID=1 "
          f"SEDMTUI_TNS_API_KEY={tns.api_key}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print(f"\nSkyPortal: {len(portal.spectra)} spectra, {len(portal.annotations)} annotations, "
          f"{len(portal.statuses)} status changes · Slack: {len(slack.shared)} files · TNS: {len(tns.reports)} reports")
    for stand in (portal, slack, tns):
        stand.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
