set terminal pngcairo size 1300,1000 noenhanced
set output '/work/main/bench/results/replicas/replicas.png'
set datafile separator ','
set datafile missing ''
set multiplot layout 2,1 title 'S2 with replicas: open loop 30/s in total, bus drain 25 -> 12 -> 25 events/s at 60 s and 120 s (2 events per registration)'
set grid
set key outside right top
set xrange [0:215]
set samples 2000
set xlabel 'time (s)'
set ylabel 'events/s (registrations/s for ok)'
set yrange [0:*]
set y2label 'bus backlog (entries)'
set y2tics
set y2range [0:*]
set title '(a) 1 gateway (database.url set), 1 loadgen at 30/s; dotted: counted windows start'
set arrow 1 from 20, graph 0 to 20, graph 1 nohead dt 3 lc rgb '#999999'
set arrow 2 from 80, graph 0 to 80, graph 1 nohead dt 3 lc rgb '#999999'
set arrow 3 from 140, graph 0 to 140, graph 1 nohead dt 3 lc rgb '#999999'
plot '/work/main/bench/results/replicas/a.sim-rates.csv' using 1:2 every ::1 with lines lw 2 lc rgb '#1f77b4' title 'total bus events posted/s (sim)', \
  '/work/main/bench/results/replicas/a.sim-rates.csv' using 1:3 every ::1 with lines lw 1 lc rgb '#2ca02c' title 'bus events dispatched/s (sim)', \
  '+' using 1:($1 < 60 ? 25 : ($1 < 120 ? 12 : 25)) with lines dt 2 lc rgb 'black' title 'drain setting', \
  '/work/main/bench/results/replicas/a.rate-sum.csv' using 1:2 every ::1 with lines lw 1 dt 4 lc rgb '#9467bd' title 'sum of replicas bucket rates', \
  '/work/main/bench/results/replicas/a.total.csv' using 1:3 every ::1 with lines lw 1 lc rgb '#ff7f0e' title 'total ok/s (registrations)', \
  '/work/main/bench/results/replicas/a.sim-rates.csv' using 1:4 every ::1 axes x1y2 with lines lw 2 lc rgb '#d62728' title 'bus backlog (right axis)'
unset arrow
set title '(b) 3 gateways on one PostgreSQL, 3 loadgens at 10/s; dotted: counted windows start'
set arrow 1 from 20, graph 0 to 20, graph 1 nohead dt 3 lc rgb '#999999'
set arrow 2 from 80, graph 0 to 80, graph 1 nohead dt 3 lc rgb '#999999'
set arrow 3 from 140, graph 0 to 140, graph 1 nohead dt 3 lc rgb '#999999'
plot '/work/main/bench/results/replicas/b.sim-rates.csv' using 1:2 every ::1 with lines lw 2 lc rgb '#1f77b4' title 'total bus events posted/s (sim)', \
  '/work/main/bench/results/replicas/b.sim-rates.csv' using 1:3 every ::1 with lines lw 1 lc rgb '#2ca02c' title 'bus events dispatched/s (sim)', \
  '+' using 1:($1 < 60 ? 25 : ($1 < 120 ? 12 : 25)) with lines dt 2 lc rgb 'black' title 'drain setting', \
  '/work/main/bench/results/replicas/b.rate-sum.csv' using 1:2 every ::1 with lines lw 1 dt 4 lc rgb '#9467bd' title 'sum of replicas bucket rates', \
  '/work/main/bench/results/replicas/b.total.csv' using 1:3 every ::1 with lines lw 1 lc rgb '#ff7f0e' title 'total ok/s (registrations)', \
  '/work/main/bench/results/replicas/b.sim-rates.csv' using 1:4 every ::1 axes x1y2 with lines lw 2 lc rgb '#d62728' title 'bus backlog (right axis)'
unset arrow
unset multiplot
