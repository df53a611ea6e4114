#!/usr/bin/env python3
"""How much of a Go build a second build can take from GOCACHE (tools/README.md, "Sharing compiled packages").

    tools/go_share.py FIRST_DIR FIRST_PKGS THEN_DIR THEN_PKGS [--first-tags T] [--then-tags T]

Lists both builds' packages with `go list -deps` (each in its module directory: a bootstrap wrapper under
$BUNDLE_TOOLS_DIR/src, or a tool's own module in GOMODCACHE, which is what `go install pkg@version` builds from).
A package of the second build is reused only when its module version (after replace) and, recursively, all its
dependencies' are the same as in the first build, as are the build tags (Go's action IDs hash the package's
inputs and its dependencies' IDs: https://github.com/golang/go/blob/master/src/cmd/go/internal/work/exec.go,
buildActionID). Prints what the second build still compiles, in packages and in Go source bytes (a proxy for
compile CPU). PKGS are comma-separated import paths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
from typing import Any


def build_graph(cwd: str, pkgs: list[str], tags: str) -> dict[str, tuple[str, int, bool]]:
    """{cache key: (import path, Go source bytes, standard library?)} of the packages `go build pkgs` compiles."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    cmd = ["go", "list", "-deps", "-json=ImportPath,Module,Dir,GoFiles,Imports,Standard"]
    cmd += ["-tags", tags] if tags else []
    out = subprocess.run(cmd + pkgs, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    decoder, i, pkgs_by_path = json.JSONDecoder(), 0, {}
    while True:
        while i < len(out) and out[i].isspace():
            i += 1
        if i >= len(out):
            break
        obj, i = decoder.raw_decode(out, i)
        pkgs_by_path[obj["ImportPath"]] = obj
    keys: dict[str, str] = {}

    def key(path: str) -> str:
        if path not in keys:
            p: dict[str, Any] = pkgs_by_path[path]
            mod = p.get("Module") or {}
            mod = mod.get("Replace") or mod
            h = hashlib.sha256(f"{path} {mod.get('Path')}@{mod.get('Version')} {tags}".encode())
            for dep in sorted(d for d in p.get("Imports") or [] if d in pkgs_by_path):
                h.update(key(dep).encode())
            keys[path] = h.hexdigest()
        return keys[path]

    return {
        key(path): (path, sum(os.path.getsize(os.path.join(p["Dir"], f)) for f in p.get("GoFiles") or []), bool(p.get("Standard")))
        for path, p in pkgs_by_path.items()
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first_dir")
    ap.add_argument("first_pkgs")
    ap.add_argument("then_dir")
    ap.add_argument("then_pkgs")
    ap.add_argument("--first-tags", default="")
    ap.add_argument("--then-tags", default="")
    a = ap.parse_args()
    first = build_graph(a.first_dir, a.first_pkgs.split(","), a.first_tags)
    then = build_graph(a.then_dir, a.then_pkgs.split(","), a.then_tags)
    own = {k: v for k, v in then.items() if not v[2]}
    left = {k: v for k, v in own.items() if k not in first}
    total, rest = sum(v[1] for v in own.values()), sum(v[1] for v in left.values())
    print(
        f"still to compile: {len(left)} of {len(own)} non-std packages, "
        f"{rest / 1e6:.1f} of {total / 1e6:.1f} MB of Go source ({100 * rest / max(total, 1):.0f} %)"
    )


if __name__ == "__main__":
    main()
