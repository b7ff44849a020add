"""One's notifications and how they are e-mailed."""

from __future__ import annotations

from collections.abc import Sequence

from fabriek.domain.notifications import (
    Notification,
    NotificationSettings,
    NotificationSettingsUpdate,
)
from fabriek.sdk.core import Listing, SubClient


class NotificationsClient(SubClient):
    """`client.notifications`: what the factory told the signed-in user."""

    def list(
        self, limit: int = 100, offset: int = 0, unread: bool | None = None
    ) -> Listing[Notification]:
        """One's own notifications, newest first; `unread=True` for only the unread ones."""
        params = {"limit": limit, "offset": offset, "unread": unread}
        return self._core.listing(Notification, "/notifications", params)

    def read(self, notification_id: int) -> Notification:
        """Mark one notification read."""
        answer = self._core.post(f"/notifications/{notification_id}/read")
        return Notification.model_validate(answer)

    def read_all(self) -> int:
        """Mark every unread notification read; how many were."""
        return int(self._core.post("/notifications/read-all")["marked"])

    def settings(self) -> NotificationSettings:
        """How one's notifications are e-mailed."""
        return NotificationSettings.model_validate(self._core.get("/notifications/settings"))

    def update_settings(
        self, delivery: str | None = None, muted: Sequence[str] | None = None
    ) -> NotificationSettings:
        """Change delivery (digest, immediate, none) and/or replace the muted kinds."""
        fields = {"delivery": delivery, "muted": None if muted is None else list(muted)}
        change = NotificationSettingsUpdate.model_validate(
            {k: v for k, v in fields.items() if v is not None}
        )
        answer = self._core.send("PUT", "/notifications/settings", change)
        return NotificationSettings.model_validate(answer)
