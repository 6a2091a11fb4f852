#!/usr/bin/env bash
# Kill Bill health per run, from the sim's bus backlog that billing-loadgen sampled every
# second (/sim/stats, which adds no healthcheck sample): the backlog at the end, its
# maximum, its least-squares growth in entries/s over the run after a 10 s warm-up, and
# "healthy" = growth below 1 entry/s (Kill Bill's own "growing" threshold, 0.1 per 100 ms).
#
#   bench/scenarios/bus_health.sh bench/results/s1/*.timeseries.csv
# Prints one markdown row per file: | run | backlog end | backlog max | growth/s | healthy |
set -u
echo "| run | bus backlog at end | max | growth (entries/s) | healthy |"
echo "|---|---|---|---|---|"
for f in "$@"; do
  awk -F, -v name="$(basename "$f" .timeseries.csv)" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "backlog") c = i; next }
    $c != "" {
      t = $1; y = $c; last = y; if (y > max) max = y
      if (t >= 10) { n++; sx += t; sy += y; sxx += t * t; sxy += t * y }
    }
    END {
      slope = (n > 1 && n * sxx - sx * sx != 0) ? (n * sxy - sx * sy) / (n * sxx - sx * sx) : 0
      printf "| %s | %d | %d | %.2f | %s |\n", name, last, max, slope, slope < 1 ? "yes" : "no"
    }' "$f"
done
