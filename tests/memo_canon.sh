#!/bin/bash
# memo canonical JSON == Python json module's sorted compact form, over many equal spellings
set -e
[ -x /usr/bin/python3 ] || { echo "no /usr/bin/python3"; exit 77; }
/usr/bin/python3 "$SRC/tests/memo_canon_check.py" "$1"
