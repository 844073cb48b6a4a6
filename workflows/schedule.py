"""When a touch may go out: local send windows in the lead's time zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.journey import WEEKDAYS, SendWindow


def zone_for(time_zone: str | None, default: str) -> ZoneInfo:
    """The lead's zone, or the default when it is missing or unknown."""
    for name in (time_zone, default):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def next_window_opening(now: datetime, window: SendWindow, zone: ZoneInfo) -> datetime:
    """`now` when it is inside a send window, else when the next one opens (UTC).

    Local dates are walked one by one and each window edge is placed in the zone
    on its own date, so a window at 09:00 stays at 09:00 local across a
    daylight-saving change.
    """
    local_now = now.astimezone(zone)
    for offset in range(8):
        day = local_now.date() + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        opens = datetime.combine(day, window.start, tzinfo=zone).astimezone(UTC)
        closes = datetime.combine(day, window.end, tzinfo=zone).astimezone(UTC)
        if now < opens:
            return opens
        if now < closes:
            return now
    message = f"no send window within a week for days {window.days}"
    raise ValueError(message)
