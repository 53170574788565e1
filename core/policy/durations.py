"""Go's ``time.Duration`` and ``time.Time`` as Kyverno's conditions and JMESPath time functions see them.

Durations are ``int`` nanoseconds in Go's ``int64`` range. :func:`parse_duration` accepts exactly what
``time.ParseDuration`` accepts (``"168h"``, ``"1h30m"``, ``"-1.5s"``, ``".5h"``, ``"0"``) and
:func:`format_duration` writes what ``Duration.String()`` writes (``"25h0m0s"``, ``"1.5s"``, ``"1.2ms"``,
``"0s"``).

Times are :class:`GoTime` (Unix seconds, nanoseconds, UTC offset) rather than :class:`datetime.datetime`, so
nanoseconds and years outside 1..9999 (Go's ``time.Parse`` defaults a missing year to 0) survive.
:func:`parse_time` implements ``time.Parse`` for Go layout strings (``"2006-01-02T15:04:05Z07:00"``, ``"Jan _2
15:04:05"``, ...) and :meth:`GoTime.format_rfc3339` Go's ``Format(time.RFC3339)``.

Parsing failures raise :class:`ValueError`; callers turn them into their own verdicts.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from enum import Enum, auto

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

MAX_DURATION = 2**63 - 1
MIN_DURATION = -(2**63)

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # MICRO SIGN
    "\u03bcs": MICROSECOND,  # GREEK SMALL LETTER MU
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_DIGITS = "0123456789"


def wrap_int64(value: int) -> int:
    """Two's-complement wrap into Go's ``int64`` (Go's integer arithmetic overflows silently)."""
    return ((value + 2**63) % 2**64) - 2**63


def float_to_int64(value: float) -> int:
    """Go's ``int64(f)`` conversion: truncation; NaN and out-of-range give ``math.MinInt64`` (amd64)."""
    if math.isnan(value) or not -(2.0**63) <= value < 2.0**63:
        return MIN_DURATION
    return int(value)


def seconds_to_duration(value: float) -> int:
    """``time.Duration(value) * time.Second`` as Kyverno's operators compute it for a number of seconds."""
    return wrap_int64(float_to_int64(value) * SECOND)


def _leading_int(s: str) -> tuple[int, str]:
    x = 0
    i = 0
    while i < len(s) and s[i] in _DIGITS:
        if x > 2**63 // 10:
            raise ValueError("overflow")
        x = x * 10 + ord(s[i]) - 48
        if x > 2**63:
            raise ValueError("overflow")
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    x = 0
    scale = 1.0
    overflow = False
    i = 0
    while i < len(s) and s[i] in _DIGITS:
        if not overflow:
            if x > (2**63 - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - 48
                if y > 2**63:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_duration(text: str) -> int:
    """``time.ParseDuration``: a signed sequence of decimal numbers, each with an optional fraction and a
    unit (``ns``, ``us``/``µs``, ``ms``, ``s``, ``m``, ``h``); ``"0"`` alone needs no unit."""
    orig = text
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {orig!r}")
    total = 0
    while s:
        if s[0] != "." and s[0] not in _DIGITS:
            raise ValueError(f"time: invalid duration {orig!r}")
        before = len(s)
        try:
            v, s = _leading_int(s)
        except ValueError:
            raise ValueError(f"time: invalid duration {orig!r}") from None
        pre = before != len(s)
        post = False
        f, scale = 0, 1.0
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise ValueError(f"time: invalid duration {orig!r}")
        i = 0
        while i < len(s) and s[i] != "." and s[i] not in _DIGITS:
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {orig!r}")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {unit_name!r} in duration {orig!r}")
        if v > 2**63 // unit:
            raise ValueError(f"time: invalid duration {orig!r}")
        v *= unit
        if f > 0:
            # Go computes the fraction in float64, to be nanosecond-exact for fractions of hours.
            v += int(float(f) * (float(unit) / scale))
            if v > 2**63:
                raise ValueError(f"time: invalid duration {orig!r}")
        total += v
        if total > 2**63:
            raise ValueError(f"time: invalid duration {orig!r}")
    if neg:
        return -total
    if total > MAX_DURATION:
        raise ValueError(f"time: invalid duration {orig!r}")
    return total


def try_parse_duration(text: str) -> int | None:
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _frac(value: int, precision: int) -> tuple[str, int]:
    """Go's ``fmtFrac``: the fraction of ``value / 10**precision`` without trailing zeros (``""`` if none)."""
    digits = []
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits.append(str(digit))
        value //= 10
    fraction = "".join(reversed(digits))
    return ("." + fraction if fraction else ""), value


def format_duration(ns: int) -> str:
    """``time.Duration.String()``: ``"72h3m0.5s"``, ``"1.5ms"``, ``"0s"``; ``ns`` must be in int64 range."""
    u = abs(ns)
    sign = "-" if ns < 0 else ""
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            return f"{sign}{u}ns"
        if u < MILLISECOND:
            frac, whole = _frac(u, 3)
            return f"{sign}{whole}{frac}\u00b5s"
        frac, whole = _frac(u, 6)
        return f"{sign}{whole}{frac}ms"
    frac, secs = _frac(u, 9)
    out = f"{secs % 60}{frac}s"
    minutes = secs // 60
    if minutes > 0:
        out = f"{minutes % 60}m{out}"
        hours = minutes // 60
        if hours > 0:
            out = f"{hours}h{out}"
    return sign + out


def duration_seconds(ns: int) -> float:
    """``Duration.Seconds()``: whole seconds plus the fraction, both in float64 as Go adds them."""
    whole = -(-ns // SECOND) if ns < 0 else ns // SECOND  # Go's division truncates toward zero
    return float(whole) + float(ns - whole * SECOND) / 1e9


# --- civil calendar (proleptic Gregorian, any year), after H. Hinnant's algorithms


def _days_from_civil(year: int, month: int, day: int) -> int:
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)
# Seconds from the Unix epoch back to Go's zero time, January 1, year 1, 00:00:00 UTC.
_ZERO_TIME_UNIX = -_days_from_civil(1, 1, 1) * 86400


@dataclass(frozen=True)
class GoTime:
    """An instant (``unix`` seconds + ``nanos``) shown at a fixed UTC ``offset`` (seconds east)."""

    unix: int
    nanos: int = 0
    offset: int = 0

    @classmethod
    def from_datetime(cls, value: _dt.datetime) -> GoTime:
        """A Python datetime; a naive one is taken as UTC."""
        offset_td = value.utcoffset()
        offset = int(offset_td.total_seconds()) if offset_td is not None else 0
        naive = value.replace(tzinfo=None)
        delta = naive - _dt.datetime(1970, 1, 1)
        total_us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        unix, micros = divmod(total_us, 1_000_000)
        return cls(unix=unix - offset, nanos=micros * 1000, offset=offset)

    def total_nanos(self) -> int:
        return self.unix * SECOND + self.nanos

    def civil(self) -> tuple[int, int, int, int, int, int, int]:
        """(year, month, day, hour, minute, second, weekday with Sunday = 0) in this time's offset."""
        local = self.unix + self.offset
        days, secs = divmod(local, 86400)
        year, month, day = _civil_from_days(days)
        weekday = (days + 4) % 7  # 1970-01-01 was a Thursday
        return year, month, day, secs // 3600, secs % 3600 // 60, secs % 60, weekday

    def utc(self) -> GoTime:
        return GoTime(self.unix, self.nanos, 0)

    def add(self, duration: int) -> GoTime:
        secs, nanos = divmod(self.total_nanos() + duration, SECOND)
        return GoTime(secs, nanos, self.offset)

    def sub(self, other: GoTime) -> int:
        """``t.Sub(u)``: the duration t-u, saturated at Go's minimum and maximum durations."""
        return max(MIN_DURATION, min(MAX_DURATION, self.total_nanos() - other.total_nanos()))

    def before(self, other: GoTime) -> bool:
        return self.total_nanos() < other.total_nanos()

    def after(self, other: GoTime) -> bool:
        return self.total_nanos() > other.total_nanos()

    def truncate(self, duration: int) -> GoTime:
        """``t.Truncate(d)``: rounded down to a multiple of ``d`` since Go's zero time (the offset is kept)."""
        if duration <= 0:
            return self
        since_zero = (self.unix + _ZERO_TIME_UNIX) * SECOND + self.nanos
        return self.add(-(since_zero % duration))

    def format_rfc3339(self) -> str:
        """``Format(time.RFC3339)``: ``2006-01-02T15:04:05Z07:00`` (no fraction; ``Z`` for a zero offset)."""
        year, month, day, hour, minute, second, _ = self.civil()
        year_text = f"-{-year:04d}" if year < 0 else f"{year:04d}"
        if self.offset == 0:
            zone = "Z"
        else:
            minutes = abs(self.offset) // 60
            zone = f"{'-' if self.offset < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"
        return f"{year_text}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{zone}"


# --- time.Parse

RFC3339 = "2006-01-02T15:04:05Z07:00"


class _Std(Enum):
    LONG_MONTH = auto()
    MONTH = auto()
    NUM_MONTH = auto()
    ZERO_MONTH = auto()
    LONG_WEEKDAY = auto()
    WEEKDAY = auto()
    DAY = auto()
    UNDER_DAY = auto()
    ZERO_DAY = auto()
    UNDER_YEARDAY = auto()
    ZERO_YEARDAY = auto()
    HOUR = auto()
    HOUR12 = auto()
    ZERO_HOUR12 = auto()
    MINUTE = auto()
    ZERO_MINUTE = auto()
    SECOND = auto()
    ZERO_SECOND = auto()
    LONG_YEAR = auto()
    YEAR = auto()
    PM = auto()
    PM_LOWER = auto()
    TZ = auto()
    ISO8601_TZ = auto()
    ISO8601_SECONDS_TZ = auto()
    ISO8601_SHORT_TZ = auto()
    ISO8601_COLON_TZ = auto()
    ISO8601_COLON_SECONDS_TZ = auto()
    NUM_TZ = auto()
    NUM_SECONDS_TZ = auto()
    NUM_SHORT_TZ = auto()
    NUM_COLON_TZ = auto()
    NUM_COLON_SECONDS_TZ = auto()
    FRAC_SECOND0 = auto()
    FRAC_SECOND9 = auto()


_ZERO_X = (_Std.ZERO_MONTH, _Std.ZERO_DAY, _Std.ZERO_HOUR12, _Std.ZERO_MINUTE, _Std.ZERO_SECOND, _Std.YEAR)
_TZ_TOKENS = (
    ("Z070000", _Std.ISO8601_SECONDS_TZ),
    ("Z07:00:00", _Std.ISO8601_COLON_SECONDS_TZ),
    ("Z0700", _Std.ISO8601_TZ),
    ("Z07:00", _Std.ISO8601_COLON_TZ),
    ("Z07", _Std.ISO8601_SHORT_TZ),
    ("-070000", _Std.NUM_SECONDS_TZ),
    ("-07:00:00", _Std.NUM_COLON_SECONDS_TZ),
    ("-0700", _Std.NUM_TZ),
    ("-07:00", _Std.NUM_COLON_TZ),
    ("-07", _Std.NUM_SHORT_TZ),
)
_LONG_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_SHORT_MONTHS = tuple(m[:3] for m in _LONG_MONTHS)
_LONG_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_SHORT_DAYS = tuple(d[:3] for d in _LONG_DAYS)


@dataclass(frozen=True)
class _Chunk:
    std: _Std
    digits: int = 0  # for fractional seconds


def _starts_lower(s: str) -> bool:
    return bool(s) and "a" <= s[0] <= "z"


def _next_chunk(layout: str) -> tuple[str, _Chunk | None, str]:
    """Go's ``nextStdChunk``: the literal prefix, the first layout element and the rest."""
    n = len(layout)
    for i, c in enumerate(layout):
        rest = layout[i:]
        if c == "J" and rest.startswith("Jan"):
            if rest.startswith("January"):
                return layout[:i], _Chunk(_Std.LONG_MONTH), layout[i + 7 :]
            if not _starts_lower(layout[i + 3 :]):
                return layout[:i], _Chunk(_Std.MONTH), layout[i + 3 :]
        elif c == "M" and n >= i + 3:
            if rest.startswith("Mon"):
                if rest.startswith("Monday"):
                    return layout[:i], _Chunk(_Std.LONG_WEEKDAY), layout[i + 6 :]
                if not _starts_lower(layout[i + 3 :]):
                    return layout[:i], _Chunk(_Std.WEEKDAY), layout[i + 3 :]
            if rest.startswith("MST"):
                return layout[:i], _Chunk(_Std.TZ), layout[i + 3 :]
        elif c == "0":
            if n >= i + 2 and "1" <= layout[i + 1] <= "6":
                return layout[:i], _Chunk(_ZERO_X[ord(layout[i + 1]) - ord("1")]), layout[i + 2 :]
            if rest.startswith("002"):
                return layout[:i], _Chunk(_Std.ZERO_YEARDAY), layout[i + 3 :]
        elif c == "1":
            if rest.startswith("15"):
                return layout[:i], _Chunk(_Std.HOUR), layout[i + 2 :]
            return layout[:i], _Chunk(_Std.NUM_MONTH), layout[i + 1 :]
        elif c == "2":
            if rest.startswith("2006"):
                return layout[:i], _Chunk(_Std.LONG_YEAR), layout[i + 4 :]
            return layout[:i], _Chunk(_Std.DAY), layout[i + 1 :]
        elif c == "_":
            if rest.startswith("_2"):
                if rest.startswith("_2006"):  # a literal "_" followed by the year
                    return layout[: i + 1], _Chunk(_Std.LONG_YEAR), layout[i + 5 :]
                return layout[:i], _Chunk(_Std.UNDER_DAY), layout[i + 2 :]
            if rest.startswith("__2"):
                return layout[:i], _Chunk(_Std.UNDER_YEARDAY), layout[i + 3 :]
        elif c == "3":
            return layout[:i], _Chunk(_Std.HOUR12), layout[i + 1 :]
        elif c == "4":
            return layout[:i], _Chunk(_Std.MINUTE), layout[i + 1 :]
        elif c == "5":
            return layout[:i], _Chunk(_Std.SECOND), layout[i + 1 :]
        elif c == "P" and rest.startswith("PM"):
            return layout[:i], _Chunk(_Std.PM), layout[i + 2 :]
        elif c == "p" and rest.startswith("pm"):
            return layout[:i], _Chunk(_Std.PM_LOWER), layout[i + 2 :]
        elif c in "-Z":
            for token, std in _TZ_TOKENS:
                if rest.startswith(token):
                    return layout[:i], _Chunk(std), layout[i + len(token) :]
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            if not (j < n and layout[j] in _DIGITS):
                std = _Std.FRAC_SECOND0 if ch == "0" else _Std.FRAC_SECOND9
                return layout[:i], _Chunk(std, j - (i + 1)), layout[j:]
    return layout, None, ""


class _Bad(ValueError):
    pass


def _getnum(s: str, fixed: bool) -> tuple[int, str]:
    if not s or s[0] not in _DIGITS:
        raise _Bad
    if len(s) < 2 or s[1] not in _DIGITS:
        if fixed:
            raise _Bad
        return ord(s[0]) - 48, s[1:]
    return (ord(s[0]) - 48) * 10 + ord(s[1]) - 48, s[2:]


def _getnum3(s: str, fixed: bool) -> tuple[int, str]:
    n = 0
    i = 0
    while i < 3 and i < len(s) and s[i] in _DIGITS:
        n = n * 10 + ord(s[i]) - 48
        i += 1
    if i == 0 or (fixed and i != 3):
        raise _Bad
    return n, s[i:]


def _atoi(s: str) -> int:
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if not s or any(c not in _DIGITS for c in s):
        raise _Bad
    q, rem = _leading_int(s)
    if rem:
        raise _Bad
    return -q if neg else q


def _lookup(table: tuple[str, ...], value: str) -> tuple[int, str]:
    for i, name in enumerate(table):
        if len(value) >= len(name) and value[: len(name)].lower() == name.lower():
            return i, value[len(name) :]
    raise _Bad


def _cutspace(s: str) -> str:
    return s.lstrip(" ")


def _skip(value: str, prefix: str) -> str:
    while prefix:
        if prefix[0] == " ":
            if value and value[0] != " ":
                raise _Bad
            prefix = _cutspace(prefix)
            value = _cutspace(value)
            continue
        if not value or value[0] != prefix[0]:
            raise _Bad
        prefix = prefix[1:]
        value = value[1:]
    return value


def _parse_nanoseconds(value: str, nbytes: int) -> int:
    if not value or value[0] not in ".,":
        raise _Bad
    if nbytes > 10:
        value = value[:10]
        nbytes = 10
    ns = _atoi(value[1:nbytes])
    if ns < 0:
        raise ValueError("fractional second out of range")
    scaled: int = ns * 10 ** (10 - nbytes)
    return scaled


def _parse_signed_offset(value: str) -> int:
    if not value or value[0] not in "+-":
        return 0
    digits = value[1:]
    i = 0
    while i < len(digits) and digits[i] in _DIGITS:
        i += 1
    if i == 0 or int(digits[:i]) > 23:
        return 0
    return 1 + i


def _parse_timezone(value: str) -> int:
    """Go's ``parseTimeZone``: how many characters of ``value`` look like a zone abbreviation (0: none)."""
    if len(value) < 3:
        return 0
    if value[:4] in ("ChST", "MeST"):
        return 4
    if value[:3] == "GMT":
        return 3 + _parse_signed_offset(value[3:]) if len(value) > 3 else 3
    if value[0] in "+-":
        return _parse_signed_offset(value)
    upper = 0
    while upper < 6 and upper < len(value) and "A" <= value[upper] <= "Z":
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (value[3] == "T" or value[:4] == "WITA"):
        return 4
    if upper == 5 and value[4] == "T":
        return 5
    return 0


def _parse_numeric_zone(std: _Std, value: str) -> tuple[int, str]:
    if std in (_Std.ISO8601_COLON_TZ, _Std.NUM_COLON_TZ):
        if len(value) < 6 or value[3] != ":":
            raise _Bad
        sign, hour, minute, second, value = value[0], value[1:3], value[4:6], "00", value[6:]
    elif std in (_Std.NUM_SHORT_TZ, _Std.ISO8601_SHORT_TZ):
        if len(value) < 3:
            raise _Bad
        sign, hour, minute, second, value = value[0], value[1:3], "00", "00", value[3:]
    elif std in (_Std.ISO8601_COLON_SECONDS_TZ, _Std.NUM_COLON_SECONDS_TZ):
        if len(value) < 9 or value[3] != ":" or value[6] != ":":
            raise _Bad
        sign, hour, minute, second, value = value[0], value[1:3], value[4:6], value[7:9], value[9:]
    elif std in (_Std.ISO8601_SECONDS_TZ, _Std.NUM_SECONDS_TZ):
        if len(value) < 7:
            raise _Bad
        sign, hour, minute, second, value = value[0], value[1:3], value[3:5], value[5:7], value[7:]
    else:
        if len(value) < 5:
            raise _Bad
        sign, hour, minute, second, value = value[0], value[1:3], value[3:5], "00", value[5:]
    hh, _ = _getnum(hour, True)
    mm, _ = _getnum(minute, True)
    ss, _ = _getnum(second, True)
    if hh > 24 or mm > 60 or ss > 60:
        raise ValueError("time zone offset out of range")
    offset = (hh * 60 + mm) * 60 + ss
    if sign == "-":
        return -offset, value
    if sign != "+":
        raise _Bad
    return offset, value


def parse_time(layout: str, value: str) -> GoTime:
    """``time.Parse(layout, value)`` with Go's reference-time layout (``""`` is not special here: Kyverno
    substitutes RFC 3339 itself). Zone abbreviations other than UTC get a zero offset, as Go fabricates them
    when the local zone (UTC in a Kyverno pod) does not know them; ``GMT+3`` gets its offset."""
    orig_layout, orig_value = layout, value
    year, month, day, yday = 0, -1, -1, -1
    hour = minute = second = nsec = 0
    pm_set = am_set = False
    zone_offset: int | None = None
    zone_name = ""
    utc = False
    try:
        while True:
            prefix, chunk, suffix = _next_chunk(layout)
            value = _skip(value, prefix)
            if chunk is None:
                if value:
                    raise ValueError(f"extra text {value!r}")
                break
            layout = suffix
            std = chunk.std
            if std is _Std.YEAR:
                if len(value) < 2:
                    raise _Bad
                year = _atoi(value[:2])
                value = value[2:]
                year += 1900 if year >= 69 else 2000
            elif std is _Std.LONG_YEAR:
                if len(value) < 4 or value[0] not in _DIGITS:
                    raise _Bad
                year = _atoi(value[:4])
                value = value[4:]
            elif std is _Std.MONTH:
                month, value = _lookup(_SHORT_MONTHS, value)
                month += 1
            elif std is _Std.LONG_MONTH:
                month, value = _lookup(_LONG_MONTHS, value)
                month += 1
            elif std in (_Std.NUM_MONTH, _Std.ZERO_MONTH):
                month, value = _getnum(value, std is _Std.ZERO_MONTH)
                if not 1 <= month <= 12:
                    raise ValueError("month out of range")
            elif std is _Std.WEEKDAY:
                _, value = _lookup(_SHORT_DAYS, value)
            elif std is _Std.LONG_WEEKDAY:
                _, value = _lookup(_LONG_DAYS, value)
            elif std in (_Std.DAY, _Std.UNDER_DAY, _Std.ZERO_DAY):
                if std is _Std.UNDER_DAY and value[:1] == " ":
                    value = value[1:]
                day, value = _getnum(value, std is _Std.ZERO_DAY)
            elif std in (_Std.UNDER_YEARDAY, _Std.ZERO_YEARDAY):
                for _ in range(2):
                    if std is _Std.UNDER_YEARDAY and value[:1] == " ":
                        value = value[1:]
                yday, value = _getnum3(value, std is _Std.ZERO_YEARDAY)
            elif std is _Std.HOUR:
                hour, value = _getnum(value, False)
                if hour >= 24:
                    raise ValueError("hour out of range")
            elif std in (_Std.HOUR12, _Std.ZERO_HOUR12):
                hour, value = _getnum(value, std is _Std.ZERO_HOUR12)
                if hour > 12:
                    raise ValueError("hour out of range")
            elif std in (_Std.MINUTE, _Std.ZERO_MINUTE):
                minute, value = _getnum(value, std is _Std.ZERO_MINUTE)
                if minute >= 60:
                    raise ValueError("minute out of range")
            elif std in (_Std.SECOND, _Std.ZERO_SECOND):
                second, value = _getnum(value, std is _Std.ZERO_SECOND)
                if second >= 60:
                    raise ValueError("second out of range")
                # A fractional second in the value that the layout does not spell out is accepted.
                if len(value) >= 2 and value[0] in ".," and value[1] in _DIGITS:
                    _, following, _ = _next_chunk(layout)
                    if following is None or following.std not in (_Std.FRAC_SECOND0, _Std.FRAC_SECOND9):
                        n = 2
                        while n < len(value) and value[n] in _DIGITS:
                            n += 1
                        nsec = _parse_nanoseconds(value, n)
                        value = value[n:]
            elif std is _Std.PM:
                if len(value) < 2 or value[:2] not in ("PM", "AM"):
                    raise _Bad
                pm_set, am_set = value[:2] == "PM", value[:2] == "AM"
                value = value[2:]
            elif std is _Std.PM_LOWER:
                if len(value) < 2 or value[:2] not in ("pm", "am"):
                    raise _Bad
                pm_set, am_set = value[:2] == "pm", value[:2] == "am"
                value = value[2:]
            elif (
                std
                in (
                    _Std.ISO8601_TZ,
                    _Std.ISO8601_SHORT_TZ,
                    _Std.ISO8601_COLON_TZ,
                    _Std.ISO8601_SECONDS_TZ,
                    _Std.ISO8601_COLON_SECONDS_TZ,
                )
                and value[:1] == "Z"
            ):
                value = value[1:]
                utc = True
            elif std in (
                _Std.ISO8601_TZ,
                _Std.ISO8601_SHORT_TZ,
                _Std.ISO8601_COLON_TZ,
                _Std.ISO8601_SECONDS_TZ,
                _Std.ISO8601_COLON_SECONDS_TZ,
                _Std.NUM_TZ,
                _Std.NUM_SHORT_TZ,
                _Std.NUM_COLON_TZ,
                _Std.NUM_SECONDS_TZ,
                _Std.NUM_COLON_SECONDS_TZ,
            ):
                zone_offset, value = _parse_numeric_zone(std, value)
            elif std is _Std.TZ:
                if value[:3] == "UTC":
                    utc = True
                    value = value[3:]
                else:
                    n = _parse_timezone(value)
                    if n == 0:
                        raise _Bad
                    zone_name, value = value[:n], value[n:]
            elif std is _Std.FRAC_SECOND0:
                ndigit = 1 + chunk.digits
                if len(value) < ndigit:
                    raise _Bad
                nsec = _parse_nanoseconds(value, ndigit)
                value = value[ndigit:]
            elif std is _Std.FRAC_SECOND9 and len(value) >= 2 and value[0] in ".," and value[1] in _DIGITS:
                i = 0
                while i + 1 < len(value) and value[i + 1] in _DIGITS:
                    i += 1
                nsec = _parse_nanoseconds(value, 1 + i)
                value = value[1 + i :]
    except _Bad:
        raise ValueError(f"parsing time {orig_value!r} as {orig_layout!r}: cannot parse") from None
    except ValueError as exc:
        raise ValueError(f"parsing time {orig_value!r} as {orig_layout!r}: {exc}") from None

    if pm_set and hour < 12:
        hour += 12
    elif am_set and hour == 12:
        hour = 0
    if yday >= 0:
        m = d = 0
        if _is_leap(year):
            if yday == 31 + 29:
                m, d = 2, 29
            elif yday > 31 + 29:
                yday -= 1
        if yday < 1 or yday > 365:
            raise ValueError(f"parsing time {orig_value!r}: day-of-year out of range")
        if m == 0:
            m = (yday - 1) // 31 + 1
            if _DAYS_BEFORE[m] < yday:
                m += 1
            d = yday - _DAYS_BEFORE[m - 1]
        if month >= 0 and month != m:
            raise ValueError(f"parsing time {orig_value!r}: day-of-year does not match month")
        month = m
        if day >= 0 and day != d:
            raise ValueError(f"parsing time {orig_value!r}: day-of-year does not match day")
        day = d
    else:
        month = 1 if month < 0 else month
        day = 1 if day < 0 else day
    if day < 1 or day > _days_in(month, year):
        raise ValueError(f"parsing time {orig_value!r}: day out of range")

    local = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if utc:
        return GoTime(local, nsec, 0)
    if zone_offset is not None:
        return GoTime(local - zone_offset, nsec, zone_offset)
    if zone_name:
        offset = 0
        if len(zone_name) > 3 and zone_name.startswith("GMT"):
            offset = _atoi(zone_name[3:]) * 3600
        return GoTime(local - offset, nsec, offset)
    return GoTime(local, nsec, 0)


def parse_rfc3339(value: str) -> GoTime:
    return parse_time(RFC3339, value)
