"""AGE as kubectl prints it: `duration.HumanDuration` from k8s.io/apimachinery."""

from __future__ import annotations

import pytest

from controller.cli import age

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
YEAR = 365 * DAY


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0, "0s", id="now"),
        pytest.param(-1, "0s", id="skew-under-two-seconds"),
        pytest.param(-5, "<invalid>", id="future"),
        pytest.param(95, "95s", id="95s"),
        pytest.param(119, "119s", id="seconds-until-two-minutes"),
        pytest.param(120, "2m", id="2m"),
        pytest.param(200, "3m20s", id="3m20s"),
        pytest.param(9 * MINUTE + 59, "9m59s", id="9m59s"),
        pytest.param(10 * MINUTE + 30, "10m", id="seconds-dropped-from-10m"),
        pytest.param(45 * MINUTE, "45m", id="45m"),
        pytest.param(179 * MINUTE, "179m", id="minutes-until-three-hours"),
        pytest.param(3 * HOUR, "3h", id="3h"),
        pytest.param(5 * HOUR + 12 * MINUTE, "5h12m", id="5h12m"),
        pytest.param(8 * HOUR + 59 * MINUTE, "8h", id="minutes-dropped-from-8h"),
        pytest.param(30 * HOUR, "30h", id="30h"),
        pytest.param(47 * HOUR + 59 * MINUTE, "47h", id="hours-until-two-days"),
        pytest.param(2 * DAY, "2d", id="2d"),
        pytest.param(2 * DAY + 21 * HOUR, "2d21h", id="2d21h"),
        pytest.param(7 * DAY + 23 * HOUR, "7d23h", id="7d23h"),
        pytest.param(8 * DAY + 5 * HOUR, "8d", id="hours-dropped-from-8d"),
        pytest.param(200 * DAY, "200d", id="200d"),
        pytest.param(2 * YEAR - DAY, "729d", id="days-until-two-years"),
        pytest.param(2 * YEAR, "2y", id="2y"),
        pytest.param(3 * YEAR + 5 * DAY, "3y5d", id="3y5d"),
        pytest.param(8 * YEAR + 100 * DAY, "8y", id="days-dropped-from-8y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: int, expected: str) -> None:
    assert age.human_duration(seconds) == expected


def test_fractions_of_a_second_are_truncated() -> None:
    assert age.human_duration(95.99) == "95s"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        pytest.param(1_000_000 - 200, "3m20s", id="epoch-seconds"),
        pytest.param("1970-01-12T13:43:20Z", "3m20s", id="rfc3339"),
        pytest.param(None, "<unknown>", id="missing"),
        pytest.param("yesterday", "<unknown>", id="unparseable"),
    ],
)
def test_since(timestamp: float | str | None, expected: str) -> None:
    assert age.since(timestamp, now=1_000_000 + 0.5) == expected
