"""When a touch may go out: local send windows in the lead's time zone.

The workflow sandbox hands out `ZoneInfo` objects as proxies that `datetime`
refuses as a `tzinfo`, so local times are worked out here as naive wall-clock
times plus the zone's UTC offset for that wall-clock time.
"""

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


def _offset(zone: ZoneInfo, wall: datetime) -> timedelta:
    offset = zone.utcoffset(wall)
    return offset if offset is not None else timedelta(0)


def to_local(moment: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time in `zone` at the aware instant `moment`."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    for fold in (0, 1):
        guess = utc + _offset(zone, utc)
        wall = utc + _offset(zone, guess.replace(fold=fold))
        if wall - _offset(zone, wall.replace(fold=fold)) == utc:
            return wall.replace(fold=fold)
    return utc + _offset(zone, utc)


def to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a naive wall-clock time in `zone` names (the earlier one
    when the clock repeats an hour; shifted by the gap when it skips one)."""
    return (wall - _offset(zone, wall)).replace(tzinfo=UTC)


def next_window_opening(now: datetime, window: SendWindow, zone: ZoneInfo) -> datetime:
    """`now` when it is inside a send window, else when the next one opens (UTC).

    Local dates are walked one by one and each window edge is placed in the zone
    on its own date, so a window at 09:00 stays at 09:00 local across a
    daylight-saving change.
    """
    local_now = to_local(now, zone)
    for offset in range(8):
        day = local_now.date() + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        opens = to_utc(datetime.combine(day, window.start), zone)
        closes = to_utc(datetime.combine(day, window.end), zone)
        if now < opens:
            return opens
        if now < closes:
            return now
    message = f"expected a send window within a week on {window.days}, found none"
    raise ValueError(message)
