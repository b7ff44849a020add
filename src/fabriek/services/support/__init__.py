"""The support and service centre: tickets (opened, answered, handed over, with attachments
and the context their author shares), the e-mail that carries their conversation both ways,
the periodic chores that keep their service levels, a desk's monthly report and the hub
desk, the expertise network and the knowledge base.

The ticket workflow the API and the portal call is importable from here; everything else
from its own module.
"""

from fabriek.services.support.attachments import open_attachment, receive_attachment
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.conversation import (
    change_status,
    hand_over,
    post_message,
    update_ticket,
)
from fabriek.services.support.opening import open_ticket
from fabriek.services.support.tickets import categories, get_ticket, list_tickets

__all__ = [
    "SupportOptions",
    "categories",
    "change_status",
    "get_ticket",
    "hand_over",
    "list_tickets",
    "open_attachment",
    "open_ticket",
    "post_message",
    "receive_attachment",
    "update_ticket",
]
