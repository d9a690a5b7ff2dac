#!/bin/sh
# jemalloc_private.sh NM OBJCOPY READELF IN.a OUT.a: make the private copy of jemalloc that the jemalloc
# backend links (see allocators/jemalloc.c for why).
#   - every public symbol of the archive (those not already in jemalloc's internal je_ namespace)
#     is renamed with the prefix hr_je_: malloc -> hr_je_malloc, mallctl -> hr_je_mallctl,
#     operator new -> hr_je__Znwm, malloc_conf -> hr_je_malloc_conf, ...;
#   - the constructor is dropped (.init_array): jemalloc then initialises itself on first use,
#     that is when the backend is created, and not at every start of the harness.
# Then it checks that the copy defines none of the C library's allocation functions and still
# defines the API the backend calls; it fails the build otherwise.
set -eu
nm=$1 objcopy=$2 readelf=$3 in=$4 out=$5
syms=$out.syms
"$nm" -g --defined-only "$in" 2>/dev/null |
  awk 'NF == 3 && $3 !~ /^je_/ && $3 !~ /^DW\.ref\./ { print $3, "hr_je_" $3 }' | sort -u >"$syms"
"$objcopy" --redefine-syms="$syms" --remove-section=.init_array --remove-section=.rela.init_array \
  "$in" "$out"

defined=$("$nm" -g --defined-only "$out" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u)
for s in malloc free calloc realloc posix_memalign aligned_alloc memalign valloc pvalloc \
         malloc_usable_size __libc_malloc __libc_free __libc_calloc __libc_realloc \
         __libc_memalign __posix_memalign __malloc_hook __free_hook pthread_create \
         mallocx mallctl malloc_conf _Znwm _ZdlPv; do
  if printf '%s\n' "$defined" | grep -qx -- "$s"; then
    echo "jemalloc_private.sh: $s is still defined in $out" >&2
    rm -f "$out"
    exit 1
  fi
done
for s in hr_je_malloc hr_je_calloc hr_je_realloc hr_je_free hr_je_mallocx hr_je_rallocx \
         hr_je_dallocx hr_je_sdallocx hr_je_sallocx hr_je_nallocx hr_je_mallctl \
         hr_je_mallctlnametomib hr_je_mallctlbymib hr_je_malloc_stats_print; do
  if ! printf '%s\n' "$defined" | grep -qx -- "$s"; then
    echo "jemalloc_private.sh: $s is missing from $out" >&2
    rm -f "$out"
    exit 1
  fi
done
if LC_ALL=C "$readelf" -S -W "$out" 2>/dev/null | grep -q '\.init_array'; then
  echo "jemalloc_private.sh: a constructor is left in $out" >&2
  rm -f "$out"
  exit 1
fi
