#!/usr/bin/env python3
"""The engine's folders form a one-way stack: a file may include headers of its own folder and of
folders below it, never above. Lists every include between engine folders and fails on a back
edge, naming the file, the line and the rule it breaks. The order is the one docs/architecture.md
describes; engine/ itself (inspect.*) sits above jobs/, and api/ (the engine API) on top.

usage: python3 tests/layering.py [ENGINE_DIR]
"""
import re
import sys
from collections import Counter
from pathlib import Path

# Bottom to top.
ORDER = ["core", "remote", "checkpoint", "text", "model", "devices", "plan", "quant", "runtime", "archs", "jobs"]
TOP = "engine"  # files directly in engine/ (inspect.*)
API = "api"     # the engine API, on top of everything

engine = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "engine")
rank = {name: i for i, name in enumerate(ORDER)}
rank[TOP] = len(ORDER)
rank[API] = len(ORDER) + 1
include = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')

edges, errors = Counter(), []
for path in sorted(engine.rglob("*")):
    if path.suffix not in (".h", ".cpp", ".inc") or not path.is_file():
        continue
    parts = path.relative_to(engine).parts
    folder = parts[0] if len(parts) > 1 else TOP
    if folder not in rank:
        errors.append(f"{path}: folder '{folder}' has no place in the order {ORDER}; add it there and in docs/architecture.md")
        continue
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        m = include.match(line)
        if not m or m.group(1) not in rank or m.group(1) == folder:
            continue  # another library's header (kernels' cpu/..., nlohmann/...) or the same folder
        target = m.group(1)
        edges[(folder, target)] += 1
        if rank[target] > rank[folder]:
            errors.append(f"{path}:{number}: {folder}/ includes {target}/, which sits above it "
                          f"(order, bottom to top: {' < '.join(ORDER)})")

for (a, b), n in sorted(edges.items(), key=lambda e: (rank[e[0][0]], rank[e[0][1]])):
    print(f"{a:>10} -> {b:<10} {n}")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"{sum(edges.values())} includes between engine folders, none upward")
