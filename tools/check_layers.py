#!/usr/bin/env python3
"""Checks that every `#include "..."` in the layer folders points down.

The layers (../shared/DESIGN.md), bottom first: core <- kernels, comm, data
(siblings) <- model <- trainer <- cli. A file may include any header of its
own folder (subfolders count: kernels/cpu and kernels/cuda are inside
kernels), and only the public header of a lower layer. Including a higher
layer (up), a sibling (sideways) or another folder's private header is a
violation, reported as `file:line: rule: ...`.

tests/, bench/ and everything outside the layer folders are not checked. A
folder that does not exist is skipped; its rules still apply to includes of
its headers. Includes that name no layer folder and resolve to no file in the
tree (system or generated headers) are ignored.

Usage: tools/check_layers.py [--root DIR] [--warn]
Exit status: 0 when clean, 1 on any violation, 2 on a usage error; with
--warn, violations are printed as warnings and the status is 0.
"""
import argparse
import fnmatch
import os
import re
import sys

# ---- the rules: edit here -------------------------------------------------
# folder -> level; a folder may include public headers of lower levels only.
LAYERS = {
    "core": 0,
    "kernels": 1,
    "comm": 1,
    "data": 1,
    "model": 2,
    "trainer": 3,
    "cli": 4,
}
# folder -> glob patterns (relative to the repository root) of the headers
# other folders may include. Anything else in the folder is private.
PUBLIC = {
    "core": ["core/*.h"],
    "kernels": ["kernels/kernels.h"],
    "comm": ["comm/comm.h"],
    "data": ["data/data.h"],
    "model": ["model/model.h"],
    "trainer": ["trainer/trainer.h"],
    "cli": [],
}
SOURCE_EXTS = (".c", ".h", ".cu", ".cuh", ".cpp", ".cc", ".hpp")
# ---------------------------------------------------------------------------

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.MULTILINE)
COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def strip_comments(text):
    """Blanks comments, keeping newlines so line numbers stay right."""
    return COMMENT_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def folder_of(relpath):
    top = relpath.split("/", 1)[0]
    return top if top in LAYERS else None


def resolve(root, src_rel, inc):
    """The repository-relative path an include names, or None if it names
    no layer folder and no file in the tree (a system or generated header).
    Like the preprocessor, a file relative to the includer wins."""
    rel = os.path.normpath(os.path.join(os.path.dirname(src_rel), inc)).replace(os.sep, "/")
    if not rel.startswith("..") and os.path.isfile(os.path.join(root, rel)):
        return rel
    norm = os.path.normpath(inc).replace(os.sep, "/")
    if not norm.startswith("..") and folder_of(norm):
        return norm
    if not rel.startswith("..") and folder_of(rel):
        return rel  # e.g. "../cli/cli.h": a missing file, but a named layer
    return None


def is_public(target):
    return any(fnmatch.fnmatchcase(target, p) for p in PUBLIC.get(folder_of(target), []))


def check_include(src_rel, target):
    """A rule name and message when src_rel may not include target, else None."""
    a, b = folder_of(src_rel), folder_of(target)
    if b is None or a == b:
        return None
    if LAYERS[b] > LAYERS[a]:
        return "up", f"{a}/ (level {LAYERS[a]}) includes {target} from the higher layer {b}/ (level {LAYERS[b]})"
    if LAYERS[b] == LAYERS[a]:
        return "sideways", f"{a}/ includes {target} from its sibling {b}/; siblings may not include each other"
    if not is_public(target):
        pub = ", ".join(PUBLIC[b]) or "none"
        return "private", f"{a}/ includes {target}, private to {b}/ (public: {pub})"
    return None


def scan(root):
    """Yields (file:line, rule, message) for every violation under root."""
    for folder in sorted(LAYERS):
        top = os.path.join(root, folder)
        if not os.path.isdir(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.endswith(SOURCE_EXTS):
                    continue
                path = os.path.join(dirpath, name)
                src_rel = os.path.relpath(path, root).replace(os.sep, "/")
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = strip_comments(f.read())
                for m in INCLUDE_RE.finditer(text):
                    target = resolve(root, src_rel, m.group(1))
                    if target is None:
                        continue
                    bad = check_include(src_rel, target)
                    if bad:
                        line = text.count("\n", 0, m.start()) + 1
                        yield f"{src_rel}:{line}", bad[0], bad[1]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    help="repository root (default: the one holding this script)")
    ap.add_argument("--warn", action="store_true",
                    help="report violations as warnings and exit 0")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"check_layers: no directory {args.root}", file=sys.stderr)
        return 2
    found = list(scan(args.root))
    kind = "warning" if args.warn else "error"
    for where, rule, msg in found:
        print(f"{where}: {kind}: include rule '{rule}': {msg}", file=sys.stderr)
    if found:
        print(f"check_layers: {len(found)} include(s) break the layer rules (tools/check_layers.py)"
              + ("; not failing (--warn)" if args.warn else ""), file=sys.stderr)
        return 0 if args.warn else 1
    print("check_layers: every include points down the layers", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
