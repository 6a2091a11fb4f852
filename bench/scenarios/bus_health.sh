#!/usr/bin/env bash
# Kill Bill health per run, from the sim's bus backlog that billing-loadgen sampled every
# second (/sim/stats, which adds no healthcheck sample): the backlog at the end, its
# maximum, its least-squares growth in entries/s over the run after a 10 s warm-up, and
# "healthy" = growth below 1 entry/s (Kill Bill's own "growing" threshold, 0.1 per 100 ms).
# (lib.sh's bus_growth.)
#
#   bench/scenarios/bus_health.sh bench/results/s1/*.timeseries.csv
# Prints one markdown row per file: | run | backlog end | backlog max | growth/s | healthy |
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "| run | bus backlog at end | max | growth (entries/s) | healthy |"
echo "|---|---|---|---|---|"
for f in "$@"; do
  read -r end max slope <<<"$(bus_growth "$f" 10)"
  awk -v name="$(basename "$f" .timeseries.csv)" -v e="$end" -v m="$max" -v s="$slope" \
    'BEGIN { printf "| %s | %d | %d | %.2f | %s |\n", name, e, m, s, s < 1 ? "yes" : "no" }'
done
