#!/bin/sh
# run-unit.sh - run Check unit test binaries, fail if any fails.
rc=0
for t in "$@"; do CK_FORK=yes "$t" || rc=1; done
exit $rc
