"""The deferral calculation (frequency cap, quiet hours), address checks and
the rate-limit wait, computed directly."""

from datetime import UTC, datetime, time, timedelta

import pytest

from activities.email import address_problem
from activities.send_policy import SendPolicy
from activities.sendgrid_backend import rate_limit_wait

NIGHTS = SendPolicy(cap=0, quiet_start=time(21, 0), quiet_end=time(8, 0))
CAP_THREE = SendPolicy(
    cap=3, period=timedelta(days=7), quiet_start=time(0, 0), quiet_end=time(0, 0)
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_touch_under_the_cap_outside_quiet_hours_goes_now() -> None:
    now = utc(2026, 12, 4, 12, 0)
    sends = [now - timedelta(days=1), now - timedelta(days=2)]

    assert CAP_THREE.defer_until(now, sends, "Europe/London") is None


def test_touch_over_the_cap_waits_until_the_oldest_send_leaves_the_window() -> None:
    now = utc(2026, 12, 4, 12, 0)
    oldest = now - timedelta(days=6, hours=20)
    sends = [oldest, now - timedelta(days=3), now - timedelta(hours=1)]

    until = CAP_THREE.defer_until(now, sends, "Europe/London")

    assert until == oldest + timedelta(days=7)
    assert until == utc(2026, 12, 4, 16, 0)


def test_sends_older_than_the_period_do_not_count_towards_the_cap() -> None:
    now = utc(2026, 12, 4, 12, 0)
    sends = [now - timedelta(days=8), now - timedelta(days=7, seconds=1), now]

    assert CAP_THREE.defer_until(now, sends, None) is None


def test_touch_in_quiet_hours_waits_for_the_morning_in_the_leads_zone() -> None:
    # 23:30 in New York (UTC-5 in December) is 04:30 UTC the next day.
    now = utc(2026, 12, 5, 4, 30)

    until = NIGHTS.defer_until(now, [], "America/New_York")

    assert until == utc(2026, 12, 5, 13, 0)  # 08:00 in New York


def test_quiet_hours_after_midnight_end_the_same_morning() -> None:
    now = utc(2026, 12, 5, 2, 0)  # 03:00 in Berlin

    until = NIGHTS.defer_until(now, [], "Europe/Berlin")

    assert until == utc(2026, 12, 5, 7, 0)  # 08:00 in Berlin


def test_daytime_in_the_leads_zone_is_not_quiet_even_when_utc_is_night() -> None:
    now = utc(2026, 12, 5, 23, 0)  # 08:00 the next day in Tokyo

    assert NIGHTS.defer_until(now, [], "Asia/Tokyo") is None


def test_missing_or_unknown_time_zone_falls_back_to_the_default() -> None:
    policy = SendPolicy(
        cap=0,
        quiet_start=time(21, 0),
        quiet_end=time(8, 0),
        default_time_zone="Asia/Tokyo",
    )
    now = utc(2026, 12, 5, 13, 0)  # 22:00 in Tokyo, 13:00 in UTC

    assert policy.defer_until(now, [], None) == utc(2026, 12, 5, 23, 0)
    assert policy.defer_until(now, [], "Not/AZone") == utc(2026, 12, 5, 23, 0)


def test_quiet_hours_end_is_right_across_the_spring_dst_change() -> None:
    # Europe/London goes from GMT to BST at 01:00 UTC on 28 March 2027.
    policy = SendPolicy(cap=0, quiet_start=time(21, 0), quiet_end=time(8, 0))
    now = utc(2027, 3, 27, 22, 0)  # 22:00 GMT

    until = policy.defer_until(now, [], "Europe/London")

    assert until == utc(2027, 3, 28, 7, 0)  # 08:00 BST


def test_cap_release_that_lands_in_quiet_hours_moves_on_to_the_morning() -> None:
    policy = SendPolicy(
        cap=1, period=timedelta(days=7), quiet_start=time(21, 0), quiet_end=time(8, 0)
    )
    now = utc(2026, 12, 4, 12, 0)
    sends = [utc(2026, 11, 27, 22, 0)]  # released at 22:00 UTC today: quiet

    until = policy.defer_until(now, sends, "UTC")

    assert until == utc(2026, 12, 5, 8, 0)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("person@example.com", None),
        ("first.last+tag@sub.example.co.uk", None),
        ("person@bücher.example", None),
        ("pérson@example.com", "non-ASCII"),
        ("person@@example.com", "exactly one '@'"),
        ("person example@example.com", "spaces"),
        ("@example.com", "nothing before or after"),
        ("person@", "nothing before or after"),
        (".person@example.com", "cannot have there"),
        ("person@example", "not a domain name"),
        ("person@-example.com", "not a domain name"),
        ("person@example.123", "ends in a number"),
        ("x" * 65 + "@example.com", "at most 64"),
    ],
)
def test_address_check_names_the_problem(address: str, problem: str | None) -> None:
    found = address_problem(address)

    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
        assert address not in found


def test_rate_limit_wait_runs_until_the_reset_header() -> None:
    headers = {"X-RateLimit-Reset": "1000"}

    assert rate_limit_wait(headers, now=998.5) == timedelta(seconds=1.5)


def test_rate_limit_wait_is_at_least_a_second_and_at_most_fifteen_minutes() -> None:
    assert rate_limit_wait({"X-RateLimit-Reset": "900"}, now=1000) == timedelta(
        seconds=1
    )
    assert rate_limit_wait({"X-RateLimit-Reset": "99999"}, now=0) == timedelta(
        minutes=15
    )


def test_rate_limit_wait_without_headers_uses_the_default() -> None:
    assert rate_limit_wait({}, now=0) == timedelta(seconds=10)
    assert rate_limit_wait({"X-RateLimit-Reset": "soon"}, now=0) == timedelta(
        seconds=10
    )
