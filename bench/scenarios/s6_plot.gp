# S6 (s6_probes.sh): Kill Bill's bus backlog over time, one panel per contender, with the
# seconds Kill Bill was out of the Service shaded and each kubelet restart marked.
#   gnuplot -e "dir='bench/results/s6'; contenders='direct nginx haproxy gateway-static gateway-adaptive'; title='...'" bench/scenarios/s6_plot.gp
# Reads <dir>/<c>.probe-series.csv (t, bus_backlog, probe_phase, out_of_service,
# probe_restarts, ...); writes <dir>/backlog.png.
if (!exists("dir")) dir = 'bench/results/s6'
if (!exists("contenders")) contenders = 'direct nginx haproxy gateway-static gateway-adaptive'
if (!exists("title")) title = 'S6: bus backlog'
# xmax: the x range's end (s), the same for every panel; default: each panel's own.
n = words(contenders)
set terminal pngcairo size 1200,(260 * n + 80) noenhanced
set output dir . '/backlog.png'
set datafile separator ','
set datafile missing ''
set multiplot layout n,1 title title
set grid
set lmargin 12
set key outside right top
set ylabel 'bus backlog (entries)'
set yrange [0:*]
set y2range [0:1]
unset y2tics
set xlabel 'time since the load started (s)'
set style fill transparent solid 0.25 noborder
# One box per 1 s sample (rows without a value leave a gap, not a wide box).
set boxwidth 1 absolute
if (exists("xmax")) { set xrange [0:xmax] }
do for [i = 1:n] {
  name = word(contenders, i)
  f = dir . "/" . name . ".probe-series.csv"
  set title name
  # A restart: the row where probe_restarts went up (col 5 vs the previous row's).
  prev = -1
  plot f using 1:($4 > 0 ? 1 : NaN) every ::1 axes x1y2 with boxes lc rgb '#d62728' title 'out of the Service (refused)', \
       f using 1:2 every ::1 with lines lw 2 lc rgb '#1f77b4' title 'bus backlog', \
       f using 1:(r = (prev >= 0 && $5 > prev) ? 1 : NaN, prev = $5, r) every ::1 axes x1y2 with impulses lw 3 lc rgb 'black' title 'Kill Bill restarted'
}
unset multiplot
