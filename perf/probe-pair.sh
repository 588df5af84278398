#!/usr/bin/env bash
# Two builds of examples/engine_probe.rs, run back to back ROUNDS times
# (A then B), each printing its fastest steady-state pass; the ratio B/A
# per pair. On a VM whose speed drifts from minute to minute only such
# pairs are comparable (perf/RESULTS.md, "Hot path").
#
# Usage: perf/probe-pair.sh A_BINARY B_BINARY [ROUNDS] [VAR=value ...]
#   e.g. perf/probe-pair.sh /tmp/probe-base /tmp/probe-head 6 SOURCES=20000 FRAMES=400000 WARM=10 MEAS=5
# The probe runs with `beh` (behavioural detectors only); the variables are
# the probe's (WARM, MEAS, SOURCES, FRAMES).
set -euo pipefail
a=$1 b=$2 rounds=${3:-6}
shift $(( $# < 3 ? $# : 3 ))
fastest() { env "$@" | sed -E 's/.*fastest ([0-9.]+).*/\1/'; }
for _ in $(seq "$rounds"); do
  x=$(fastest "$@" "$a" beh)
  y=$(fastest "$@" "$b" beh)
  awk -v x="$x" -v y="$y" 'BEGIN { printf "A %.1f ns  B %.1f ns  B/A %.3f\n", x, y, y / x }'
done
