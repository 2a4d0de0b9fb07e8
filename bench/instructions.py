#!/usr/bin/env python3
"""Instructions one request costs a server running under valgrind's callgrind.

A figure that does not drift with the machine's noise (wall-clock rates do):
the server's counters are zeroed after a warm-up, `count` requests are sent
one after another on one keep-alive connection, the counters are dumped, and
every instruction the server's threads ran in between is divided by `count`.

    bench/instructions.py [--less-idle] <server pid>[,<pid>...] <url> [count] [header: value ...]

With several pids (instances behind a balancer that `url` reaches), their
instructions are added up. With --less-idle, what the servers run with no
request (timers, background tasks) over as long as the requests took is
measured next and taken off. Prints one line: the instructions per request, rounded.
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


def counted(pids, during):
    """The instructions `pids` ran, added up, while `during()` ran."""
    control = ["callgrind_control"]
    for pid in pids:
        subprocess.run(control + ["-z", pid], check=True, stdout=subprocess.DEVNULL)
    during()
    total = 0
    for pid in pids:
        before = set(glob.glob(f"callgrind.out.{pid}*"))
        subprocess.run(control + ["-d", pid], check=True, stdout=subprocess.DEVNULL)
        total += dumped_total(pid, before)
    return total


def main():
    args = sys.argv[1:]
    less_idle = args[:1] == ["--less-idle"]
    args = args[1:] if less_idle else args
    pids, url = args[0].split(","), urllib.parse.urlsplit(args[1])
    count = int(args[2]) if len(args) > 2 else 2000
    headers = dict(h.split(": ", 1) for h in args[3:])
    path = url.path + (f"?{url.query}" if url.query else "")
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    send(connection, path, headers, 200)
    started = time.monotonic()
    total = counted(pids, lambda: send(connection, path, headers, count))
    if less_idle:
        took = time.monotonic() - started
        total -= counted(pids, lambda: time.sleep(took))
    print(round(total / count))


if __name__ == "__main__":
    os.chdir(os.environ.get("CALLGRIND_DIR", "."))
    main()
