# bench/plot.gp - the benchmark chart: grouped bars per benchmark, each
# contestant relative to Tokio (N workers) = 1, oriented so that above 1 is
# better than Tokio. bench/report.py writes the data file and calls
#
#   gnuplot -e "data='F'; out='F.svg'; ngroups=G; nseries=S; ymin=A; ymax=B; heading='...'" bench/plot.gp
#
# Data: a header line (a label, then each contestant's quoted name), then one
# line per benchmark: a quoted label and S values (NaN: none).
set terminal svg size (260 + ngroups * 46), 600 dynamic noenhanced font "sans,11" background rgb "white"
set output out
set title heading
set datafile missing "NaN"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y 10
set yrange [ymin:ymax]
set ytics ("0.001" 0.001, "0.01" 0.01, "0.1" 0.1, "0.5" 0.5, "1 = Tokio" 1, "2" 2, "10" 10, "100" 100, "1000" 1000)
set grid ytics lc rgb "#dddddd"
set ylabel "relative to Tokio (higher is better, log scale)"
set xtics rotate by 50 right scale 0 font ",10" nomirror
set key outside right top vertical
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb "black" front
set bmargin 12
colors = "#1f77b4 #08306b #2ca02c #7f7f7f #ff7f0e #d62728"
set key autotitle columnheader
plot for [i=1:nseries] data using i+1:xtic(1) lc rgb word(colors, i)
