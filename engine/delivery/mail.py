"""The night report by e-mail: the message is built by a pure function, sent by a thin client.

SMTP has no way to ask the server what it already accepted, so an e-mail is attempted again only
when it provably did not go out (the server could not be reached, or refused the sender or a
recipient with a temporary 4xx reply before the message was transferred). Once the message data
have been sent, a lost reply makes the row ``failed`` with the reason: it is never resent
automatically.
"""

from __future__ import annotations

import email.policy
import smtplib
from email.message import EmailMessage
from pathlib import Path

from engine.delivery.ledger import Outcome
from engine.delivery.settings import SmtpSettings


def report_message(*, night: str, sender: str, recipients: list[str], body: str,
                   figures: list[tuple[str, bytes]], max_attach_bytes: int) -> EmailMessage:
    """The final report e-mail.

    Parameters
    ----------
    night : str
        UT night ``YYYYMMDD`` (the subject is ``SEDM DRP Report for YYYYMMDD``).
    sender : str
        ``From:``.
    recipients : list of str
        ``To:``.
    body : str
        The final report text (comment and table).
    figures : list of (name, bytes)
        PNG verification figures to attach.
    max_attach_bytes : int
        When the figures add up to more, none is attached and the body says so.
    """
    msg = EmailMessage()
    msg["Subject"] = f"SEDM DRP Report for {night}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    total = sum(len(b) for _n, b in figures)
    if figures and total > max_attach_bytes:
        body += (f"\n\n({len(figures)} verification figures, {total / 1e6:.1f} MB, were not attached: "
                 f"more than {max_attach_bytes / 1e6:.0f} MB. They are in the night's directory.)\n")
        figures = []
    msg.set_content(body)
    for name, data in figures:
        msg.add_attachment(data, maintype="image", subtype="png", filename=name)
    return msg


def target_message(*, sender: str, recipient: str, subject: str, body: str,
                   files: list[tuple[str, bytes]]) -> EmailMessage:
    """A per-target e-mail to the requester: the spectrum text and its verification figure attached."""
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, sender, recipient
    msg.set_content(body)
    for name, data in files:
        if name.endswith(".png"):
            msg.add_attachment(data, maintype="image", subtype="png", filename=name)
        else:
            msg.add_attachment(data.decode(errors="replace"), subtype="plain", filename=name)
    return msg


def target_text(row: dict, night: str) -> str:
    """The body of a per-target e-mail (pure; from the planner's exposure row)."""
    lines = [f"SEDM observed {row.get('object')} on {night} at {row['obs_id'].replace('_', ':')} UT.",
             f"Quality {row['quality']} ({row.get('quality_reason') or '-'}), S/N {row.get('s2n') or 0:.0f}."]
    if row.get("type"):
        z = f" z = {row['z']:.4f}" if row.get("z") is not None else ""
        lines.append(f"SNID: {row.get('subtype') or row['type']}{z} (rlap {row.get('rlap') or 0:.1f}).")
    lines.append("The spectrum (wavelength, flux, 1-sigma error) and its verification figure are attached.")
    return "\n".join(lines) + "\n"


def night_figures(redux_dir: Path, names: list[str]) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the figures that exist."""
    return [(n, (redux_dir / n).read_bytes()) for n in names if n and (redux_dir / n).is_file()]


def send(settings: SmtpSettings, msg: EmailMessage, recipients: list[str]) -> Outcome:
    """Send one message through the configured server, step by step (see the module docstring)."""
    try:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome("retry", f"cannot connect to the mail server {settings.host}:{settings.port}: {exc}")
    try:
        try:
            smtp.ehlo()
            if settings.starttls:
                smtp.starttls()
                smtp.ehlo()
            if settings.username:
                smtp.login(settings.username, settings.password)
            code, reply = smtp.mail(msg["From"])
            if code != 250:
                return _refused("sender", code, reply)
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    return _refused(f"recipient {rcpt}", code, reply)
        except smtplib.SMTPAuthenticationError as exc:
            return Outcome("failed", f"the mail server refused the login of {settings.username} ({exc.smtp_code})")
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome("retry", f"the mail server {settings.host} failed before the message was sent: "
                                    f"{_text(exc, settings)}")
        try:
            # bytes go out as they are: the lines must already end in CRLF (the SMTP policy)
            code, reply = smtp.data(msg.as_bytes(policy=email.policy.SMTP))
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            if isinstance(exc, smtplib.SMTPDataError) and 400 <= exc.smtp_code < 500:
                return Outcome("retry", f"the mail server deferred the message ({exc.smtp_code})")
            if isinstance(exc, smtplib.SMTPDataError):
                return Outcome("failed", f"the mail server refused the message ({exc.smtp_code} "
                                         f"{exc.smtp_error.decode(errors='replace')})")
            return Outcome("unknown", f"no reply from the mail server after the message was sent ({_text(exc, settings)})")
        if code != 250:  # smtplib returns (not raises) the final reply to the message
            return _refused("message", code, reply)
        return Outcome("sent", f"accepted by {settings.host} for {', '.join(recipients)}",
                       remote_id=msg["Message-ID"] or reply.decode(errors="replace")[:80])
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _refused(what: str, code: int, reply: bytes) -> Outcome:
    state = "retry" if 400 <= code < 500 else "failed"
    return Outcome(state, f"the mail server refused the {what} ({code} {reply.decode(errors='replace')})")


def _text(exc: BaseException, settings: SmtpSettings) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace(settings.password, "***") if settings.password else text
