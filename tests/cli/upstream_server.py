"""An upstream in a process of its own, so that a test can kill it: `python upstream_server.py NAME [PORT]`
serves like edge_support.Upstream and prints its port on the first line."""
import sys
import threading

from edge_support import Upstream

if __name__ == "__main__":
    upstream = Upstream(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(upstream.port, flush=True)
    threading.Event().wait()
