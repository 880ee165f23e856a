"""What scripts/long-functions.py and scripts/module-cycles.py share: Rust
source text with its comments, strings and char literals blanked."""

import re


def strip(text):
    """Source text with comments, strings and char literals blanked (newlines kept).

    A string (raw and byte strings too) becomes ` ""`, a char literal ` ' `
    and a lifetime's quote a space, so a `fn`, a brace or a path inside
    them is not seen and tokens stay apart; the text keeps its lines.
    """
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) and re.match(
            r'b?r#*"', text[i : i + 260]
        ):
            m = re.match(r'b?r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(' ""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(' ""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # a char literal ('a', '\n', '\u{..}', '{') or a lifetime ('a)
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i : i + 16])
            if m:
                out.append(" ' ")
                i += len(m.group(0))
            else:
                out.append(" ")
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)
