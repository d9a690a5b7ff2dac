# style.gp: terminal, fonts and line styles shared by every heapreplay figure template.
#
# Variables (set them before loading a template, e.g. with -e or a figure's NAME.gp):
#   fmt   'png' (default; a quick look), 'pdf' or 'svg' (for papers)
#   out   the output file
#   w, h  size multipliers (default 1, 1): 1 is 1000x640 px (png, svg) or 5x3.2 in (pdf)
if (!exists("fmt")) fmt = 'png'
if (!exists("w")) w = 1.0
if (!exists("h")) h = 1.0
if (fmt eq 'pdf') {
    set terminal pdfcairo noenhanced size (5.0*w),(3.2*h) font "DejaVu Sans,9" linewidth 1.2
} else {
    if (fmt eq 'svg') {
        set terminal svg noenhanced size int(1000*w),int(640*h) dynamic font "DejaVu Sans,15" linewidth 1.5 background rgb "white"
    } else {
        set terminal pngcairo noenhanced size int(1000*w),int(640*h) font "DejaVu Sans,15" linewidth 1.5
    }
}
set output out
# characters of the key font that fit across the canvas (for laying out keys)
chars = (fmt eq 'png') ? 76.0 * w : 94.0 * w  # GPVAL_TERM_XSIZE / GPVAL_TERM_HCHAR at w = 1
if (!exists("keylen")) keylen = 20
# Okabe-Ito colours (distinguishable with colour-vision deficiencies), each with its own dash
# pattern and point shape so that a greyscale print still tells the series apart.
set linetype 1 lc rgb "#0072B2" lw 2 pt 7 ps 1.1 dt 1
set linetype 2 lc rgb "#D55E00" lw 2 pt 5 ps 1.0 dt 2
set linetype 3 lc rgb "#009E73" lw 2 pt 9 ps 1.3 dt 4
set linetype 4 lc rgb "#CC79A7" lw 2 pt 11 ps 1.3 dt 5
set linetype 5 lc rgb "#E69F00" lw 2 pt 13 ps 1.2 dt 3
set linetype 6 lc rgb "#56B4E9" lw 2 pt 15 ps 1.2 dt 1
set linetype 7 lc rgb "#000000" lw 2 pt 4 ps 1.0 dt 2
set linetype 8 lc rgb "#999999" lw 2 pt 6 ps 1.0 dt 4
set linetype cycle 8
set border 3 lw 1
set tics nomirror out scale 0.6
set grid xtics ytics lc rgb "#e0e0e0" lw 1 dt 1
set key noautotitle box lc rgb "#bbbbbb" opaque samplen 3 spacing 1.1 width 2
set datafile missing '?'
