"""Notifiers that tell approvers about approval requests (and the operator about full
approval queues): a signed JSON webhook, a Slack-compatible chat webhook and SMTP e-mail,
fed in batches by a :class:`NotificationDispatcher` that retries and never blocks a task.

Importing this package loads no HTTP or SMTP client; each notifier imports its own when it
first sends. See docs/notifications.md.
"""

from handrail.notify.base import Notification, NotificationKind, Notifier, fields_of
from handrail.notify.dispatcher import NotificationDispatcher, NotifierStats
from handrail.notify.email import EmailNotifier
from handrail.notify.slack import SlackNotifier
from handrail.notify.webhook import WebhookNotifier, verify_signature

__all__ = [
    "EmailNotifier",
    "Notification",
    "NotificationDispatcher",
    "NotificationKind",
    "Notifier",
    "NotifierStats",
    "SlackNotifier",
    "WebhookNotifier",
    "fields_of",
    "verify_signature",
]
