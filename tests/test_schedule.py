from datetime import datetime

import pytest

from echo_agent.errors import UpdaterError
from echo_agent.updater.schedule import Window


def at(hh: int, mm: int = 0, day: int = 7) -> datetime:
    return datetime(2026, 12, day, hh, mm)


def test_a_night_window_over_midnight():
    w = Window.parse("23:30-06:00")
    assert str(w) == "23:30-06:00" and w.length_minutes == 390
    assert w.contains(at(23, 30)) and w.contains(at(2)) and w.contains(at(5, 59))
    assert not w.contains(at(6)) and not w.contains(at(12))
    assert w.next_start(at(12)) == at(23, 30) and w.next_start(at(23, 45)) == at(23, 30, day=8)
    assert w.end_of(at(23, 45)) == at(6, day=8) and w.end_of(at(2)) == at(6)
    assert w.end_of(at(12)) == at(6, day=8)  # outside: the end of the next window
    assert w.minutes_left(at(5, 30)) == pytest.approx(30) and w.minutes_left(at(12)) == 0


def test_a_window_within_a_day():
    w = Window.parse(" 1:00 - 07:00 ")
    assert str(w) == "01:00-07:00"
    assert w.contains(at(1)) and not w.contains(at(7)) and not w.contains(at(0, 59))
    assert w.next_start(at(8)) == at(1, day=8) and w.next_start(at(0, 30)) == at(1)
    assert w.end_of(at(3)) == at(7) and w.end_of(at(9)) == at(7, day=8)


@pytest.mark.parametrize("text", ["25:00-07:00", "01:00", "1-7", "01:00-07:00-08:00", "01:60-02:00", "",
                                  "03:00-03:00", "aa:bb-cc:dd"])
def test_a_bad_window_is_one_clear_line(text):
    with pytest.raises(UpdaterError) as e:
        Window.parse(text)
    assert "\n" not in str(e.value) and "window" in str(e.value)
