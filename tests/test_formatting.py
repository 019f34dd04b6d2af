"""Money in fen, shown as ¥; personal data masked."""
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop.formatting import AmountTooLarge, fen_to_yuan_text, format_fen, mask_code, mask_name, mask_phone, month_in_window, parse_yuan


@pytest.mark.parametrize("fen,text", [(0, "¥0.00"), (5, "¥0.05"), (120, "¥1.20"), (123450, "¥1,234.50"),
                                      (4_470_000, "¥44,700.00"), (-250, "-¥2.50")])
def test_format_fen(fen, text):
    assert format_fen(fen) == text


@given(st.integers(min_value=0, max_value=10**11 - 1))
def test_yuan_text_round_trips_to_the_fen(fen):
    assert parse_yuan(fen_to_yuan_text(fen)) == fen


@given(st.integers(min_value=0, max_value=10**11 - 1))
def test_amounts_as_pages_show_them_are_accepted_as_typed(fen):
    assert parse_yuan(str(format_fen(fen))) == fen  # "¥190,000.00" typed back in


@pytest.mark.parametrize("text", ["", "abc", "1.234", "-1", "1e3", "1,00", "1,0000", ",100", "0x10", "1.", ".5",
                                  "NaN", "inf", "1 000"])
def test_parse_yuan_refuses_anything_but_amounts(text):
    with pytest.raises(ValueError):
        parse_yuan(text)


def test_parse_yuan():
    assert parse_yuan("12.5") == 1250 and parse_yuan(" 0.07 ") == 7 and parse_yuan("190000") == 19_000_000
    assert parse_yuan("190,000.00") == 19_000_000 and parse_yuan("¥1,234.50") == 123_450
    with pytest.raises(AmountTooLarge):
        parse_yuan("1000000000000")


def test_masks():
    assert mask_name("康本树") == "康**"
    assert mask_name("欧阳") == "欧*"
    assert mask_phone("13812341234") == "138****1234"
    assert mask_phone("") == ""
    assert mask_code("XXC001") == "X*****"
    assert mask_code("411502001001") == "4115******01"


@pytest.mark.parametrize("month,start,end,inside", [
    (7, 6, 8, True), (5, 6, 8, False), (12, 11, 2, True), (1, 11, 2, True), (3, 11, 2, False), (4, None, None, True)])
def test_season_windows(month, start, end, inside):
    assert month_in_window(month, start, end) is inside


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.sampled_from(["yyyy-MM-dd", "yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm:ss", "HH:mm"]))
def test_local_times_read_the_same_as_babel_writes_them(app, moment, pattern):
    """The fast path for long pages must print exactly what Babel prints for Asia/Shanghai."""
    from flask_babel import format_datetime

    from shop.formatting import local_dt

    with app.test_request_context():
        assert local_dt(moment, pattern) == format_datetime(moment, pattern)
