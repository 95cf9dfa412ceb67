"""JSON Schema patterns as the contract's validator reads them, spelt out for any regex engine.

JSON Schema patterns are ECMA-262 regexes, but the contract is enforced with Python's `re`
(through fastjsonschema, which already turns `$` into `\\Z`). The two disagree on `\\s`: Python's
also matches U+001C..U+001F and U+0085, ECMA's also U+FEFF. The published OpenAPI document spells
`\\s` / `\\S` out as explicit classes, so that a client (or a test generator) that reads it with
another engine accepts exactly what the API accepts.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _python_whitespace() -> str:
    """What `\\s` matches for the validator (Python's `re`), as a character-class body."""
    # `re`'s `\s` on str is `str.isspace()`, and every whitespace character is in the BMP (a unit
    # test checks both against `re` over all of Unicode).
    points = [c for c in range(0x10000) if chr(c).isspace()]
    ranges: list[list[int]] = []
    for c in points:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


def portable_pattern(pattern: str) -> str:
    """A schema pattern with `\\s` / `\\S` spelt out as the validator reads them (module doc)."""
    ws = _python_whitespace()
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "s":
                out.append(ws if in_class else f"[{ws}]")
            elif nxt == "S":
                if in_class:
                    raise ValueError(f"pattern {pattern!r}: \\S inside a character class is not supported")
                out.append(f"[^{ws}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


def portable(node: Any) -> Any:
    """A JSON schema with every `pattern` made portable (`portable_pattern`)."""
    if isinstance(node, dict):
        return {
            k: portable_pattern(v) if k == "pattern" and isinstance(v, str) else portable(v) for k, v in node.items()
        }
    if isinstance(node, list):
        return [portable(v) for v in node]
    return node
