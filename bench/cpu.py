#!/usr/bin/env python3
"""CPU time (user + system, all threads) that processes have used so far, in seconds.

A wall-clock rate moves with whatever else the machine does; the CPU a
request costs the processes that serve it moves much less. Read it before and
after a load and divide the difference by the requests:

    bench/cpu.py <pid or command name> ...

A number is a process id, which must exist; a name counts every process whose
command name (`/proc/<pid>/comm`) it is, e.g. `redis-server`, `beam.smp`,
`postgres`.
Processes that end between two readings take their time with them: count
long-lived servers, not per-connection children that come and go.
"""

import os
import sys


def cpu_seconds(pid, required):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        if required:
            sys.exit(f"no process {pid}")
        return 0.0
    # utime and stime: the 14th and 15th fields, the 12th and 13th after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return None


def main(wanted):
    if not wanted:
        sys.exit(__doc__)
    named = {w for w in wanted if w.isdigit()}
    names = {w for w in wanted if not w.isdigit()}
    found = {p for p in os.listdir("/proc") if p.isdigit() and command_name(p) in names} - named
    total = sum(cpu_seconds(p, True) for p in named) + sum(cpu_seconds(p, False) for p in found)
    print(f"{total:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
