# bars.gp: clustered bars: one cluster per category, one bar per series, with error bars.
# heapreplay's experiment driver writes the data and FIGURE.gp; by hand:
#   cd results/EXP/figures && gnuplot -e "fmt='pdf'; out='x.pdf'" NAME.gp   (NAME.gp loads this file)
#
# Data (datafile): a header line "category" then two fields per series: its title (quoted) and
# an empty title for its error column; then one row per category: the category (quoted) and,
# per series, the value and the half-width of its error bar ('?' where there is no value).
#
# Variables: datafile, nseries, title, xlabel, ylabel, logy (1: log axis), errors (1: draw
# error bars), keylen (characters of the longest series title), keytitle (the key's title), keypos (default 'below': under the plot), xrot (x tic label rotation, degrees),
# extra (gnuplot commands run before the plot), ymin, ymax, values (1: print each bar's value
# above it, with the format vfmt, default '%.3g').
# style.gp sits next to this template (ARG0 is this file's path as gnuplot was given it)
if (!exists("dir")) dir = ARG0[1:strlen(ARG0)-strlen('bars.gp')]
load dir.'style.gp'
if (!exists("errors")) errors = 0
if (!exists("logy")) logy = 0
if (!exists("keypos")) keypos = 'below'
if (!exists("values")) values = 0
if (!exists("vfmt")) vfmt = '%.3g'
if (!exists("xrot")) xrot = 0
if (!exists("extra")) extra = ''
if (!exists("title")) title = ''
if (!exists("xlabel")) xlabel = ''
if (!exists("ylabel")) ylabel = ''
if (!exists("h")) h = 1
if (strlen(title) > 0) { set title title font ",16" }
set xlabel xlabel
set ylabel ylabel
set grid noxtics
if (logy) { set logscale y 10 } else { set yrange [0:*] } # linear bars start at zero
if (exists("ymin")) { set yrange [ymin:] }
if (exists("ymax")) { set yrange [:ymax] }
if (xrot != 0) { set xtics rotate by xrot right }
set style data histogram
if (errors) {
    set style histogram errorbars gap 1.5 lw 1.2
    set errorbars lt 1 lc rgb '#000000' dt 1
} else {
    set style histogram clustered gap 1.5
}
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.9
if (exists("keytitle")) { set key title keytitle }
if (keypos eq 'below') { # at the bottom of the canvas, under the category labels
    keycols = int(0.85 * chars / (keylen + 8))
    keycols = (keycols < 1) ? 1 : ((keycols > nseries) ? nseries : keycols)
    keyrows = int((nseries + keycols - 1) / keycols) + (exists("keytitle") ? 1 : 0)
    set key at screen 0.5, 0.012 center bottom horizontal maxcols keycols
    set bmargin 3.0 + 1.15 * keyrows + (strlen(xlabel) > 0 ? 1.0 : 0) + (xrot != 0 ? 1.6 : 0)
} else {
    eval 'set key '.keypos
}
eval extra
# centre of bar i in cluster j (clustered histograms put cluster j at x = j, bars 1/(n+gap) wide)
gap = 1.5
barx(j, i) = j + (i - 1 - (nseries - 1) / 2.0) / (nseries + gap)
lab(v) = (v == v) ? sprintf(vfmt, v) : ''
if (errors) {
    plot for [i=1:nseries] datafile using (column(2*i)):(column(2*i+1)):xtic(1) lt i dt 1 title columnheader(2*i), \
         for [i=1:(values ? nseries : 0)] datafile using (barx($0, i)):(column(2*i) + column(2*i+1)):(lab(column(2*i))) with labels offset 0,0.7 font ",11" notitle
} else {
    plot for [i=1:nseries] datafile using (column(2*i)):xtic(1) lt i dt 1 title columnheader(2*i), \
         for [i=1:(values ? nseries : 0)] datafile using (barx($0, i)):(column(2*i)):(lab(column(2*i))) with labels offset 0,0.7 font ",11" notitle
}
