r"""Word splitting with github.com/google/shlex semantics (apko splits entrypoint and cmd with it).

Where it differs from Python's `shlex.split`:
  * `#` starts a comment only at the start of a word; the comment runs to the end of the line
    (Python with comments=True also cuts `a#b`; without it, `#` is never special);
  * inside double quotes a backslash escapes *any* character and is dropped (`"\\d"` -> `d`),
    where POSIX/Python keep the backslash unless it precedes `\\ " $ \``;
  * only space, tab, CR and LF separate words;
  * an unterminated quote or a trailing backslash is an error (no partial result).
"""

from __future__ import annotations

from distroless.errors import DistrolessError

_SPACE = " \t\r\n"


class ShlexError(DistrolessError):
    """The command line cannot be split (unclosed quote, trailing escape)."""


def split(text: str) -> list[str]:
    """Split `text` into words as google/shlex `Split` does."""
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        # Start state: skip separators, then decide what the next token is.
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            return words
        if text[i] == "#":
            end = text.find("\n", i)
            if end < 0:
                return words
            i = end + 1
            continue
        word: list[str] = []
        state = "word"
        while True:
            if i >= n:
                if state == "word":
                    break
                if state in ("escape", "escape_dq"):
                    raise ShlexError(f"cannot split {text!r}: EOF found after escape character")
                raise ShlexError(f"cannot split {text!r}: EOF found when expecting closing quote")
            c = text[i]
            i += 1
            if state == "word":
                if c in _SPACE:
                    break  # the separator is consumed with the word
                if c == '"':
                    state = "dq"
                elif c == "'":
                    state = "sq"
                elif c == "\\":
                    state = "escape"
                else:
                    word.append(c)  # includes '#' inside a word
            elif state == "escape":
                word.append(c)
                state = "word"
            elif state == "dq":
                if c == '"':
                    state = "word"
                elif c == "\\":
                    state = "escape_dq"
                else:
                    word.append(c)
            elif state == "escape_dq":
                word.append(c)
                state = "dq"
            else:  # single quotes: everything literal up to the closing quote
                if c == "'":
                    state = "word"
                else:
                    word.append(c)
        words.append("".join(word))
