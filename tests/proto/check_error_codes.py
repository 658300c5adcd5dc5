#!/usr/bin/env python3
"""The wire's error codes are listed twice, for people in proto/PROTOCOL.md "Error codes" and
for code in proto/include/proto/errors.h (PROTO_ERRORS with C values, PROTO_WIRE_ERRORS without):
exits 1 naming every code that one has and the other lacks, 0 when they agree."""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def header_codes(text):
    c = re.findall(r'X\(\s*\w+\s*,\s*-?\d+\s*,\s*"([a-z_]+)"', text)
    wire = re.findall(r'^\s+W\(\s*"([a-z_]+)"', text, re.M)
    return set(c) | set(wire), len(c) + len(wire)


def protocol_codes(text):
    m = re.search(r"^## Error codes\n(.*?)^## ", text, re.M | re.S)
    if not m:
        sys.exit("PROTOCOL.md has no 'Error codes' section")
    codes = set()
    for line in m.group(1).splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            codes |= set(re.findall(r"`([a-z_]+)`", first))
    return codes


def main():
    with open(os.path.join(ROOT, "proto/include/proto/errors.h")) as f:
        hdr, n = header_codes(f.read())
    with open(os.path.join(ROOT, "proto/PROTOCOL.md")) as f:
        doc = protocol_codes(f.read())
    bad = False
    if n != len(hdr):
        print("errors.h names a code twice")
        bad = True
    for code in sorted(doc - hdr):
        print("in PROTOCOL.md, not in errors.h: %s" % code)
        bad = True
    for code in sorted(hdr - doc):
        print("in errors.h, not in PROTOCOL.md: %s" % code)
        bad = True
    print("%d codes; %s" % (len(hdr), "they disagree" if bad else "PROTOCOL.md and errors.h agree"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
