# exits.py MODE: end in different ways.
import sys
mode = sys.argv[1]
data = [str(i) for i in range(1000)]
if mode == "raise":
    raise RuntimeError("boom from the script")
if mode == "exit":
    sys.exit(7)
if mode == "exit-in-thread":
    import threading
    t = threading.Thread(target=lambda: [object() for _ in range(1000)]); t.start(); t.join()
    sys.exit(0)
print("normal end")
