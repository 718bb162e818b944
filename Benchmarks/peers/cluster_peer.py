#!/usr/bin/env python3
"""The Python peers of `workers-bench cluster`, on this machine in the same run.

* Dask (distributed) with a LocalCluster of 2 worker processes, 1 thread each: a sequential
  round trip (`client.submit(f, i).result()`) and throughput (`client.map` + `gather`).
* With Slurm up (`SLURM_CONF` set): `srun -n2 python3` workers that dial back to a listener,
  from Popen until both have connected (what notes/slurm.md measured at 126-402 ms).

Prints one JSON line per (workload, system): samples in seconds (or jobs/s for throughput).
Skips, with a line on stderr, what is not installed.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time


def emit(workload, system, unit, samples):
    print(json.dumps({"workload": workload, "system": system, "unit": unit, "samples_s": samples}), flush=True)


def inc(x):
    return x + 1


def dask_peer(runs, round_trips, map_jobs):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("cluster_peer: dask.distributed not installed (pip install 'dask[distributed]')", file=sys.stderr)
        return
    import logging
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(inc, 0).result()
        trips = []
        for _ in range(runs):
            start = time.perf_counter()
            for i in range(round_trips):
                client.submit(inc, i, pure=False).result()
            trips.append((time.perf_counter() - start) / round_trips)
        emit("round-trip", "Dask distributed, 2 worker processes", "per-op", trips)
        rates = []
        for _ in range(runs):
            start = time.perf_counter()
            futures = client.map(inc, range(map_jobs), pure=False)
            client.gather(futures)
            rates.append(map_jobs / (time.perf_counter() - start))
        emit("throughput-empty", "Dask distributed, 2 worker processes", "jobs/s", rates)


WORKER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.recv(1)
"""


def srun_peer(runs, listen):
    if not os.environ.get("SLURM_CONF") or not shutil.which("srun"):
        return
    python = os.path.realpath(sys.executable)
    samples = []
    for _ in range(max(1, runs // 2)):
        server = socket.socket()
        server.bind((listen, 0))
        server.listen(8)
        port = server.getsockname()[1]
        start = time.perf_counter()
        process = subprocess.Popen(["srun", "--nodes=1", "--ntasks=2", "--quiet", python, "-c", WORKER, listen, str(port)])
        connections = [server.accept()[0] for _ in range(2)]
        samples.append(time.perf_counter() - start)
        for connection in connections:
            connection.close()
        process.wait()
        server.close()
    emit("connect-srun-2-agents", "srun -n2 python3, dialling back", "wall", samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--map-jobs", type=int, default=5000)
    parser.add_argument("--listen", default="127.0.0.1")
    arguments = parser.parse_args()
    srun_peer(arguments.runs, arguments.listen)
    dask_peer(arguments.runs, arguments.round_trips, arguments.map_jobs)


if __name__ == "__main__":
    main()
