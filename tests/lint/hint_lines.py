#!/usr/bin/env python3
"""Every '---> HINT:' in a C format string starts its own line.

STYLE.md asks for a hint after each error; printed on the message's line it
is easy to miss and wraps badly. This joins adjacent string literals as the
compiler does (comments removed) and fails, naming file and line, on a HINT
that is not preceded by '\\n' in its literal. Usage: hint_lines.py ROOT.
Left out: strings built at run time (snprintf into a buffer, then logged).
"""
import os
import re
import sys

LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
# Messages allowed to keep the HINT on their line (none).
KNOWN = set()


def blank(m):
    return re.sub(r"[^\n]", " ", m.group(0))


def literals(code):
    """Yields (line, text) of each run of adjacent string literals."""
    start, text, end = None, None, None
    for m in LITERAL.finditer(code):
        if code[m.start() - 1 : m.start()] == "'":  # the character literal '"'
            continue
        if end is not None and code[end : m.start()].strip() == "":
            text += m.group(1)
        else:
            if text is not None:
                yield code.count("\n", 0, start) + 1, text
            start, text = m.start(), m.group(1)
        end = m.end()
    if text is not None:
        yield code.count("\n", 0, start) + 1, text


def main(root):
    bad = 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "build")))
        for name in sorted(files):
            if not name.endswith((".c", ".h", ".cu", ".cuh")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            code = open(path, encoding="utf-8", errors="replace").read()
            code = re.sub(r"/\*.*?\*/", blank, code, flags=re.S)
            code = re.sub(r"//[^\n]*", blank, code)
            for line, text in literals(code):
                for h in re.finditer(r"---> HINT", text):
                    if text[: h.start()].endswith("\\n"):
                        continue
                    if any(rel == f and k in text for f, k in KNOWN):
                        continue
                    print(f"{rel}:{line}: HINT on the message's line: ...{text[max(0, h.start() - 50):h.end()]}")
                    bad += 1
    print(f"hint_lines: {bad} HINT(s) not on their own line")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
