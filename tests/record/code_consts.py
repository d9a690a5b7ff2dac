# code_consts.py: classes whose methods' code objects only cycle garbage holds. A code object is
# not a GC object in 3.11, but its constants, names and local names are tuples (and frozensets),
# which are: when the class dies as cycle garbage, CPython frees the functions, their code
# objects and those tuples inside the collection, and pure counting must keep them all.
import gc

for i in range(300):
    src = (
        "class K%d:\n"
        "    def m(self, x):\n"
        "        y = ('k%d', 'b', 'c', %d)\n"
        "        return x in {1, 2, %d}, y, self.attr_%d\n" % (i, i, i, i + 3, i)
    )
    ns = {}
    exec(compile(src, "<k%d>" % i, "exec"), ns)  # the module's code object dies at once
    k = ns["K%d" % i]
    del ns
    k.m(k(), 1) if hasattr(k, "attr_%d" % i) else None
    del k  # a class is a cycle (its __mro__ holds it): only the collector frees it
    if i % 50 == 49:
        gc.collect()
gc.collect()
