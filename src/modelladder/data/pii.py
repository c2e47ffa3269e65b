"""Personal data in text: find e-mail addresses, URLs, IP addresses, card numbers and phone numbers,
and replace each with a placeholder such as [EMAIL], counting what was replaced.

Phone numbers come from `phonenumbers` (Google's libphonenumber): its matcher knows the numbering
plans and leaves dates, times, prices and plain numbers alone, which no regex does well. The other
kinds are short regexes checked by a validator: `ipaddress` for IPv4 / IPv6 (so 999.1.1.1 is no
address) and the Luhn checksum for card numbers (so a 16-digit order number that fails it stays).
scrubadub has no IP or Luhn-checked card detector and presidio needs spaCy models (none offline).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

import phonenumbers

KINDS = ("EMAIL", "URL", "IP", "CREDIT_CARD", "PHONE")  # the order in which they claim text
PHONE_REGION = "US"  # how numbers without a +country prefix are read

EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b")
URL = re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"']+", re.IGNORECASE)
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,45}(?![\w:])")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")  # 13-19 digits, single spaces or dashes
SEVEN_DIGITS = re.compile(r"\d(?:\D{0,3}\d){6}")  # no phone number has fewer digits than this
TRAILING = ".,;:!?)]}'\""  # punctuation that ends a sentence, not a URL


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _regex_spans(text: str) -> dict[str, list[tuple[int, int]]]:
    spans = {"EMAIL": [m.span() for m in EMAIL.finditer(text)]}
    spans["URL"] = []
    for m in URL.finditer(text):
        end = m.end() - (len(m.group()) - len(m.group().rstrip(TRAILING)))
        spans["URL"].append((m.start(), end))
    spans["IP"] = [m.span() for m in IPV4.finditer(text) if _is_ip(m.group())]
    for m in IPV6.finditer(text):
        address = m.group().rstrip(".")
        if _is_ip(address):
            spans["IP"].append((m.start(), m.start() + len(address)))
    spans["CREDIT_CARD"] = [m.span() for m in CARD.finditer(text) if luhn_ok(re.sub(r"\D", "", m.group()))]
    return spans


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every piece of personal data in `text`, in order, none overlapping: where
    two kinds overlap, the one earlier in KINDS wins (an e-mail's domain is no URL)."""
    spans = _regex_spans(text)
    spans["PHONE"] = []
    if SEVEN_DIGITS.search(text):  # the matcher is slow: skip texts that cannot hold a number
        matcher = phonenumbers.PhoneNumberMatcher(text, PHONE_REGION, leniency=phonenumbers.Leniency.VALID)
        spans["PHONE"] = [(m.start, m.end) for m in matcher]
    found: list[tuple[str, int, int]] = []
    for kind in KINDS:
        for start, end in spans[kind]:
            if all(end <= s or start >= e for _, s, e in found):
                found.append((kind, start, end))
    return sorted(found, key=lambda f: f[1])


def redact(text: str, counts: Counter | None = None) -> str:
    """`text` with every piece of personal data replaced by [KIND]; `counts` (if given) gains one per kind found."""
    found = find_pii(text)
    if not found:
        return text
    parts, last = [], 0
    for kind, start, end in found:
        parts += [text[last:start], f"[{kind}]"]
        last = end
    if counts is not None:
        counts.update(kind for kind, _, _ in found)
    return "".join(parts) + text[last:]


def scan(texts) -> dict[str, int]:
    """How many of each kind the texts hold (every kind listed, 0 when absent), without changing them."""
    counts = Counter({kind: 0 for kind in KINDS})
    for text in texts:
        counts.update(kind for kind, _, _ in find_pii(text))
    return dict(counts)
