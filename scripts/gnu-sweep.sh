#!/bin/sh
# Runs GNU parallel's local test cases with GNU parallel and with workers-run, side by side.
# Not part of `swift test`. See the header of scripts/gnu-sweep.py for how to get GNU's test
# suite (git clone https://git.savannah.gnu.org/git/parallel.git; git checkout 20221122).
#
#   scripts/gnu-sweep.sh /path/to/parallel/testsuite [more gnu-sweep.py options]
#
# WORKERS_RUN (default .build/debug/workers-run) and GNU_PARALLEL (default /usr/bin/parallel)
# pick the two binaries.
set -e
here=$(cd "$(dirname "$0")" && pwd)
testsuite=${1:?usage: $0 TESTSUITE-DIR [gnu-sweep.py options]}
shift
exec python3 "$here/gnu-sweep.py" --testsuite "$testsuite" \
    --workers "${WORKERS_RUN:-$here/../.build/debug/workers-run}" \
    --gnu "${GNU_PARALLEL:-/usr/bin/parallel}" "$@"
