#!/usr/bin/env python3
"""Instructions one request costs a server running under valgrind's callgrind.

A figure that does not drift with the machine's noise (wall-clock rates do):
the server's counters are zeroed after a warm-up, `count` requests are sent
one after another on one keep-alive connection, the counters are dumped, and
every instruction the server's threads ran in between is divided by `count`.

    bench/instructions.py <server pid> <url> [count] [header: value ...]

Prints one line: the instructions per request, rounded.
"""

import glob
import http.client
import os
import subprocess
import sys
import time
import urllib.parse


def send(connection, path, headers, count):
    for _ in range(count):
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status >= 400:
            sys.exit(f"{path} answered {response.status}")


def dumped_total(pid, before):
    """The instruction total of the newest dump of `pid` not among `before`."""
    for _ in range(300):
        fresh = set(glob.glob(f"callgrind.out.{pid}*")) - before
        for path in fresh:
            with open(path) as dump:
                for line in dump:
                    if line.startswith(("summary:", "totals:")):
                        return int(line.split()[1])
        time.sleep(0.1)
    sys.exit(f"no callgrind dump of process {pid} appeared")


def main():
    pid, url = sys.argv[1], urllib.parse.urlsplit(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    headers = dict(h.split(": ", 1) for h in sys.argv[4:])
    path = url.path + (f"?{url.query}" if url.query else "")
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    send(connection, path, headers, 200)
    control = ["callgrind_control"]
    subprocess.run(control + ["-z", pid], check=True, stdout=subprocess.DEVNULL)
    send(connection, path, headers, count)
    before = set(glob.glob(f"callgrind.out.{pid}*"))
    subprocess.run(control + ["-d", pid], check=True, stdout=subprocess.DEVNULL)
    print(round(dumped_total(pid, before) / count))


if __name__ == "__main__":
    os.chdir(os.environ.get("CALLGRIND_DIR", "."))
    main()
