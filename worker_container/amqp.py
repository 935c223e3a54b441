"""The worker side's adapter between taskcore's broker messages and aio-pika's.

The wire format is :mod:`taskcore.message`'s; ``functions/chalicelib/amqp.py`` is this module's
twin on the edge, which the workers never import (nor the edge them), and taskcore imports no
broker client.
"""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from taskcore.message import Envelope


def message(envelope: Envelope) -> aio_pika.Message:
    """The aio-pika message to publish ``envelope`` as (under ``envelope.routing_key``)."""
    return aio_pika.Message(envelope.body, **envelope.properties)


def envelope_of(message: AbstractIncomingMessage) -> Envelope:
    """A received message as taskcore describes it, properties and headers whole."""
    return Envelope(
        message.body,
        message.routing_key or "",
        message_id=message.message_id,
        type=message.type,
        headers=dict(message.headers or {}),
        content_type=message.content_type,
        delivery_mode=message.delivery_mode,
    )
