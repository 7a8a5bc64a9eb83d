#!/usr/bin/env python3
"""No function in the engine or the GUI is longer than a limit (default 120 lines, the body's
first to last line). Finds function bodies by their braces after comments, strings and character
literals are blanked out; a brace opened after namespace/class/struct/union/enum/extern, or after
'=', is a scope or an initializer and not a function. Lambdas count toward the function around
them. Prints the longest functions and fails, naming file, line and length, on any over the limit.

usage: python3 tests/function_length.py [--limit N] [--top K] DIR...
"""
import argparse
import re
import sys
from pathlib import Path

SCOPE = re.compile(r'\b(namespace|class|struct|union|enum|extern)\b[^;{}()]*$|=\s*$|\)\s*->\s*[\w:<>, ]+\s*=\s*$')


def blank(text):
    """Comments, strings and char literals replaced by spaces; newlines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c in "\"'" and not (c == "'" and i > 0 and text[i - 1].isalnum()):  # 1'000 digit separators
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (j + 1 - i)); i = j + 1
        else:
            out.append(c); i += 1
    return "".join(out)


def functions(path):
    text = blank(path.read_text(errors="replace"))
    stack = []  # (kind, start offset)
    last = 0    # offset after the last ; { or }
    for i, c in enumerate(text):
        if c == "{":
            head = text[last:i]
            inside_function = any(kind == "fn" for kind, _ in stack)
            kind = "block" if inside_function else ("scope" if SCOPE.search(head.strip() + "") or not head.strip() else "fn")
            stack.append((kind, i))
            last = i + 1
        elif c == "}":
            if stack:
                kind, start = stack.pop()
                if kind == "fn":
                    first = text.count("\n", 0, start) + 1
                    lines = text.count("\n", start, i) + 1
                    head = text[:start].rstrip().rsplit("\n", 1)[-1].strip()
                    yield first, lines, head
            last = i + 1
        elif c == ";":
            last = i + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    found = []
    for d in args.dirs:
        for path in sorted(Path(d).rglob("*")):
            if path.suffix in (".cpp", ".h", ".cu", ".cuh", ".inc") and path.is_file():
                found += [(lines, str(path), first, head) for first, lines, head in functions(path)]
    found.sort(reverse=True)
    for lines, path, first, head in found[:args.top]:
        print(f"{lines:5d}  {path}:{first}  {head[:70]}")
    over = [f for f in found if f[0] > args.limit]
    for lines, path, first, head in over:
        print(f"{path}:{first}: function is {lines} lines, over the limit of {args.limit}; split it into named steps", file=sys.stderr)
    print(f"{len(found)} functions, {len(over)} over {args.limit} lines")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
