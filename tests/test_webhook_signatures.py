"""Signature timestamps: the refusal says which way the clock is off."""

import pytest

from webhooks.signatures import SignatureError, check_timestamp


def test_a_stale_timestamp_is_refused_as_old() -> None:
    with pytest.raises(SignatureError) as refused:
        check_timestamp("1000000", now=1010000, tolerance=300)

    assert "10000 seconds old" in str(refused.value)


def test_a_timestamp_from_the_future_is_refused_as_ahead() -> None:
    with pytest.raises(SignatureError) as refused:
        check_timestamp("1099999", now=1000000, tolerance=300)

    assert "99999 seconds ahead" in str(refused.value)


def test_a_timestamp_within_the_tolerance_is_accepted() -> None:
    check_timestamp("1000000", now=1000299, tolerance=300)
