"""describe(): a short English phrase per expression."""

from __future__ import annotations

import pytest

from conveyor import expressions


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("cron(0 12 ? * MON-FRI *)", "at 12:00 on MON-FRI"),
        ("@daily", "at 00:00"),
        ("0 0 * * 7", "at 00:00 on SUN"),
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("*/10 * * * * *", "every 10 seconds"),
        ("5 * * * *", "at minute 5 past every hour"),
        ("15 */2 * * *", "at minute 15 past hours 0-22 every 2"),
        ("0,30 9-17 * * *", "every 30 minutes during hours 9-17"),
        ("cron(0/5 8-17 L * ? 2026-2030)",
         "every 5 minutes during hours 8-17 on the last day of the month in 2026-2030"),
        ("cron(0 10 ? * 6#3 *)", "at 10:00 on the 3rd FRI"),
        ("cron(0 10 ? * FRIL *)", "at 10:00 on the last FRI"),
        ("cron(0 10 15W * ? *)", "at 10:00 on the weekday nearest day 15 of the month"),
        ("0 0 LW * *", "at 00:00 on the last weekday of the month"),
        ("0 0 1 * MON", "at 00:00 on day 1 of the month and on MON"),
        ("0 0 */2 * MON", "at 00:00 on days 1-31 every 2 of the month if it is MON"),
        ("0 0 1 1,7 *", "at 00:00 on day 1 of the month in JAN,JUL"),
        ("rate(1 minute)", "every minute"),
        ("rate(60 minutes)", "every hour"),
        ("rate(5 minutes)", "every 5 minutes"),
        ("rate(2 days)", "every 2 days"),
        ("at(2026-03-29T02:30:00)", "once at 2026-03-29 02:30:00"),
    ],
)  # fmt: skip
def test_describe_reads_as_a_short_phrase(text: str, phrase: str) -> None:
    assert expressions.describe(expressions.parse(text)) == phrase
