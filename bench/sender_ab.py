#!/usr/bin/python3
"""Figure 3's sender alone, two builds interleaved: run each given
bench-deltapush-http binary in turn against one nginx (HTTP/1.1 keep-alive
and HTTP/2 over TLS with a private CA), repeat, and print every run and the
medians. For comparing a change against the unchanged code on a shared
machine, where only figures taken in the same run compare.

    bench/sender_ab.py [--reps N] [--count N] [--rounds N] [--proto h1,h2]
                       NAME=BINARY [NAME=BINARY ...]

Each run is one process posting <rounds> bursts of <count> 904-byte bodies
with 64 in flight; the first round (connection setup) is left out. The
load average and the CPU other processes used are printed with each run.
"""

import argparse
import os
import statistics
import sys

import benchlib
from bench import sender_alone


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--proto", default="h1,h2")
    ap.add_argument("builds", nargs="+")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    nginx = benchlib.Nginx()
    protos = {"h1": (nginx.url, None),
              "h2": (nginx.tls_url, nginx.ca_file)}
    res = {}
    try:
        for rep in range(args.reps):
            # alternate the order so neither build always runs first
            order = builds if rep % 2 == 0 else builds[::-1]
            for proto in args.proto.split(","):
                url, ca = protos[proto]
                for name, prog in order:
                    meter = benchlib.CpuMeter()
                    r = sender_alone(prog, nginx, url, ca, args.count,
                                     args.rounds, 64)
                    busy = meter.stop()["foreign_share"] * 100
                    rs = r["rounds"][1:] or r["rounds"]
                    rate = statistics.median(x["rate"] for x in rs)
                    cpu = statistics.median(x["cpu_ms"] for x in rs)
                    failed = sum(x["failed"] for x in r["rounds"])
                    res.setdefault((proto, name), []).append((rate, cpu))
                    print("rep %d %s %-10s %8.0f pushes/s %.4f ms CPU/push "
                          "conns %d failed %d load %.2f others %.0f%%" % (
                              rep + 1, proto, name, rate, cpu, r["conns"],
                              failed, os.getloadavg()[0], busy), flush=True)
    finally:
        nginx.stop()
    print()
    for proto in args.proto.split(","):
        for name, _ in builds:
            v = res[(proto, name)]
            print("%s %-10s median %8.0f pushes/s %.4f ms CPU/push "
                  "(%d runs)" % (proto, name,
                                 statistics.median(x[0] for x in v),
                                 statistics.median(x[1] for x in v),
                                 len(v)))


if __name__ == "__main__":
    sys.exit(main())
