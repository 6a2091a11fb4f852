# The storm's Kill Bill bus backlog and goodput over time, new binary against old:
#   (cd bench/results && gnuplot ../scenarios/storm_plot.gp)   after storm.sh has filled
# storm/ (new) and storm-old/ (old, GW_GENERATION=old ... RESULTS=<dir>, copied there).
set terminal pngcairo size 1100,560 noenhanced
set datafile separator ','
set output 'storm/storm.png'
set multiplot layout 1,2 title 'Independent-caller storm: 300 callers, reference config, fresh gateway, warm Kill Bill (2026-11-29)'
set xlabel 'time (s)'
set grid
set key below
set ylabel 'Kill Bill bus backlog (entries)'
set title 'bus backlog'
plot 'storm/storm-tags0.timeseries.csv' using 1:9 every ::1 with lines lw 2 title 'new, untagged', \
     'storm/storm-tags1.timeseries.csv' using 1:9 every ::1 with lines lw 2 title 'new, AUTO_PAY_OFF', \
     'storm-old/storm-tags0.timeseries.csv' using 1:9 every ::1 with lines dt 2 title 'old, untagged', \
     'storm-old/storm-tags1.timeseries.csv' using 1:9 every ::1 with lines dt 2 title 'old, AUTO_PAY_OFF (old sim model)'
set ylabel 'successful creations per second'
set title 'goodput'
plot 'storm/storm-tags0.timeseries.csv' using 1:3 every ::1 with lines lw 2 title 'new, untagged', \
     'storm/storm-tags1.timeseries.csv' using 1:3 every ::1 with lines lw 2 title 'new, AUTO_PAY_OFF', \
     'storm-old/storm-tags0.timeseries.csv' using 1:3 every ::1 with lines dt 2 title 'old, untagged', \
     'storm-old/storm-tags1.timeseries.csv' using 1:3 every ::1 with lines dt 2 title 'old, AUTO_PAY_OFF'
unset multiplot
