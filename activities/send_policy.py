"""When a marketing touch may go out: the frequency cap and quiet hours.

Pure functions of the clock, the lead's time zone and the lead's recent sends,
so the deferral can be computed, and tested, without a database or a worker.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class SendPolicy:
    """At most `cap` marketing emails per lead in any `period` (0: no cap), and
    none between `quiet_start` and `quiet_end` local time (equal: no quiet
    hours; start after end: the quiet hours span midnight)."""

    cap: int = 3
    period: timedelta = timedelta(days=7)
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    default_time_zone: str = "UTC"

    def zone_for(self, name: str | None) -> ZoneInfo:
        """The lead's time zone, or the default when it is missing or unknown."""
        for candidate in (name, self.default_time_zone):
            if not candidate:
                continue
            try:
                return ZoneInfo(candidate.strip())
            except (ZoneInfoNotFoundError, ValueError):
                continue
        return ZoneInfo("UTC")

    def defer_until(
        self, now: datetime, recent_sends: list[datetime], time_zone: str | None
    ) -> datetime | None:
        """The earliest moment after `now` at which the touch may go, or None
        when it may go now. `recent_sends` are the lead's other marketing sends."""
        zone = self.zone_for(time_zone)
        moment = now
        # Leaving quiet hours can run into the cap and the other way round; a
        # few rounds settle it (each round only moves forward).
        for _ in range(8):
            moved = False
            released = cap_released_at(moment, recent_sends, self.cap, self.period)
            if released is not None and released > moment:
                moment, moved = released, True
            ends = quiet_hours_end(moment, zone, self.quiet_start, self.quiet_end)
            if ends is not None and ends > moment:
                moment, moved = ends, True
            if not moved:
                break
        return moment if moment > now else None


def cap_released_at(
    moment: datetime, sends: list[datetime], cap: int, period: timedelta
) -> datetime | None:
    """When the cap lets one more email through, if it is reached at `moment`."""
    if cap <= 0:
        return None
    in_window = sorted(sent for sent in sends if moment - period < sent <= moment)
    if len(in_window) < cap:
        return None
    # The window must lose enough sends to leave room for one more.
    return in_window[len(in_window) - cap] + period


def quiet_hours_end(
    moment: datetime, zone: ZoneInfo, start: time, end: time
) -> datetime | None:
    """The end (in UTC) of the quiet hours `moment` falls in, or None."""
    if start == end:
        return None
    local = moment.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        if not start <= clock < end:
            return None
        end_day = local.date()
    else:
        if end <= clock < start:
            return None
        end_day = local.date() if clock < end else local.date() + timedelta(days=1)
    return _local_to_utc(end_day, end, zone)


def _local_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # A local time that a DST change skips is read with the offset before the
    # change, which lands just after the gap: the earliest real moment.
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)
