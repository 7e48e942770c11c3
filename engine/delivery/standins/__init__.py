"""Loopback stand-ins of the systems delivery talks to (SkyPortal, Slack, TNS), with their error
replies and fault injection. Used by the tests and by ``sedmtui deliver`` demonstrations; they
listen on 127.0.0.1 only and keep everything in memory."""
