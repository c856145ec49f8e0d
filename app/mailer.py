"""Email to people (alerts to the installing admin), over SMTP with the server's certificate
checked: STARTTLS on a plain connection (port 587) or implicit TLS (port 465, RFC 8314)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from app.settings import Settings


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificate and host name verified (`create_default_context`): the system's CAs, or
    SMTP_CA_FILE's. smtplib's own default for `starttls()` checks nothing."""
    return ssl.create_default_context(cafile=settings.smtp_ca_file or None)


def send_email(settings: Settings, to: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.smtp_from, to, subject
    message.set_content(body)
    timeout = settings.http_timeout
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                context=tls_context(settings))
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=tls_context(settings))
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)
