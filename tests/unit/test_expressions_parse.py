"""Parsing: every syntax element, canonical text, and every error message (field + text)."""

from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import errors, expressions

CANONICAL = [
    # crontab, 5 fields
    ("0 0 * * *", "0 0 * * *"),
    ("  0   0 *  * *  ", "0 0 * * *"),
    ("0 12 1,15 * *", "0 12 1,15 * *"),
    ("0 0 * * 7", "0 0 * * 0"),
    ("0 0 * * SUN", "0 0 * * 0"),
    ("0 0 * * sun", "0 0 * * 0"),
    ("0 0 * * mon-FRI", "0 0 * * 1-5"),
    ("0 0 * * 5-7", "0 0 * * 0,5,6"),
    ("0 0 * * FRI-SUN", "0 0 * * 0,5,6"),
    ("0 0 * JAN,mar *", "0 0 * 1,3 *"),
    ("0 0 * JAN-MAR/2 *", "0 0 * 1,3 *"),
    ("0 0 * 1-12 *", "0 0 * * *"),
    ("*/15 * * * *", "*/15 * * * *"),
    ("*/1 * * * *", "* * * * *"),
    ("0-59/15 * * * *", "0-45/15 * * * *"),
    ("5/15 * * * *", "5-50/15 * * * *"),
    ("10-40/10 * * * *", "10-40/10 * * * *"),
    # a minute/hour field that does not start with * keeps its DST rule, so it stays spelled out
    ("0-59 * * * *", "0-59 * * * *"),
    ("0 0-23 * * *", "0 0-23 * * *"),
    ("0 0 1-31 * *", "0 0 1-31 * *"),
    ("0 0 */2 * *", "0 0 */2 * *"),
    ("0 0 * * */2", "0 0 * * */2"),
    ("*/5,7 * * * *", "*/60,5,7,10,15,20,25,30,35,40,45,50,55 * * * *"),
    ("0 0 L * *", "0 0 L * *"),
    ("0 0 1,L * *", "0 0 1,L * *"),
    ("0 0 15W * *", "0 0 15W * *"),
    ("0 0 * * 5#3", "0 0 * * 5#3"),
    ("0 0 * * FRI#3", "0 0 * * 5#3"),
    ("0 0 * * FRIL", "0 0 * * 5L"),
    ("0 0 * * 5L", "0 0 * * 5L"),
    # crontab, 6 fields (seconds first); a zero seconds field is the 5-field form
    ("0 0 0 * * *", "0 0 * * *"),
    ("30 0 0 * * *", "30 0 0 * * *"),
    ("*/10 * * * * *", "*/10 * * * * *"),
    ("0-59 * * * * *", "* * * * * *"),
    # shortcuts
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@DAILY", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    # EventBridge cron()
    ("cron(0 12 ? * MON-FRI *)", "cron(0 12 ? * 2-6 *)"),
    ("CRON(0 12 ? * mon *)", "cron(0 12 ? * 2 *)"),
    ("cron( 0 12 ? * MON * )", "cron(0 12 ? * 2 *)"),
    ("cron(0 12 * * ? *)", "cron(0 12 * * ? *)"),
    ("cron(0 12 1-31 * ? *)", "cron(0 12 * * ? *)"),
    ("cron(0 12 ? * 1-7 *)", "cron(0 12 ? * * *)"),
    ("cron(0 12 ? * SUN-SAT *)", "cron(0 12 ? * * *)"),
    ("cron(0/15 * ? * * *)", "cron(0-45/15 * ? * * *)"),
    ("cron(*/15 * ? * * *)", "cron(*/15 * ? * * *)"),
    ("cron(5/20 8-17 ? * * *)", "cron(5-45/20 8-17 ? * * *)"),
    ("cron(0 8 L * ? *)", "cron(0 8 L * ? *)"),
    ("cron(0 8 LW * ? *)", "cron(0 8 LW * ? *)"),
    ("cron(0 8 15W * ? *)", "cron(0 8 15W * ? *)"),
    ("cron(0 8 1,15,L * ? *)", "cron(0 8 1,15,L * ? *)"),
    ("cron(0 8 ? * 6L *)", "cron(0 8 ? * 6L *)"),
    ("cron(0 8 ? * FRIL *)", "cron(0 8 ? * 6L *)"),
    ("cron(0 8 ? * MON#2 *)", "cron(0 8 ? * 2#2 *)"),
    ("cron(0 8 ? * 2#2 *)", "cron(0 8 ? * 2#2 *)"),
    ("cron(0 8 ? * L *)", "cron(0 8 ? * 7 *)"),
    ("cron(0 8 1 JAN-MAR ? *)", "cron(0 8 1 1-3 ? *)"),
    ("cron(0 8 ? * 1 2026-2030)", "cron(0 8 ? * 1 2026-2030)"),
    ("cron(0 8 ? * 1 2026,2028)", "cron(0 8 ? * 1 2026,2028)"),
    ("cron(0 8 ? * 1 1970-2199)", "cron(0 8 ? * 1 *)"),
    ("cron(0 8 ? * 1 2020/5)", "cron(0 8 ? * 1 2020-2195/5)"),
    ("cron(0 0 29 2 ? 2028)", "cron(0 0 29 2 ? 2028)"),
    # rate()
    ("rate(1 minute)", "rate(1 minute)"),
    ("rate(5 minutes)", "rate(5 minutes)"),
    ("RATE(5 Minutes)", "rate(5 minutes)"),
    ("rate(90 minutes)", "rate(90 minutes)"),
    ("rate(60 minutes)", "rate(1 hour)"),
    ("rate(120 minutes)", "rate(2 hours)"),
    ("rate(1440 minutes)", "rate(1 day)"),
    ("rate(24 hours)", "rate(1 day)"),
    ("rate(1 day)", "rate(1 day)"),
    ("rate(7 days)", "rate(7 days)"),
    # at()
    ("at(2026-03-01T10:00:00)", "at(2026-03-01T10:00:00)"),
    ("at( 2026-03-01T10:00:00 )", "at(2026-03-01T10:00:00)"),
    ("AT(2199-12-31T23:59:59)", "at(2199-12-31T23:59:59)"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_parse_gives_canonical_text_that_parses_to_the_same_expression(text: str, canonical: str) -> None:
    expr = expressions.parse(text)
    assert expr.text == canonical
    assert expressions.parse(canonical) == expr
    assert expressions.parse(canonical).text == canonical
    assert str(expr) == canonical


@pytest.mark.parametrize(
    ("text", "kind"),
    [("0 0 * * *", "cron"), ("@daily", "cron"), ("cron(0 0 * * ? *)", "cron"), ("rate(1 hour)", "rate"),
     ("at(2026-01-01T00:00:00)", "at")],
)  # fmt: skip
def test_kind_names_the_expression_family(text: str, kind: str) -> None:
    assert expressions.parse(text).kind == kind


def test_expressions_are_frozen_hashable_values_equal_by_canonical_text() -> None:
    a = expressions.parse("@daily")
    b = expressions.parse("0 0 * * *")
    c = expressions.parse("0 0 * * 0")
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert len({a, b, c, expressions.parse("0 0 * * SUN")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.text = "x"  # type: ignore[misc]


def test_dialects_with_the_same_fields_are_different_expressions() -> None:
    # crontab ORs a restricted day-of-month with a restricted day-of-week; cron() cannot.
    assert expressions.parse("0 0 * * 1").text != expressions.parse("cron(0 0 ? * 2 *)").text


FIELD_ERRORS = [
    # (text, field, message)
    ("cron(0 12 ? * MOX *)", "expression.day-of-week",
     'expression.day-of-week: "MOX" is not a weekday name (allowed: SUN-SAT or 1-7)'),
    ("0 12 * * MOX", "expression.day-of-week",
     'expression.day-of-week: "MOX" is not a weekday name (allowed: SUN-SAT or 0-7)'),
    ("cron(0 12 ? * 0 *)", "expression.day-of-week",
     'expression.day-of-week: "0" is out of range (allowed: SUN-SAT or 1-7)'),
    ("cron(0 12 ? * 8 *)", "expression.day-of-week",
     'expression.day-of-week: "8" is out of range (allowed: SUN-SAT or 1-7)'),
    ("0 0 * * 8", "expression.day-of-week", 'expression.day-of-week: "8" is out of range (allowed: SUN-SAT or 0-7)'),
    ("cron(60 12 ? * * *)", "expression.minute", 'expression.minute: "60" is out of range (allowed: 0-59)'),
    ("x 0 * * *", "expression.minute", 'expression.minute: "x" is not a number (allowed: 0-59)'),
    ("1-x 0 * * *", "expression.minute", 'expression.minute: "x" in "1-x" is not a number (allowed: 0-59)'),
    ("cron(0 24 ? * * *)", "expression.hour", 'expression.hour: "24" is out of range (allowed: 0-23)'),
    ("60 0 0 * * *", "expression.second", 'expression.second: "60" is out of range (allowed: 0-59)'),
    ("cron(0 12 0 * ? *)", "expression.day-of-month", 'expression.day-of-month: "0" is out of range (allowed: 1-31)'),
    ("cron(0 12 32 * ? *)", "expression.day-of-month",
     'expression.day-of-month: "32" is out of range (allowed: 1-31)'),
    ("0 0 ½ * *", "expression.day-of-month", 'expression.day-of-month: "½" is not a number (allowed: 1-31)'),
    ("cron(0 12 32W * ? *)", "expression.day-of-month",
     'expression.day-of-month: "32" is out of range (allowed: 1-31)'),
    ("0 0 1W5 * *", "expression.day-of-month", 'expression.day-of-month: "1W5" is not a number (allowed: 1-31)'),
    ("cron(0 12 L-3 * ? *)", "expression.day-of-month",
     'expression.day-of-month: "L-3" is not supported (allowed: 1-31, L, LW, nW)'),
    ("cron(0 12 1 13 ? *)", "expression.month", 'expression.month: "13" is out of range (allowed: JAN-DEC or 1-12)'),
    ("0 0 * 0 *", "expression.month", 'expression.month: "0" is out of range (allowed: JAN-DEC or 1-12)'),
    ("cron(0 12 1 JAX ? *)", "expression.month",
     'expression.month: "JAX" is not a month name (allowed: JAN-DEC or 1-12)'),
    ("cron(0 12 1 * ? 1969)", "expression.year", 'expression.year: "1969" is out of range (allowed: 1970-2199)'),
    ("cron(0 12 1 * ? 2200)", "expression.year", 'expression.year: "2200" is out of range (allowed: 1970-2199)'),
    ("cron(0 12 1 * ? abc)", "expression.year", 'expression.year: "abc" is not a number (allowed: 1970-2199)'),
    ("cron(0 12 ? * MON#6 *)", "expression.day-of-week",
     'expression.day-of-week: "MON#6": the week number after # must be 1-5 (allowed: SUN-SAT or 1-7, day#1-5)'),
    ("cron(0 12 ? * MON#0 *)", "expression.day-of-week",
     'expression.day-of-week: "MON#0": the week number after # must be 1-5 (allowed: SUN-SAT or 1-7, day#1-5)'),
    ("0 0 * * MON#x", "expression.day-of-week",
     'expression.day-of-week: "MON#x": the week number after # must be 1-5 (allowed: SUN-SAT or 0-7, day#1-5)'),
    ("0 0 * * MOX#1", "expression.day-of-week",
     'expression.day-of-week: "MOX" is not a weekday name (allowed: SUN-SAT or 0-7)'),
    ("0 0 * * L", "expression.day-of-week", 'expression.day-of-week: "L" is not a weekday name (allowed: SUN-SAT or 0-7)'),
    ("cron(*/0 12 ? * * *)", "expression.minute",
     'expression.minute: step "0" in "*/0" must be a whole number from 1 to 60 (allowed: 1-60)'),
    ("*/61 * * * *", "expression.minute",
     'expression.minute: step "61" in "*/61" must be a whole number from 1 to 60 (allowed: 1-60)'),
    ("cron(0 0 ? * MON-FRI/0 *)", "expression.day-of-week",
     'expression.day-of-week: step "0" in "MON-FRI/0" must be a whole number from 1 to 7 (allowed: 1-7)'),
    ("cron(5-2 12 ? * * *)", "expression.minute", 'expression.minute: range "5-2" goes backwards (allowed: 0-59, low-high)'),
    ("cron(0 0 ? * 2-1 *)", "expression.day-of-week",
     'expression.day-of-week: range "2-1" goes backwards (allowed: SUN-SAT or 1-7, low-high)'),
    ("0 0 * * 1-", "expression.day-of-week", 'expression.day-of-week: "1-" is incomplete (allowed: SUN-SAT or 0-7)'),
    ("cron(1,,2 12 ? * * *)", "expression.minute",
     "expression.minute: empty value (two commas in a row, or a trailing comma) (allowed: 0-59)"),
    ("cron(? 12 ? * * *)", "expression.minute",
     'expression.minute: "?": ? is only allowed in day-of-month or day-of-week (allowed: *)'),
    ("cron(0 12 1? * ? *)", "expression.day-of-month", 'expression.day-of-month: "1?": ? must stand alone (allowed: ? on its own)'),
    ("0 0 * * ?", "expression.day-of-week", 'expression.day-of-week: "?": ? is not crontab syntax; use * (allowed: *)'),
    ("cron(0 0 31 2 ? *)", "expression.day-of-month",
     "expression.day-of-month: cron(): day 31 never occurs in FEB, so the schedule would never fire "
     "(allowed: 1-29 for the selected months)"),
    ("cron(0 0 30,31 2 ? *)", "expression.day-of-month",
     "expression.day-of-month: cron(): day 30 never occurs in FEB, so the schedule would never fire "
     "(allowed: 1-29 for the selected months)"),
    ("cron(0 0 31 4,6,9,11 ? *)", "expression.day-of-month",
     "expression.day-of-month: cron(): day 31 never occurs in APR,JUN,SEP,NOV, so the schedule would never fire "
     "(allowed: 1-30 for the selected months)"),
    ("cron(0 0 29 2 ? 2027)", "expression.day-of-month",
     "expression.day-of-month: cron(): day 29 never occurs in FEB of the selected years, so the schedule would "
     "never fire (allowed: 1-28 for the selected months)"),
    ("cron(0 0 30W 2 ? *)", "expression.day-of-month",
     "expression.day-of-month: cron(): day 30 never occurs in FEB, so the schedule would never fire "
     "(allowed: 1-29 for the selected months)"),
    ("0 0 30 2 *", "expression.day-of-month",
     "expression.day-of-month: crontab: day 30 never occurs in FEB, so the schedule would never fire "
     "(allowed: 1-29 for the selected months)"),
    ("0 0 31 2 */2", "expression.day-of-month",
     "expression.day-of-month: crontab: day 31 never occurs in FEB, so the schedule would never fire "
     "(allowed: 1-29 for the selected months)"),
]  # fmt: skip

EXPRESSION_ERRORS = [
    ("", "expression: is empty (allowed: cron(...), rate(...), at(...), a 5- or 6-field crontab line, "
         "@hourly/@daily/@weekly/@monthly/@yearly)"),
    ("   ", "expression: is empty (allowed: cron(...), rate(...), at(...), a 5- or 6-field crontab line, "
            "@hourly/@daily/@weekly/@monthly/@yearly)"),
    ("cron(0 12 * * * *)", "expression: cron(): day-of-month and day-of-week cannot both be set; use ? in one of "
     "them (allowed: ? in exactly one of day-of-month and day-of-week)"),
    ("cron(0 12 1 * MON *)", "expression: cron(): day-of-month and day-of-week cannot both be set; use ? in one of "
     "them (allowed: ? in exactly one of day-of-month and day-of-week)"),
    ("cron(0 12 ? * ? *)", "expression: cron(): day-of-month and day-of-week cannot both be ?; set one of them "
     "(allowed: ? in exactly one of day-of-month and day-of-week)"),
    ("cron(0 12 * * ?)", "expression: cron(): expected 6 fields (minutes hours day-of-month month day-of-week year), "
     "got 5 (allowed: cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 12 ? * MON-FRI *))"),
    ("cron(0 0 12 * * ? *)", "expression: cron(): expected 6 fields (minutes hours day-of-month month day-of-week "
     "year), got 7 (allowed: cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 12 ? * MON-FRI *))"),
    ("cron(0 12 ? * * *", 'expression: cron(): "cron(0 12 ? * * *" is missing its closing parenthesis '
     "(allowed: cron(...))"),
    ("0 0 * * * * *", 'expression: "0 0 * * * * *" is not a schedule expression: a crontab line has 5 fields '
     "(minute hour day-of-month month day-of-week) or 6 with leading seconds, got 7 (allowed: cron(...), rate(...), "
     "at(...), a 5- or 6-field crontab line, @hourly/@daily/@weekly/@monthly/@yearly)"),
    ("hello", 'expression: "hello" is not a schedule expression: a crontab line has 5 fields (minute hour '
     "day-of-month month day-of-week) or 6 with leading seconds, got 1 (allowed: cron(...), rate(...), at(...), "
     "a 5- or 6-field crontab line, @hourly/@daily/@weekly/@monthly/@yearly)"),
    ("@reboot", 'expression: "@reboot" is not a known shortcut (allowed: @hourly, @daily, @midnight, @weekly, '
     "@monthly, @yearly, @annually)"),
    ("@every 5m", 'expression: "@every 5m" is not a known shortcut (allowed: @hourly, @daily, @midnight, @weekly, '
     "@monthly, @yearly, @annually)"),
    ("rate(5 weeks)", 'expression: rate(): unit "weeks" is not allowed (allowed: minute(s), hour(s), day(s))'),
    ("rate(5 seconds)", 'expression: rate(): unit "seconds" is not allowed (allowed: minute(s), hour(s), day(s))'),
    ("rate(1 hours)", 'expression: rate(): "1 hours" must use the singular unit "hour" when the value is 1 '
     "(allowed: rate(value unit) with unit minute(s), hour(s), day(s), e.g. rate(5 minutes))"),
    ("rate(5 hour)", 'expression: rate(): "5 hour" must use the plural unit "hours" when the value is more than 1 '
     "(allowed: rate(value unit) with unit minute(s), hour(s), day(s), e.g. rate(5 minutes))"),
    ("rate(0 minutes)", 'expression: rate(): value "0" must be a positive whole number (allowed: 1 or more)'),
    ("rate(-5 minutes)", 'expression: rate(): value "-5" must be a positive whole number (allowed: 1 or more)'),
    ("rate(five minutes)", 'expression: rate(): value "five" must be a positive whole number (allowed: 1 or more)'),
    ("rate(1.5 hours)", 'expression: rate(): value "1.5" must be a positive whole number (allowed: 1 or more)'),
    ("rate(5)", 'expression: rate(): "5" is not "value unit" (allowed: rate(value unit) with unit minute(s), '
     "hour(s), day(s), e.g. rate(5 minutes))"),
    ("rate(100000 days)", 'expression: rate(): "100000 days" is too long (allowed: at most 36500 days)'),
    ("at(2026-13-01T00:00:00)", 'expression: at(): "2026-13-01T00:00:00" is not a valid date-time '
     "(allowed: yyyy-mm-ddThh:mm:ss)"),
    ("at(2026-02-30T00:00:00)", 'expression: at(): "2026-02-30T00:00:00" is not a valid date-time '
     "(allowed: yyyy-mm-ddThh:mm:ss)"),
    ("at(2026-03-01T24:00:00)", 'expression: at(): "2026-03-01T24:00:00" is not a valid date-time '
     "(allowed: yyyy-mm-ddThh:mm:ss)"),
    ("at(2026-03-01 10:00:00)", 'expression: at(): "2026-03-01 10:00:00" is not a valid date-time '
     "(allowed: yyyy-mm-ddThh:mm:ss)"),
    ("at(2026-03-01T10:00)", 'expression: at(): "2026-03-01T10:00" is not a valid date-time '
     "(allowed: yyyy-mm-ddThh:mm:ss)"),
    ("at(2026-03-01T10:00:00Z)", 'expression: at(): "2026-03-01T10:00:00Z" is not a valid date-time '
     "(allowed: yyyy-mm-ddThh:mm:ss)"),
    ("at(2300-01-01T00:00:00)", "expression: at(): year 2300 is out of range (allowed: 1970-2199)"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "field", "message"), FIELD_ERRORS)
def test_field_errors_name_the_field_the_token_and_what_is_allowed(
    text: str, field: str, message: str
) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        expressions.parse(text)
    assert caught.value.field == field
    assert caught.value.message == message
    assert caught.value.allowed


@pytest.mark.parametrize(("text", "message"), EXPRESSION_ERRORS)
def test_whole_expression_errors_say_what_is_wrong_and_allowed(text: str, message: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        expressions.parse(text)
    assert caught.value.field == "expression"
    assert caught.value.message == message


def test_the_two_brief_examples_read_as_specified() -> None:
    with pytest.raises(errors.ValidationError) as caught:
        expressions.parse("cron(0 12 ? * MOX *)")
    assert caught.value.reason == '"MOX" is not a weekday name'
    assert caught.value.allowed == "SUN-SAT or 1-7"
    with pytest.raises(errors.ValidationError) as caught:
        expressions.parse("rate(2 weeks)")
    assert caught.value.reason == 'rate(): unit "weeks" is not allowed'
    assert caught.value.allowed == "minute(s), hour(s), day(s)"


def test_a_day_that_exists_in_some_selected_month_is_accepted() -> None:
    expressions.parse("cron(0 0 31 1,2 ? *)")
    expressions.parse("cron(0 0 29 2 ? *)")
    expressions.parse("cron(0 0 29 2 ? 2027-2028)")
    expressions.parse("0 0 31 2 MON")  # crontab ORs in the weekday: fires on Mondays of February
    expressions.parse("0 0 L 2 *")
    expressions.parse("cron(0 0 ? 2 MON#5 *)")  # rare (leap Februaries starting on Monday) but possible


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Etc/GMT+5"]
)
def test_validate_timezone_accepts_iana_names(name: str) -> None:
    assert expressions.validate_timezone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name", ["Mars/Base", "", " UTC", "../etc/passwd", "/etc/localtime", "localtime", "Europe/"]
)
def test_validate_timezone_rejects_anything_else_naming_the_timezone_field(name: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        expressions.validate_timezone(name)
    assert caught.value.field == "timezone"
    assert caught.value.message == (
        f'timezone: "{name}" is not an IANA time zone name '
        "(allowed: IANA names such as UTC, Europe/Berlin, America/New_York)"
    )


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    number = st.integers(lo, hi)
    step = st.integers(1, hi - lo + 1)
    single = number.map(str)
    span = st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}")
    stepped = st.tuples(number, number, step).map(lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}")
    item = st.one_of(single, span, stepped, st.tuples(number, step).map(lambda an: f"{an[0]}/{an[1]}"))
    return st.one_of(
        st.just("*"), step.map(lambda n: f"*/{n}"), st.lists(item, min_size=1, max_size=4).map(",".join)
    )


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(_field(0, 59), _field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 7)),
    st.booleans(),
)
def test_canonical_text_is_a_fixed_point_with_the_same_fires(fields: tuple[str, ...], seconds: bool) -> None:
    text = " ".join(fields if seconds else fields[1:])
    expr = expressions.parse(text)
    again = expressions.parse(expr.text)
    assert again == expr
    assert again.spec == expr.spec
    assert again.text == expr.text
