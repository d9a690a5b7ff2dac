# freeze.py [un]: gc.freeze() with garbage cycles made after it; with an argument, gc.unfreeze()
# and more cycles. Its collections validate only if the replay freezes where CPython did.
import gc, sys
keep = [[] for _ in range(2000)]
gc.freeze()
junk = []
for i in range(20000):
    a = []; b = [a]; a.append(b)
    junk.append([i])
    if i % 3000 == 0: junk = []
if len(sys.argv) > 1:
    gc.unfreeze()
    for i in range(5000):
        a = []; b = [a]; a.append(b)
print(gc.get_count(), gc.get_freeze_count())
