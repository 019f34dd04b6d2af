"""Sending the outbox, after the commits that wrote it: each message is claimed in a unit of work of its
own, sent, and marked sent — or scheduled again with a back-off when its channel is down. Run by
`flask --app shop notify send` (cron, any number of hosts), and for a test message right after the settings
page has answered. No database transaction is open while a message goes out."""
from __future__ import annotations

import secrets

from .. import clock, unit_of_work
from . import services
from .channels import ChannelError, send


def send_due(*, only=None, limit: int = 200) -> dict[str, int]:
    sender = secrets.token_hex(8)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    now = clock.now()
    for message_id in unit_of_work.read(lambda: services.due_ids(now, limit, only)):
        message = unit_of_work.run(lambda: services.claim(message_id, sender, now))
        if message is None:
            continue  # another sender has it
        channel, recipient, subject, body, is_test = (message.channel, message.recipient, message.subject,
                                                      message.body, message.event == "test")
        settings = unit_of_work.read(lambda: services.settings_for(channel))
        unit_of_work.discard()  # no transaction stays open while the message goes out
        if settings is None:
            unit_of_work.run(lambda: services.mark_failed(message_id, sender, "channel_disabled", now, give_up=True))
            counts["failed"] += 1
            continue
        try:
            send(channel, settings, recipient, subject, body)
        except ChannelError as err:
            reason = str(err)
            unit_of_work.run(lambda: services.mark_failed(message_id, sender, reason, clock.now(), give_up=is_test))
            counts["retry"] += 1
            continue
        unit_of_work.run(lambda: services.mark_sent(message_id, sender, clock.now()))
        counts["sent"] += 1
    return counts
