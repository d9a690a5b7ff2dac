# longlived.py: a large long-lived heap, then many collections that leave almost no survivors.
# Generation 2's count passes its threshold again and again while long_lived_pending stays below
# long_lived_total / 4, so CPython collects generation 1 or 0 there, never 2: a replay of the
# allocation trace must know the survivor counts (GC_SURVIVORS) to do the same.
import gc
keep = [[i] for i in range(100000)]
gc.collect()
for i in range(200000):
    a = []
    a.append(a)
print(gc.get_stats())
