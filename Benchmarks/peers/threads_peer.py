#!/usr/bin/env python3
"""CPython's ThreadPoolExecutor on the workloads of `workers-bench threads`.

Prints one JSON object per line: {"workload", "system", "samples_s", "unit"}, where each sample
is the per-operation cost in seconds (round trip, per job) or the wall time of one run, exactly
as the Swift side measures it. Run by workers-bench; usable on its own:

    python3 threads_peer.py --runs 5 --round-trips 20000 --map-jobs 100000 --threads 4
"""
import argparse
import concurrent.futures as cf
import json
import sys
import time


def empty():
    return None


def block_10ms(_):
    time.sleep(0.010)


def round_trip(threads, n, runs):
    samples = []
    with cf.ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in range(200):
            pool.submit(empty).result()
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(n):
                pool.submit(empty).result()
            samples.append((time.perf_counter() - start) / n)
    return samples


def map_cost(threads, n, runs):
    samples = []
    with cf.ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in range(runs):
            start = time.perf_counter()
            for _ in pool.map(lambda x: None, range(n)):
                pass
            samples.append((time.perf_counter() - start) / n)
    return samples


def blocking(threads, jobs, runs):
    samples = []
    with cf.ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in range(runs):
            start = time.perf_counter()
            list(pool.map(block_10ms, range(jobs)))
            samples.append(time.perf_counter() - start)
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=20000)
    parser.add_argument("--map-jobs", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--blocking-jobs", type=int, default=1000)
    parser.add_argument("--blocking-threads", type=int, default=100)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    system = "CPython %d.%d ThreadPoolExecutor" % sys.version_info[:2]

    def emit(workload, samples, unit):
        print(json.dumps({"workload": workload, "system": system, "samples_s": samples, "unit": unit}), flush=True)

    only = set(filter(None, args.only.split(",")))
    if not only or "round-trip" in only:
        emit("round-trip", round_trip(args.threads, args.round_trips, args.runs), "per-op")
    if not only or "map-100k" in only:
        emit("map-100k", map_cost(args.threads, args.map_jobs, args.runs), "per-job")
    if not only or "blocking-1000x10ms" in only:
        emit("blocking-1000x10ms", blocking(args.blocking_threads, args.blocking_jobs, max(1, args.runs // 2)), "wall")


if __name__ == "__main__":
    main()
