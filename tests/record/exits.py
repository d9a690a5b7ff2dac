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
if mode == "_exit":  # no atexit handlers, no destructors
    import os
    os._exit(4)
if mode == "_exit-in-thread":
    import os, threading
    threading.Thread(target=lambda: os._exit(6)).start()
    threading.Event().wait(30)
if mode == "exec":  # the program is replaced
    import os
    os.execv("/bin/sh", ["sh", "-c", "exit 5"])
if mode == "exec-fails":  # the program goes on after a failed exec
    import os
    try:
        os.execv("/nonexistent/program", ["program"])
    except OSError:
        more = [str(i) for i in range(1000)]
print("normal end")
