# lines.gp: one or more panels of x-y series (lines, lines with points, or points), with error
# bars when there are repetitions. heapreplay's experiment driver writes the data and a
# FIGURE.gp that sets the variables below; to redraw a figure by hand:
#   cd results/EXP/figures && gnuplot -e "fmt='pdf'; out='x.pdf'" NAME.gp   (NAME.gp loads this file)
#
# Data: one file per panel; in it one block per series, blocks separated by two blank lines.
# Each block starts with a header line whose first field is the series title (quoted), then
# rows "x y ylow yhigh n" (n: repetitions behind the mean y; ylow/yhigh: its error bar).
# Block s has line type s+1 in every panel, and the shared key is drawn from one panel, so every
# panel has the same series in the same order; one a panel lacks is a single row "NaN NaN NaN
# NaN 0" (drawn as nothing).
#
# Variables:
#   npanels            panels (default 1); datafile[i], ptitle[i], nseries[i] for i = 1..npanels
#   title              figure title ('' for none)       xlabel, ylabel   axis labels (with units)
#   style              'lines', 'linespoints' (default) or 'points'
#   errors             1: draw error bars from ylow/yhigh
#   logx, logy         1: logarithmic axis (base 10, or logbase)
#   xmin xmax ymin ymax  axis limits (optional)
#   pflat[i]           1: panel i would give gnuplot an empty y range (every value at ymin, or
#                      every value the same): its y range is then [pylo[i]:pyhi[i]]
#   xstep[i]           the x tic step of panel i (0: gnuplot's choice); labels then in full
#   keypos             key position: 'below' (default: under the plot, never over the data) or
#                      any gnuplot key position ('top left', ...); with several panels the one
#                      key goes under all of them
#   extra              gnuplot commands run before each plot (tics, reference lines, labels)
#   keylen             characters of the longest series title (lays out the key; default 20)
#   keytitle           the key's title (the driver: the series column, when its values have no labels)
#   cols               panels per row (default: up to 3)
# style.gp sits next to this template (ARG0 is this file's path as gnuplot was given it)
if (!exists("dir")) dir = ARG0[1:strlen(ARG0)-strlen('lines.gp')]
load dir.'style.gp'
if (!exists("npanels")) npanels = 1
if (!exists("style")) style = 'linespoints'
if (!exists("errors")) errors = 0
if (!exists("logx")) logx = 0
if (!exists("logy")) logy = 0
if (!exists("logbase")) logbase = 10
if (!exists("keypos")) keypos = 'below'
if (!exists("extra")) extra = ''
if (!exists("title")) title = ''
if (!exists("xlabel")) xlabel = ''
if (!exists("ylabel")) ylabel = ''
if (!exists("cols")) cols = (npanels <= 3 ? npanels : (npanels == 4 ? 2 : 3))
rows = int((npanels + cols - 1) / cols)
if (logx) { set logscale x logbase }
if (logy) { set logscale y logbase }
if (exists("xmin")) { set xrange [xmin:] }
if (exists("xmax")) { set xrange [:xmax] }
if (exists("ymin")) { set yrange [ymin:] }
if (exists("ymax")) { set yrange [:ymax] }
set xlabel xlabel
set ylabel ylabel
# on a log x axis, a little room around the data so that the end tics are not lost at the
# border (a linear axis is extended to whole tics by autoscaling anyway; offsets there would
# invent negative event counts)
if (logx) { set offsets graph 0.03, graph 0.03, 0, 0 }
# a series over time (style 'lines') ends where its data ends, not at the next whole tic (which
# left up to a fifth of the axis empty)
if (style eq 'lines' && !logx && !exists("xmax")) { set autoscale xfixmax }
if (style eq 'lines') {
    plotwith = errors ? 'yerrorlines' : 'lines'
} else {
    if (style eq 'points') {
        plotwith = errors ? 'yerrorbars' : 'points'
    } else {
        plotwith = errors ? 'yerrorlines' : 'linespoints'
    }
}
# Layout (by hand, so that the key can span the whole width): the title on top, the panels in a
# grid, and with several panels one key in a strip under all of them.
maxn = 0
do for [p=1:npanels] { if (nseries[p] > maxn) { maxn = nseries[p] } }
# as many key columns as fit (keylen: the longest series title, set by the driver)
keycols = int(((npanels > 1) ? 0.95 : 0.85) * chars / (keylen + 8))
keycols = (keycols < 1) ? 1 : ((keycols > maxn) ? maxn : keycols)
keyrows = (keypos eq 'below') ? int((maxn + keycols - 1) / keycols) : 0
if (exists("keytitle")) { set key title keytitle; keyrows = (keypos eq 'below') ? keyrows + 1 : 0 }
strip = (npanels > 1 && keypos eq 'below') ? (0.03 + 0.042 * keyrows) / h : 0
top = (strlen(title) > 0 && npanels > 1) ? 1 - 0.07 / h : 1
pw = 1.0 / cols
ph = (top - strip) / rows
if (npanels > 1) {
    set multiplot title title font ",16"
} else {
    if (strlen(title) > 0) { set title title font ",16" }
}
do for [p=1:npanels] {
    if (npanels > 1) {
        set origin ((p - 1) % cols) * pw, strip + (rows - 1 - int((p - 1) / cols)) * ph
        set size pw, ph
        set title ptitle[p]
        unset key
    } else {
        if (keypos eq 'below') { # at the bottom of the canvas, under the x label
            set key at screen 0.5, 0.012 center bottom horizontal maxcols keycols
            set bmargin 3.0 + 1.15 * keyrows + (strlen(xlabel) > 0 ? 1.0 : 0)
        } else {
            eval 'set key '.keypos
        }
    }
    # x tics: the driver's step for this panel (xstep, 0: gnuplot's own), labels in full
    if (exists("xstep")) {
        if (xstep[p] > 0) { set xtics xstep[p]; set format x "%.10g" } else { set xtics autofreq; set format x "% h" }
    }
    if (exists("pflat")) {
        if (pflat[p]) {
            set yrange [pylo[p]:pyhi[p]]
        } else {
            if (exists("ymin")) { set yrange [ymin:*] } else { set yrange [*:*] }
        }
    }
    eval extra
    if (errors) {
        plot for [s=0:nseries[p]-1] datafile[p] index s using 1:2:3:4 with @plotwith lt (s+1) title columnheader(1)
    } else {
        plot for [s=0:nseries[p]-1] datafile[p] index s using 1:2 with @plotwith lt (s+1) title columnheader(1)
    }
}
if (npanels > 1) {
    if (keypos eq 'below') { # the key strip: the series of the panel with the most, no data
        best = 1
        do for [p=1:npanels] { if (nseries[p] > nseries[best]) { best = p } }
        set origin 0, 0
        set size 1, strip
        unset title; unset xlabel; unset ylabel; unset border; unset tics; unset grid
        unset logscale; unset arrow; unset label; unset object
        set xrange [0:1]; set yrange [0:1]
        set key center center horizontal maxcols keycols
        plot for [s=0:nseries[best]-1] datafile[best] index s using (NaN):(NaN) with @plotwith lt (s+1) title columnheader(1)
    }
    unset multiplot
}
