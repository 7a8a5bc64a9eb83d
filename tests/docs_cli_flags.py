#!/usr/bin/env python3
"""The docs and the command line agree: every flag a `layerwise` command accepts (its --help) is
in a command synopsis of the docs (a line starting `layerwise ` inside a code block, with its
indented continuation lines), and every flag a synopsis names exists. Prints both differences and
fails on either.

usage: python3 tests/docs_cli_flags.py LAYERWISE_BINARY REPO_ROOT
"""
import re
import subprocess
import sys
from pathlib import Path

exe, root = sys.argv[1], Path(sys.argv[2])
COMMANDS = [["inspect"], ["devices"], ["plan"], ["generate"], ["chat"], ["tokenize"], ["quantize"], ["eval"], ["serve"], ["worker"],
            ["bench"], ["bench", "model"], ["bench", "kernels"], ["bench", "plan"], ["bench", "peer"], ["bench", "batch"]]
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")

accepted = {}
for command in COMMANDS:
    run = subprocess.run([exe, *command, "--help"], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"`layerwise {' '.join(command)} --help` failed: {run.stderr.strip()}")
    for flag in FLAG.findall(run.stdout):
        accepted.setdefault(flag, set()).add(" ".join(command))
accepted.pop("--help", None)

documented = {}
for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
    in_code, in_synopsis = False, False
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_code, in_synopsis = not in_code, False
            continue
        if not in_code:
            continue
        if line.startswith("layerwise "):
            in_synopsis = True
        elif not line.startswith((" ", "\t")):
            in_synopsis = False
        if in_synopsis:
            for flag in FLAG.findall(line):
                documented.setdefault(flag, f"{doc.relative_to(root)}:{number}")

undocumented = sorted(set(accepted) - set(documented))
unknown = sorted(set(documented) - set(accepted))
for flag in undocumented:
    print(f"{flag} (layerwise {', '.join(sorted(accepted[flag]))}) is in no command synopsis of the docs")
for flag in unknown:
    print(f"{flag} ({documented[flag]}) is documented but no command accepts it")
print(f"{len(accepted)} flags accepted, {len(documented)} documented")
sys.exit(1 if undocumented or unknown else 0)
