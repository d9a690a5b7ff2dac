# forever.py: allocates until killed; says "ready" once it has run a while.
import sys, time
t0 = time.time()
said = False
keep = []
while True:
    keep.append([str(i) for i in range(100)])
    if len(keep) > 2000:
        keep = keep[1000:]
    if not said and time.time() - t0 > 0.6:
        print("ready", flush=True)
        said = True
