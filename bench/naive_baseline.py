"""The naive way to send a campaign, as the baseline the project is measured against.

One Celery task per email; each task renders the template with plain jinja2, builds an
``EmailMessage`` and sends it with smtplib over a new connection. Celery's defaults otherwise
(prefetch, early acks). Run by ``bench.naive_run`` as::

    celery -A bench.naive_baseline worker -c 2

Configured by environment: ``NAIVE_BROKER_URL``, ``NAIVE_SMTP_HOST``, ``NAIVE_SMTP_PORT``.
"""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from pathlib import Path

import jinja2
from celery import Celery

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE = "newsletter"
SENDER = "Bench News <news@bench.example>"
CAMPAIGN_NAME = "Naive bench"
SEND_EMAIL = "naive.send_email"

app = Celery(
    "naive_baseline", broker=os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/0")
)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

# The usual script: one environment with a file loader, which caches compiled templates.
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR / TEMPLATE),
    autoescape=jinja2.select_autoescape(["html"]),
)


def build_message(email: str, fields: dict[str, str]) -> EmailMessage:
    context = {
        **fields,
        "email": email,
        "campaign_name": CAMPAIGN_NAME,
        "unsubscribe_url": f"https://mail.bench.example/unsubscribe?email={email}",
    }
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = email
    message["Subject"] = _templates.get_template("subject.txt").render(context).strip()
    message.set_content(_templates.get_template("body.txt").render(context))
    message.add_alternative(_templates.get_template("body.html").render(context), subtype="html")
    return message


@app.task(name=SEND_EMAIL)
def send_email(email: str, fields: dict[str, str]) -> None:
    message = build_message(email, fields)
    with smtplib.SMTP(os.environ["NAIVE_SMTP_HOST"], int(os.environ["NAIVE_SMTP_PORT"])) as smtp:
        smtp.send_message(message)
