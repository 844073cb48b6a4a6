"""Send windows in the lead's time zone, across daylight-saving changes."""

from datetime import UTC, datetime

from models.journey import SendWindow
from workflows.schedule import next_window_opening, to_local, zone_for

WEEKDAY_MORNINGS = SendWindow.model_validate({"start": "09:00", "end": "11:00"})


def test_a_window_stays_at_nine_local_across_the_spring_change() -> None:
    new_york = zone_for("America/New_York", "UTC")
    # Friday 6 March 2026, 17:00 in New York; clocks go forward on Sunday 8th.
    friday_evening = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)

    opening = next_window_opening(friday_evening, WEEKDAY_MORNINGS, new_york)

    # Monday 9 March, 09:00 EDT is 13:00 UTC (it was 14:00 UTC the week before).
    assert opening == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_a_window_stays_at_nine_local_across_the_autumn_change() -> None:
    london = zone_for("Europe/London", "UTC")
    # Saturday 24 October 2026; clocks go back on Sunday 25th.
    saturday = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)

    opening = next_window_opening(saturday, WEEKDAY_MORNINGS, london)

    assert opening == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)


def test_inside_the_window_the_touch_goes_at_once() -> None:
    london = zone_for("Europe/London", "UTC")
    tuesday_ten_local = datetime(2026, 7, 7, 9, 0, tzinfo=UTC)

    assert next_window_opening(tuesday_ten_local, WEEKDAY_MORNINGS, london) == (
        tuesday_ten_local
    )


def test_a_missing_or_unknown_zone_falls_back_to_the_default() -> None:
    sunday = datetime(2026, 7, 5, 12, 0, tzinfo=UTC)
    tokyo_default = zone_for(None, "Asia/Tokyo")
    unknown = zone_for("Mars/Olympus_Mons", "Asia/Tokyo")

    assert next_window_opening(sunday, WEEKDAY_MORNINGS, tokyo_default) == datetime(
        2026, 7, 6, 0, 0, tzinfo=UTC
    )
    assert str(unknown) == "Asia/Tokyo"


def test_a_repeated_hour_maps_each_instant_to_its_own_wall_time() -> None:
    new_york = zone_for("America/New_York", "UTC")

    first = to_local(datetime(2026, 11, 1, 5, 30, tzinfo=UTC), new_york)
    second = to_local(datetime(2026, 11, 1, 6, 30, tzinfo=UTC), new_york)

    assert (first.hour, first.fold) == (1, 0)
    assert (second.hour, second.fold) == (1, 1)
