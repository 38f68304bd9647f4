"""Number and table formatting shared by report.py and notes.py."""
from __future__ import annotations


def fmt_s(x) -> str:
    if x is None:
        return "-"
    return f"{x * 1e3:.2f} ms" if x < 1.0 else f"{x:.2f} s"


def fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def figure(x, bound) -> str:
    """``x`` to 3 significant digits, or as many more as it takes not to print the bound itself
    (2.998 against a bound of 3 must not read "3 ... not met")."""
    if x is None:
        return "-"
    for digits in range(3, 8):
        text = format(x, f".{digits}g")
        if x == bound or float(text) != float(bound):
            return text
    return repr(x)


def table(headers: list, rows: list) -> list:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def met(m) -> str:
    return "not measured" if m is None else ("**met**" if m else "**not met**")


def probes(k: dict) -> str:
    """:func:`two_core_probe` before each Numba turn, e.g. "2.0 / 1.1 / 1.9" (1 = second core taken)."""
    return " / ".join("-" if p is None else f"{p:.1f}" for p in k.get("two_core_probe") or []) or "-"


def turns(k: dict) -> str:
    """The speed-up of each alternating turn, e.g. "2.9 / 3.1 / 3.0" (how much it moved)."""
    a, b = k["numba"].get("turn_medians_s") or [], k["numpy"].get("turn_medians_s") or []
    return " / ".join(f"{y / x:.1f}" for x, y in zip(a, b) if x > 0)

