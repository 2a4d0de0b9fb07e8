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
measured next and taken off. Prints one line: the instructions per request,
and of them those in software SHA-256 (`sha2::sha256::soft`), both rounded:
valgrind does not offer the CPU's SHA extensions, so under callgrind the
`sha2` crate computes in software what a CPU with SHA-NI does in a few hundred
instructions (the token's HMAC: some 10,000 instructions per poll).
"""

import glob
import http.client
import os
import re
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


SOFTWARE_SHA = "sha2::sha256::soft"


def read_dump(path):
    """(every instruction, those whose function's name has SOFTWARE_SHA) of a
    dump; (None, 0) while callgrind is still writing it (`totals:` comes last)."""
    total, software_sha = None, 0
    names, function, call_follows = {}, None, False
    with open(path) as dump:
        for line in dump:
            if line.startswith("totals:"):
                total = int(line.split()[1])
            elif named := re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line):
                if named[3]:
                    names[named[2]] = named[3]
                if not named[1]:
                    function = names.get(named[2], "")
            elif line.startswith("calls="):
                # The next cost line is the call's inclusive cost, not the caller's own.
                call_follows = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if not call_follows and SOFTWARE_SHA in (function or ""):
                    software_sha += int(line.split()[1])
                call_follows = False
    return total, software_sha


def dumped_total(pid, before):
    """(instructions, of them in software SHA-256) of the newest dump of `pid` not among `before`."""
    for _ in range(300):
        fresh = set(glob.glob(f"callgrind.out.{pid}*")) - before
        for path in fresh:
            total, software_sha = read_dump(path)
            if total is not None:
                return total, software_sha
        time.sleep(0.1)
    sys.exit(f"no callgrind dump of process {pid} appeared")


def counted(pids, during):
    """The instructions `pids` ran, added up, while `during()` ran."""
    control = ["callgrind_control"]
    for pid in pids:
        subprocess.run(control + ["-z", pid], check=True, stdout=subprocess.DEVNULL)
    during()
    total = software_sha = 0
    for pid in pids:
        before = set(glob.glob(f"callgrind.out.{pid}*"))
        subprocess.run(control + ["-d", pid], check=True, stdout=subprocess.DEVNULL)
        instructions, sha = dumped_total(pid, before)
        total, software_sha = total + instructions, software_sha + sha
    return total, software_sha


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
    total, software_sha = counted(pids, lambda: send(connection, path, headers, count))
    if less_idle:
        took = time.monotonic() - started
        idle, idle_sha = counted(pids, lambda: time.sleep(took))
        total, software_sha = total - idle, software_sha - idle_sha
    print(round(total / count), round(software_sha / count))


if __name__ == "__main__":
    os.chdir(os.environ.get("CALLGRIND_DIR", "."))
    main()
