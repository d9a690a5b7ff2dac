# sigint.py: the program's signals are its own. Under the embedded recorder heapreplay's handlers
# (which remove temporary outputs on SIGINT, SIGTERM, SIGHUP) stayed installed in the process the
# script runs in: signal.getsignal() said None and a SIGINT killed the program (exit 130) instead
# of raising KeyboardInterrupt.
import os
import signal
import sys

print([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)])
try:
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()
except KeyboardInterrupt:
    print("caught KeyboardInterrupt")
sys.exit(4)
