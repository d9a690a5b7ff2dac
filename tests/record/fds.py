# fds.py OUT [closerange|dup2|closeall]: a program that closes or replaces the file descriptors it
# did not open (a daemon's clean-up), then writes a file of its own while it allocates for longer
# than the recorder's flush interval. The recorder's trace descriptor was among those closed: its
# frames went into OUT (the program's file corrupted) and the trace was lost.
import os
import sys
import time

out, how = sys.argv[1], sys.argv[2]
if how == "closerange":
    os.closerange(3, 1024)
elif how == "closeall":  # up to the limit: nowhere above to move a descriptor to
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
elif how == "dup2":
    for fd in range(3, 40):
        os.dup2(2, fd)
    os.closerange(3, 40)
with open(out, "wb") as f:
    data = [str(i) * 20 for i in range(200000)]
    time.sleep(0.4)  # the flusher closes a frame meanwhile
    f.write(b"the program's own data\n")
print(len(data))
