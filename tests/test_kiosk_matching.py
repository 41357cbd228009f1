"""What a patient types at the kiosk: cleaning, dates, initials, and private matching."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from medicobus import contract
from onboard.kiosk.matching import (
    AppointmentBook,
    InputError,
    clean_text,
    initials,
    parse_birth_date,
    parse_birth_year,
)

KEY = b"fleet-secret-key-for-tests"
DAY = date(2025, 3, 7)
TODAY = DAY


def booking(appointment: str, name: str, birth: date, hour: int, *, key: bytes = KEY,
            day: date = DAY, visit: str = "v-am") -> contract.BookedAppointment:
    return contract.BookedAppointment(
        appointment=appointment, visit=visit, time=datetime(2025, 3, 7, hour, tzinfo=UTC),
        identity=contract.identity_digest(key, day, name, birth))


def book_of(*items: contract.BookedAppointment, day: date = DAY,
            key: bytes = KEY) -> AppointmentBook:
    appointments = contract.Appointments(vehicle="bus-1", ts=datetime(2025, 3, 7, tzinfo=UTC),
                                         day=day, items=list(items))
    return AppointmentBook(appointments, key)


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(InputError) as caught:
        call()
    return caught.value.code


# ----- names -------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["N'Diaye", "ndiaye", "N DIAYE", "N’Diaye", " n-diaye "])
def test_ndiaye_variants_normalise_alike(typed: str) -> None:
    assert contract.normalise_name(clean_text(typed)) == "NDIAYE"


@pytest.mark.parametrize("typed", ["Lefèvre-Dupont", "LEFEVRE DUPONT", "lefevre dupont",
                                   "Lefèvre–Dupont", "LEFÈVRE  DUPONT"])
def test_compound_names_normalise_alike(typed: str) -> None:
    assert contract.normalise_name(clean_text(typed)) == "LEFEVREDUPONT"


def test_ligature_is_forgiven() -> None:
    assert contract.normalise_name(clean_text("Œuvray")) == contract.normalise_name("OEUVRAY")


def test_names_in_other_scripts_are_accepted() -> None:
    for name in ["Ørsted", "Łukasz", "Müller", "Иванова", "محمد", "李", "J.-P. O'Neil"]:
        assert clean_text(name) == name


def test_decomposed_accents_are_composed() -> None:
    assert clean_text("Lefe\u0300vre") == "Lefèvre"


def test_spaces_are_stripped_and_collapsed() -> None:
    assert clean_text("  Marie   Claire\u00a0 ") == "Marie Claire"


def test_control_characters_are_removed() -> None:
    assert clean_text("Du\x00pont\u200b") == "Dupont"
    assert clean_text("Jean\tPierre\n") == "Jean Pierre"


def test_escape_sequences_leave_bad_characters() -> None:
    # ESC is removed; the "[31m" left behind is not a name, and is refused.
    assert code_of(lambda: clean_text("Dupont\x1b[31m")) == "bad_characters"


@pytest.mark.parametrize("typed", ["", "   ", "\x00\x07", "--", "'."])
def test_empty(typed: str) -> None:
    assert code_of(lambda: clean_text(typed)) == "empty"


def test_two_hundred_characters_are_too_long() -> None:
    assert code_of(lambda: clean_text("a" * 200)) == "too_long"
    assert clean_text("a" * 60) == "a" * 60
    assert code_of(lambda: clean_text("a" * 61)) == "too_long"
    assert code_of(lambda: clean_text("a" * 11, max_len=10)) == "too_long"


@pytest.mark.parametrize("typed", ["Dupont 😀", "👍", "Martin🏥", "Dupont3", "a<b>", "x@y",
                                   "Du$pont", "Jean+Paul"])
def test_emoji_digits_and_symbols_are_bad_characters(typed: str) -> None:
    assert code_of(lambda: clean_text(typed)) == "bad_characters"


def test_stray_combining_marks_are_bad_characters() -> None:
    assert code_of(lambda: clean_text("\u0301abc")) == "bad_characters"
    assert code_of(lambda: clean_text("a - \u0301")) == "bad_characters"


def test_input_error_carries_code_and_english_message() -> None:
    error = InputError("empty", "no letters")
    assert isinstance(error, ValueError)
    assert error.code == "empty" and str(error) == "no letters"
    with pytest.raises(AssertionError):
        InputError("nonsense", "x")


# ----- dates -------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["07/03/1948", "7/3/1948", "07-03-1948", "07.03.1948",
                                   "07 03 1948", "07031948", "1948-03-07", " 07 / 03 / 1948 ",
                                   "7.3.1948", "\x0007/03/1948"])
def test_birth_date_formats(typed: str) -> None:
    assert parse_birth_date(typed, TODAY) == date(1948, 3, 7)


def test_day_comes_first() -> None:
    assert parse_birth_date("01/02/1950", TODAY) == date(1950, 2, 1)
    assert parse_birth_date("13/12/1950", TODAY) == date(1950, 12, 13)


@pytest.mark.parametrize("typed", ["31/02/1950", "00/01/1950", "12/13/1950", "1950",
                                   "07/03/48", "070348", "yesterday", "07/03/1948/1",
                                   "1948-13-01", "07//03/1948x", "😀"])
def test_bad_dates(typed: str) -> None:
    assert code_of(lambda: parse_birth_date(typed, TODAY)) == "bad_date"


def test_future_and_too_old_dates() -> None:
    assert code_of(lambda: parse_birth_date("08/03/2025", TODAY)) == "future_date"
    assert parse_birth_date("07/03/2025", TODAY) == TODAY  # a newborn
    assert code_of(lambda: parse_birth_date("31/12/1899", TODAY)) == "too_old"
    assert parse_birth_date("01/01/1900", TODAY) == date(1900, 1, 1)


def test_empty_and_long_dates() -> None:
    assert code_of(lambda: parse_birth_date("  ", TODAY)) == "empty"
    assert code_of(lambda: parse_birth_date("1" * 200, TODAY)) == "too_long"


def test_birth_year() -> None:
    assert parse_birth_year(" 1948 ", TODAY) == 1948
    assert parse_birth_year("2025", TODAY) == 2025
    assert code_of(lambda: parse_birth_year("2026", TODAY)) == "future_date"
    assert code_of(lambda: parse_birth_year("1899", TODAY)) == "too_old"
    for bad in ["48", "19489", "19a8", "🙂🙂🙂🙂"]:
        assert code_of(functools.partial(parse_birth_year, bad, TODAY)) == "bad_date"
    assert code_of(lambda: parse_birth_year("", TODAY)) == "empty"


# ----- initials ----------------------------------------------------------------------------

def test_initials() -> None:
    assert initials("N'Diaye") == "N."
    assert initials("Marie", "Lefèvre-Dupont") == "M. L."
    assert initials("élodie", "œuvray") == "É. Œ."
    assert initials("  'jean") == "J."
    assert initials("", "Martin") == "M."
    assert initials() == ""


# ----- matching ----------------------------------------------------------------------------

def test_match_by_identity_forgives_case_accents_and_punctuation() -> None:
    ndiaye = booking("RDV-1001", "N'Diaye", date(1948, 3, 7), 9)
    lefevre = booking("RDV-1002", "Lefèvre-Dupont", date(1950, 2, 1), 10)
    oeuvray = booking("RDV-1003", "Œuvray", date(1939, 11, 30), 11)
    book = book_of(ndiaye, lefevre, oeuvray)
    assert book.day == DAY and len(book) == 3
    for typed in ["N'Diaye", "ndiaye", "N DIAYE"]:
        assert book.match(typed, date(1948, 3, 7)) == ndiaye
    for typed in ["Lefèvre-Dupont", "LEFEVRE DUPONT", "lefevre dupont"]:
        assert book.match(typed, date(1950, 2, 1)) == lefevre
    assert book.match("OEUVRAY", date(1939, 11, 30)) == oeuvray


def test_wrong_birth_date_or_name_does_not_match() -> None:
    book = book_of(booking("RDV-1", "Martin", date(1948, 3, 7), 9))
    assert book.match("Martin", date(1948, 7, 3)) is None
    assert book.match("Martine", date(1948, 3, 7)) is None


def test_wrong_key_never_matches() -> None:
    item = booking("RDV-1", "Martin", date(1948, 3, 7), 9)
    assert book_of(item, key=b"another-fleet").match("Martin", date(1948, 3, 7)) is None


def test_wrong_day_never_matches() -> None:
    yesterday = booking("RDV-1", "Martin", date(1948, 3, 7), 9, day=date(2025, 3, 6))
    assert book_of(yesterday).match("Martin", date(1948, 3, 7)) is None
    today = booking("RDV-1", "Martin", date(1948, 3, 7), 9)
    assert book_of(today, day=date(2025, 3, 8)).match("Martin", date(1948, 3, 7)) is None


def test_same_person_twice_gets_the_next_booking_not_checked_in() -> None:
    later = booking("RDV-B", "Martin", date(1948, 3, 7), 15, visit="v-pm")
    earlier = booking("RDV-A", "Martin", date(1948, 3, 7), 9)
    book = book_of(later, earlier)
    assert book.match("Martin", date(1948, 3, 7)) == earlier
    assert book.match("Martin", date(1948, 3, 7), exclude={"RDV-A"}) == later
    # All checked in: the first comes back, so the queue can say "already checked in".
    assert book.match("Martin", date(1948, 3, 7), exclude={"RDV-A", "RDV-B"}) == earlier


def test_match_by_code_ignores_case_spaces_and_hyphens() -> None:
    item = booking("RDV-7K2Q", "Martin", date(1948, 3, 7), 9)
    book = book_of(item, booking("RDV-9", "Durand", date(1960, 1, 1), 10))
    for typed in ["RDV-7K2Q", "rdv7k2q", " rdv 7k2q ", "RDV - 7K - 2Q"]:
        assert book.match_code(typed) == item
    for typed in ["RDV-7K2", "", "   ", "😀", "x" * 200]:
        assert book.match_code(typed) is None


def test_an_empty_book_matches_nothing() -> None:
    book = AppointmentBook(None, KEY)
    assert book.day is None and len(book) == 0
    assert book.match("Martin", date(1948, 3, 7)) is None
    assert book.match_code("RDV-1") is None
    with pytest.raises(ValueError):
        AppointmentBook(None, b"")


def test_for_visit_lists_that_visits_bookings_by_time() -> None:
    a = booking("A", "X", date(1950, 1, 1), 11)
    b = booking("B", "Y", date(1950, 1, 1), 9)
    c = booking("C", "Z", date(1950, 1, 1), 15, visit="v-pm")
    assert book_of(a, b, c).for_visit("v-am") == [b, a]
