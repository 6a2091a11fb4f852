set terminal pngcairo size 1300,480 noenhanced
set output 'bench/results/settled-adaptive-new-5s/adaptive/rate.png'
set datafile separator ','
set datafile missing ''
set multiplot title 'Adaptive rate by signal: open loop 30/s, drain 25 -> 12 -> 25 events/s at 90 s and 180 s (rate in events/s)'
set grid
set lmargin at screen 0.10
set rmargin at screen 0.72
set xrange [0:310]
set key outside right top
set samples 2000
set origin 0,0.2280
set size 1,0.7220
set tmargin 1.5
set bmargin 0
set format x ""
unset xlabel
set title "gateway-healthcheck" offset 0,-0.5
set ylabel "events/s"
set yrange [0:*]
set y2label "bus backlog (entries)"
set y2tics
set y2range [0:*]
plot "bench/results/settled-adaptive-new-5s/adaptive/gateway-healthcheck.gateway-series.csv" using 1:2 every ::1 with lines lw 2 lc rgb "#1f77b4" title "gateway rate", \
  "bench/results/settled-adaptive-new-5s/adaptive/gateway-healthcheck.sim-rates.csv" using 1:3 every ::1 with lines lw 1 lc rgb "#2ca02c" title "sim drain (dispatched/s)", \
  "bench/results/settled-adaptive-new-5s/adaptive/gateway-healthcheck.sim-rates.csv" using 1:2 every ::1 with lines lw 1 dt 3 lc rgb "#7f7f7f" title "sim posted/s", \
  "+" using 1:($1 < 90 ? 25 : ($1 < 180 ? 12 : 25)) with lines dt 2 lc rgb "black" title "drain setting", \
  "bench/results/settled-adaptive-new-5s/adaptive/gateway-healthcheck.sim-rates.csv" using 1:4 every ::1 axes x1y2 with lines lw 2 lc rgb "#d62728" title "sim bus backlog"
set origin 0,0.0000
set size 1,0.2280
unset title
set tmargin 0
set bmargin 2.5
set format x "%g"
set xlabel "time (s)" offset 0,0.5
set ylabel "signal"
set yrange [-0.3:1.3]
set ytics ("healthcheck" 0, "metrics" 1)
unset y2tics
unset y2label
plot "bench/results/settled-adaptive-new-5s/adaptive/gateway-healthcheck.gateway-series.csv" using 1:4 every ::1 with steps lw 2 lc rgb "#9467bd" title "rate signal", \
  "bench/results/settled-adaptive-new-5s/adaptive/gateway-healthcheck.sim-rates.csv" using 1:($5 > 0 ? -0.15 : NaN) every ::1 with points pt 7 ps 0.4 lc rgb "#d62728" title "healthcheck unhealthy"
set ytics autofreq
unset multiplot
