"""Delivery settings: the ``[delivery]``, ``[fritz]``, ``[smtp]``, ``[report]``, ``[slack]`` and
``[tns]`` tables of the configuration.

Nothing is sent unless ``[delivery] enabled = true`` *and* the destination is configured (a
Fritz token, an SMTP host and recipients, a Slack token and channel or a webhook, TNS behind its
own switch). Secret fields (marked ``secret`` in their metadata) come from the environment
(``SEDMTUI_FRITZ_TOKEN``...), from ``delivery.secrets_file`` or from a configuration file that
only its owner can read; they are never written to products, logs or ``sedmtui --settings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from engine.errors import ConfigError

SECRET = {"secret": True}
"""Field metadata of a secret setting."""


def secret_field() -> str:
    """A secret string setting (empty by default)."""
    return field(default="", metadata=SECRET, repr=False)


def secret_names(cls: type) -> tuple[str, ...]:
    """Names of the secret fields of a settings dataclass."""
    return tuple(f.name for f in fields(cls) if f.metadata.get("secret"))


@dataclass(frozen=True, kw_only=True)
class DeliverySettings:
    """The delivery ledger and its queue."""

    enabled: bool = False
    """Send anything at all (off by default; bulk reprocessing never delivers unless asked)."""
    dry_run: bool = False
    """Record in the ledger what would be sent, and send nothing."""
    workers: int = 2
    """Sends in flight at once (threads of the engine process; never the reduction pool)."""
    backoff_s: tuple[float, ...] = (10.0, 30.0, 120.0, 600.0, 1800.0)
    """Waits before retrying a send that provably did not commit [s]; the last repeats."""
    max_attempts: int = 12
    """A row still failing after this many attempts is marked failed (``deliver retry`` resets it)."""
    drain_timeout_s: float = 60.0
    """``--batch --once`` waits at most this long for pending deliveries before it exits [s]."""
    max_age_days: int = 3
    """Nights older than this are never delivered by the engine (``sedmtui deliver run --night D`` can)."""
    secrets_file: str = ""
    """TOML file with the secret settings (``[fritz] token = ...``); must be readable only by its owner."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"delivery.workers must be >= 1, not {self.workers}")
        if not self.backoff_s or min(self.backoff_s) < 0:
            raise ConfigError("delivery.backoff_s must be a non-empty list of waits >= 0 [s]")


@dataclass(frozen=True, kw_only=True)
class FritzSettings:
    """Spectra, annotations and follow-up request status on Fritz (a SkyPortal instance)."""

    base_url: str = "https://fritz.science"
    """Root URL of the SkyPortal instance."""
    token: str = secret_field()
    """API token (secret: ``SEDMTUI_FRITZ_TOKEN`` or ``delivery.secrets_file``); empty disables Fritz."""
    instrument_id: int = 2
    """SkyPortal instrument id of SEDM (2 on Fritz)."""
    group_ids: tuple[int, ...] = ()
    """Groups the spectra are shared with."""
    object_pattern: str = r"^ZTF\d{2}[a-z]{7}$"
    """Regular expression an object name must match to be uploaded (ZTF names)."""
    replace_on_redo: bool = True
    """An accepted re-extraction replaces (PUT) the spectrum already stored for the exposure."""
    failed_status: str = "after_final"
    """Follow-up status ``Failed`` for quality 3-5: ``after_final`` (once the observer sent the final
    report), ``immediately`` or ``never``."""
    uncalibrated_hold_s: float = 3600.0
    """A spectrum waiting for a standard is held this long before it is sent uncalibrated [s]."""
    timeout_s: float = 30.0
    """Timeout of one HTTP call [s]."""
    recheck_s: float = 120.0
    """After a call without a reply (or a 5xx), wait this long before reading Fritz again and maybe
    resending: a slow server may still be storing what it was sent [s]."""
    min_interval_s: float = 0.25
    """Least time between two calls (Fritz allows 5 per second) [s]."""

    def __post_init__(self) -> None:
        if self.failed_status not in ("after_final", "immediately", "never"):
            raise ConfigError(f"fritz.failed_status must be after_final, immediately or never, "
                              f"not {self.failed_status!r}")

    @property
    def configured(self) -> bool:
        """A token and a URL are set."""
        return bool(self.token and self.base_url)


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """The mail server the night report goes through."""

    host: str = ""
    """SMTP server; empty disables e-mail."""
    port: int = 587
    starttls: bool = True
    """Upgrade the connection with STARTTLS before logging in."""
    username: str = ""
    password: str = secret_field()
    """Password (secret: ``SEDMTUI_SMTP_PASSWORD`` or ``delivery.secrets_file``)."""
    sender: str = "sedm-drp@localhost"
    """``From:`` address."""
    timeout_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class ReportSettings:
    """Who receives the night report."""

    recipients: str = ""
    """Comma-separated addresses of the final report e-mail; empty disables it."""
    attach_figures: bool = True
    """Attach the night's verification figures (up to ``max_attach_mb``)."""
    max_attach_mb: float = 15.0
    """Largest total of attachments; beyond it the figures are left out (and the body says so)."""
    email_requesters: bool = False
    """Also e-mail each accepted spectrum to its requester (the frame's ``EMAIL`` card)."""


@dataclass(frozen=True, kw_only=True)
class SlackSettings:
    """Verification figures to a Slack channel."""

    token: str = secret_field()
    """Bot token (secret: ``SEDMTUI_SLACK_TOKEN``); with ``channel_id`` figures are uploaded."""
    channel_id: str = ""
    """Channel id (``C0...``) of ``pysedm-report``."""
    webhook_url: str = secret_field()
    """Incoming-webhook URL (secret): a text message instead of the figure when no token is set."""
    api_url: str = "https://slack.com/api"
    timeout_s: float = 30.0

    @property
    def configured(self) -> bool:
        """A bot token with a channel, or a webhook."""
        return bool((self.token and self.channel_id) or self.webhook_url)


@dataclass(frozen=True, kw_only=True)
class TnsSettings:
    """Classification reports to the Transient Name Server, only for spectra the observer marks."""

    enabled: bool = False
    """Send classification reports at all."""
    base_url: str = "https://sandbox.wis-tns.org/api"
    """API root; the sandbox by default (``https://www.wis-tns.org/api`` for real reports)."""
    bot_id: int = 0
    bot_name: str = ""
    api_key: str = secret_field()
    """Bot API key (secret: ``SEDMTUI_TNS_API_KEY``)."""
    group_id: int = 48
    """TNS group of the reporting team."""
    instrument_id: int = 149
    """TNS instrument id of P60/SEDM."""
    reporter: str = "SEDM robot"
    timeout_s: float = 60.0

    @property
    def configured(self) -> bool:
        """Enabled, with a bot and a key."""
        return bool(self.enabled and self.bot_id and self.api_key)


SECTIONS: dict[str, type] = {
    "delivery": DeliverySettings,
    "fritz": FritzSettings,
    "smtp": SmtpSettings,
    "report": ReportSettings,
    "slack": SlackSettings,
    "tns": TnsSettings,
}
"""The configuration tables defined here, in the order ``sedmtui --settings`` lists them."""
