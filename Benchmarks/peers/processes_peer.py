#!/usr/bin/env python3
"""CPython's ProcessPoolExecutor and multiprocessing.Pool on the workloads of
`workers-bench processes`. Prints one JSON object per line, as threads_peer.py does."""
import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import sys
import time


def empty(x):
    return x


def tiny(x):
    return x * 2 + 1


def burn(n):
    x = 0x9E3779B97F4A7C15
    for i in range(n):
        x = ((x ^ i) * 0xBF58476CE484E5B9) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


def calibrate(seconds):
    n = 10000
    while True:
        start = time.perf_counter()
        burn(n)
        took = time.perf_counter() - start
        if took > 0.05:
            return int(n * seconds / took)
        n *= 4


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--map-jobs", type=int, default=200000)
    parser.add_argument("--burn-seconds", type=float, default=0.25)
    args = parser.parse_args()
    version = "%d.%d" % sys.version_info[:2]
    ppe = "CPython %s ProcessPoolExecutor" % version
    pool_name = "CPython %s multiprocessing.Pool" % version

    def emit(workload, system, samples, unit):
        print(json.dumps({"workload": workload, "system": system, "samples_s": samples, "unit": unit}), flush=True)

    ctx = mp.get_context("spawn")

    with cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        pool.submit(empty, 0).result()
        samples = []
        for _ in range(args.runs):
            start = time.perf_counter()
            for i in range(args.round_trips):
                pool.submit(empty, i).result()
            samples.append((time.perf_counter() - start) / args.round_trips)
        emit("round-trip", ppe, samples, "per-op")

    with ctx.Pool(2) as pool:
        pool.apply(empty, (0,))
        samples = []
        for _ in range(args.runs):
            start = time.perf_counter()
            out = pool.map(tiny, range(args.map_jobs))
            assert len(out) == args.map_jobs
            samples.append((time.perf_counter() - start) / args.map_jobs)
        emit("map-200k", pool_name + " (auto chunksize)", samples, "per-job")

        n = calibrate(args.burn_seconds)
        serial, parallel = [], []
        for _ in range(max(1, args.runs // 2)):
            start = time.perf_counter()
            for _ in range(8):
                burn(n)
            serial.append(time.perf_counter() - start)
            start = time.perf_counter()
            pool.map(burn, [n] * 8, chunksize=1)
            parallel.append(time.perf_counter() - start)
        emit("cpu-8x0.25s", "CPython %s serial" % version, serial, "wall")
        emit("cpu-8x0.25s", pool_name, parallel, "wall")

    starts = []
    for _ in range(args.runs):
        start = time.perf_counter()
        with cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            list(pool.map(empty, [0, 1], chunksize=1))
            starts.append(time.perf_counter() - start)
    emit("start-2-workers", ppe + " (spawn, until both answered)", starts, "wall")


if __name__ == "__main__":
    main()
