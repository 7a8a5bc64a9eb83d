#!/usr/bin/env python3
"""Programs outside the engine (the CLI, the GUI, the server) include engine headers only as
`api/...`: the value types the API speaks in reach them through api/layerwise.h, never by their
own folders. Fails naming each file, line and header that breaks this.

usage: python3 tests/api_clients.py ENGINE_DIR CLIENT_DIR...
"""
import re
import sys
from pathlib import Path

engine = Path(sys.argv[1])
folders = {p.name for p in engine.iterdir() if p.is_dir()} | {p.name for p in engine.glob("*.h")}
include = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
errors, seen = [], 0
for client in map(Path, sys.argv[2:]):
    for path in sorted(client.rglob("*")):
        if path.suffix not in (".h", ".cpp") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = include.match(line)
            if not m:
                continue
            head = m.group(1).split("/")[0]
            if head in folders:
                seen += 1
                if head != "api":
                    errors.append(f"{path}:{number}: includes the engine's \"{m.group(1)}\"; include \"api/layerwise.h\" instead")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"{seen} engine includes in {', '.join(sys.argv[2:])}, all through api/")
