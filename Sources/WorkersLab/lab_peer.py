#!/usr/bin/env python3
"""workers lab: the CPython peer.

Runs the lab's workloads in real CPython so they can be shown next to the Swift runs: threads speed up
I/O-bound work, threads under the GIL do not speed up CPU-bound work, and processes do.

Input: one JSON object on stdin (every key optional):
  {"workers": 2, "io_tasks": 8, "io_sleep_s": 0.1, "net_port": null, "net_requests": 8,
   "cpu_tasks": 4, "cpu_task_s": 0.25, "switch_interval_s": 0.005, "probe_count": 60,
   "probe_sleep_s": 0.001, "scaling_widths": [1, 2, 4, 8], "io_scaling_widths": [1, 2, 4, 8],
   "scaling_cpu_tasks": 8, "scaling_cpu_task_s": 0.04, "scaling_io_tasks": 8, "scaling_io_sleep_s": 0.02,
   "data_sizes": [1024, 65536, 1048576], "data_tasks": 4, "data_stride": 16, "data_repeats": 3,
   "workloads": ["io-sleep", "io-net", "cpu", "mixed", "cpu-scaling", "io-scaling", "data", "convoy"]}
Output: a JSON array of cells (the LabCell schema, source "cpython") on stdout and nothing else there.
Progress lines go to stderr, prefixed "cpython: ".

Python 3.8+, standard library only, one self-contained file. Run it from a file
(`python3 /tmp/x/lab_peer.py`); `python3 -c` also works where multiprocessing uses "fork" (Linux).
"""

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

perf_counter = time.perf_counter

MASK64 = 0xFFFFFFFFFFFFFFFF
LCG_MUL = 6364136223846793005
LCG_INC = 1442695040888963407
SPAN_CAP = 400
NET_TIMEOUT_S = 10.0
DEFAULTS = {
    "workers": 2,
    "io_tasks": 8,
    "io_sleep_s": 0.1,
    "net_port": None,
    "net_requests": 8,
    "cpu_tasks": 4,
    "cpu_task_s": 0.25,
    "switch_interval_s": 0.005,
    "probe_count": 60,
    "probe_sleep_s": 0.001,
    "cpu_rounds": 2,
    "scaling_widths": [1, 2, 4, 8],
    "io_scaling_widths": [1, 2, 4, 8],
    "scaling_cpu_tasks": 8,
    "scaling_cpu_task_s": 0.04,
    "scaling_io_tasks": 8,
    "scaling_io_sleep_s": 0.02,
    "data_sizes": [1024, 65536, 1048576],
    "data_tasks": 4,
    "data_stride": 16,
    "data_repeats": 3,
    "convoy_widths": [2, 4, 8],
    "convoy_cell_s": 0.6,
    "convoy_min_sleeps": 10,
    "workloads": ["io-sleep", "io-net", "cpu", "mixed"],
}


def log(message):
    try:
        sys.stderr.write("cpython: %s\n" % message)
        sys.stderr.flush()
    except Exception:
        pass


# ----------------------------------------------------------------------------------------------
# Work, kept at module top level so multiprocessing can pickle it by name.

def kernel(seed, n):
    """The lab's deterministic CPU kernel: a 64-bit LCG whose outputs are XOR-folded."""
    state = seed
    acc = 0
    mul = LCG_MUL
    inc = LCG_INC
    mask = MASK64
    for _ in range(n):
        state = (state * mul + inc) & mask
        acc ^= state >> 33
    return acc


def net_request(port):
    """One request to the loopback server: connect, send ping, read one line, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=NET_TIMEOUT_S) as sock:
        sock.sendall(b"ping\n")
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(64)
            if not chunk:
                raise ConnectionError("server closed the connection before answering")
            data += chunk
    return data


def _proc_sleep(args):
    index, seconds = args
    start = perf_counter()
    time.sleep(seconds)
    return (os.getpid(), index, start, perf_counter(), None)


def _proc_net(args):
    index, port = args
    start = perf_counter()
    net_request(port)
    return (os.getpid(), index, start, perf_counter(), None)


def _proc_cpu(args):
    index, n = args
    start = perf_counter()
    result = kernel(index + 1, n)
    return (os.getpid(), index, start, perf_counter(), result)


def data_work(block, stride):
    """The data-heavy task: reads and rewrites every stride-th byte (a running hash of the bytes
    read so far) and returns the block, as the Swift side's DataJob does."""
    out = bytearray(block)
    acc = 0
    for i in range(0, len(out), max(1, stride)):
        acc = (acc * 31 + out[i]) & 0xFFFFFFFF
        out[i] ^= acc & 0xFF
    return bytes(out)


def _proc_data(args):
    block, stride = args
    return data_work(block, stride)


def _proc_nothing(_):
    return os.getpid()


def _proc_cpu_until_stopped(started, stop, conn, chunk_n):
    """The mixed workload's CPU process: run the kernel in chunks until told to stop."""
    spans = []
    seed = 1
    started.set()
    try:
        while not stop.is_set():
            start = perf_counter()
            kernel(seed, chunk_n)
            if len(spans) < SPAN_CAP:
                spans.append((start, perf_counter()))
            seed += 1
    finally:
        try:
            conn.send(spans)
            conn.close()
        except Exception:
            pass


# ----------------------------------------------------------------------------------------------
# Helpers.

def mp_context():
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def cpu_seconds():
    t = os.times()
    return t[0] + t[1] + t[2] + t[3]


def finite(x, digits=6):
    try:
        x = float(x)
    except Exception:
        return 0.0
    if x != x or x in (float("inf"), float("-inf")):
        return 0.0
    return round(x, digits)


def percentile(values, q):
    """Linear-interpolated percentile of a non-empty list, q in [0, 1]."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def to_spans(raw, t0, lanes_from=None):
    """raw: (owner, task, start, end, state) with absolute perf_counter times. Owners (thread ids or
    pids) become lanes 0..N-1 in order of their first span; times become seconds from t0. Keeps the
    earliest SPAN_CAP spans. Returns (spans, truncated)."""
    raw = sorted(raw, key=lambda r: (r[2], r[1]))
    lanes = {}
    for owner, lane in (lanes_from or {}).items():
        if any(r[0] == owner for r in raw):
            lanes[owner] = lane
    for owner, _task, _start, _end, _state in raw:
        if owner not in lanes:
            lanes[owner] = len(lanes)
    spans = [
        {
            "lane": lanes[owner],
            "task": task,
            "start": finite(start - t0),
            "end": finite(end - t0),
            "state": state,
        }
        for owner, task, start, end, state in raw
    ]
    truncated = len(spans) > SPAN_CAP
    return spans[:SPAN_CAP], truncated


def join_notes(*notes):
    text = "; ".join(n for n in notes if n)
    return text or None


def gil_remark():
    check = getattr(sys, "_is_gil_enabled", None)
    if check is None:
        return "GIL enabled"
    try:
        return "GIL enabled" if check() else "GIL disabled (free-threaded build)"
    except Exception:
        return None


# ----------------------------------------------------------------------------------------------
# Running one cell.

class Cell(object):
    def __init__(self, workload, mode, label, workers):
        self.workload = workload
        self.mode = mode
        self.label = label
        self.workers = workers
        self.wall = 0.0
        self.cpu_per_wall = 0.0
        self.checksum = None
        self.probe_median_ms = None
        self.probe_p90_ms = None
        self.spans = []
        self.notes = []
        self.failed = None
        self.speedup = 0.0
        self.input_bytes = None

    def to_json(self):
        note = ("failed: %s" % self.failed) if self.failed else join_notes(*self.notes)
        return {
            "workload": self.workload,
            "mode": self.mode,
            "label": self.label,
            "workers": int(self.workers),
            "wall_s": finite(self.wall) if not self.failed else 0.0,
            "speedup": finite(self.speedup, 4) if not self.failed else 0.0,
            "cpu_per_wall": finite(self.cpu_per_wall, 4) if not self.failed else 0.0,
            "checksum": self.checksum,
            "source": "cpython",
            "probe_median_ms": None if self.probe_median_ms is None else finite(self.probe_median_ms, 4),
            "probe_p90_ms": None if self.probe_p90_ms is None else finite(self.probe_p90_ms, 4),
            "spans": self.spans if not self.failed else [],
            "note": note,
            "input_bytes": self.input_bytes,
        }


def run_cell(cell, body):
    """Times body(cell, t0) with perf_counter and os.times (self + waited-for children).

    body returns (raw_spans, wall_override_or_None). wall_s is the whole timed region unless the body
    overrides it (the mixed probe reports the probe's own time); cpu_per_wall always uses the
    whole timed region."""
    try:
        cpu0 = cpu_seconds()
        t0 = perf_counter()
        raw, wall_override = body(cell, t0)
        t1 = perf_counter()
        cpu1 = cpu_seconds()
        region = t1 - t0
        cell.wall = wall_override if wall_override is not None else region
        cell.cpu_per_wall = (cpu1 - cpu0) / region if region > 0 else 0.0
        spans, truncated = to_spans(raw, t0, {"probe": 0})
        cell.spans = spans
        if truncated:
            cell.notes.append("timeline truncated to the first %d spans" % SPAN_CAP)
    except Exception as error:  # a mode that fails still yields a cell
        cell.failed = "%s: %s" % (type(error).__name__, error) if str(error) else type(error).__name__
    extra = ""
    if cell.probe_median_ms is not None and not cell.failed:
        extra = " probe median %.2f ms" % cell.probe_median_ms
    log("%-8s %-18s %s%s" % (cell.workload, cell.mode,
                              ("%.3f s" % cell.wall) if not cell.failed else ("FAILED " + cell.failed), extra))
    return cell


def pool_map(ctx, processes, fn, items, timeout):
    """multiprocessing.Pool(processes).map(fn, items, chunksize=1), closed and joined, with a timeout."""
    pool = ctx.Pool(processes)
    try:
        results = pool.map_async(fn, items, chunksize=1).get(timeout)
        pool.close()
        pool.join()
        return results
    except BaseException:
        pool.terminate()
        pool.join()
        raise


def set_speedups(cells):
    serial = [c for c in cells if c.mode == "cpython-serial" and not c.failed and c.wall > 0]
    base = serial[0].wall if serial else 0.0
    for c in cells:
        c.speedup = base / c.wall if (base > 0 and c.wall > 0 and not c.failed) else 0.0


# ----------------------------------------------------------------------------------------------
# Workloads.

def io_workload(cfg, ctx, workload):
    workers = cfg["workers"]
    if workload == "io-sleep":
        count = cfg["io_tasks"]
        seconds = cfg["io_sleep_s"]

        def one(i):
            start = perf_counter()
            time.sleep(seconds)
            return (threading.get_ident(), i, start, perf_counter(), "waiting")

        async def one_async(i):
            start = perf_counter()
            await asyncio.sleep(seconds)
            return (0, i, start, perf_counter(), "waiting")

        proc_fn, proc_arg = _proc_sleep, seconds
        timeout = 60.0 + 4 * count * seconds
    else:
        count = cfg["net_requests"]
        port = cfg["net_port"]

        def one(i):
            start = perf_counter()
            net_request(port)
            return (threading.get_ident(), i, start, perf_counter(), "waiting")

        async def one_async(i):
            start = perf_counter()
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), NET_TIMEOUT_S)
            try:
                writer.write(b"ping\n")
                await writer.drain()
                await asyncio.wait_for(reader.readuntil(b"\n"), NET_TIMEOUT_S)
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except Exception:
                    pass
            return (0, i, start, perf_counter(), "waiting")

        proc_fn, proc_arg = _proc_net, port
        timeout = 60.0 + count * NET_TIMEOUT_S

    def serial(cell, t0):
        return [one(i) for i in range(count)], None

    def threads(cell, t0):
        with ThreadPoolExecutor(max_workers=count) as pool:
            raw = list(pool.map(one, range(count)))
        return raw, None

    def run_async(cell, t0):
        async def main():
            return await asyncio.gather(*(one_async(i) for i in range(count)))
        return list(asyncio.run(main())), None

    def processes(cell, t0):
        results = pool_map(ctx, workers, proc_fn, [(i, proc_arg) for i in range(count)], timeout)
        return [(pid, i, s, e, "waiting") for pid, i, s, e, _ in results], None

    cells = [
        run_cell(Cell(workload, "cpython-serial", "CPython serial", 1), serial),
        run_cell(Cell(workload, "cpython-threads", "CPython threading (%d threads)" % count, count), threads),
        run_cell(Cell(workload, "cpython-asyncio", "CPython asyncio (1 thread)", 1), run_async),
        run_cell(Cell(workload, "cpython-processes", "CPython multiprocessing.Pool(%d)" % workers, workers),
                 processes),
    ]
    set_speedups(cells)
    return cells


def cpu_workload(cfg, ctx, n):
    workers = cfg["workers"]
    count = cfg["cpu_tasks"]
    timeout = 120.0 + 10 * count * cfg["cpu_task_s"]
    n_note = "n=%d iterations per task" % n

    def one(i):
        start = perf_counter()
        result = kernel(i + 1, n)
        return (threading.get_ident(), i, start, perf_counter(), "running", result)

    def finish(cell, rows):
        acc = 0
        for row in rows:
            acc ^= row[5]
        cell.checksum = "0x%016x" % acc
        return [row[:5] for row in rows], None

    def serial(cell, t0):
        return finish(cell, [one(i) for i in range(count)])

    def threads(cell, t0):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(one, range(count)))
        return finish(cell, rows)

    def processes(cell, t0):
        results = pool_map(ctx, workers, _proc_cpu, [(i, n) for i in range(count)], timeout)
        return finish(cell, [(pid, i, s, e, "running", r) for pid, i, s, e, r in results])

    def run_async(cell, t0):
        async def one_async(i):
            start = perf_counter()
            result = kernel(i + 1, n)
            return (0, i, start, perf_counter(), "running", result)

        async def main():
            return await asyncio.gather(*(one_async(i) for i in range(count)))
        return finish(cell, list(asyncio.run(main())))

    async_cell = Cell("cpu", "cpython-asyncio", "CPython asyncio (1 thread, no parallelism)", 1)
    async_cell.notes += [n_note, "coroutines that never await run one after another"]
    # A core of a virtual machine can run CPython's loop at two-thirds speed for a while (seen:
    # 239-354 ns an iteration on one idle core). So serial, threads and processes run in two
    # rounds, back to back, and each speed-up is the median of its rounds' paired ratios (serial
    # of a round / the mode in the same round): neighbours in time see the same machine.
    def make_serial():
        cell = Cell("cpu", "cpython-serial", "CPython serial", 1)
        cell.notes.append(n_note)
        return cell

    def make_processes():
        cell = Cell("cpu", "cpython-processes", "CPython multiprocessing.Pool(%d)" % workers, workers)
        cell.notes.append(n_note)
        return cell

    def make_threads():
        cell = Cell("cpu", "cpython-threads", "CPython threading (%d threads)" % workers, workers)
        cell.notes += [n_note, gil_remark()]
        return cell

    rounds = []
    round_count = max(1, int(cfg.get("cpu_rounds", 2)))
    for _ in range(round_count):
        rounds.append((run_cell(make_serial(), serial), run_cell(make_threads(), threads), run_cell(make_processes(), processes)))

    def pick(index):
        ok = [r[index] for r in rounds if not r[index].failed]
        return min(ok, key=lambda c: c.wall) if ok else rounds[0][index]

    def paired(index):
        ratios = [r[0].wall / r[index].wall for r in rounds
                  if not r[0].failed and not r[index].failed and r[0].wall > 0 and r[index].wall > 0]
        return statistics.median(ratios) if ratios else 0.0

    serial_cell, threads_cell, proc_cell = pick(0), pick(1), pick(2)
    cells = [serial_cell, threads_cell, proc_cell, run_cell(async_cell, run_async)]
    set_speedups(cells)
    if round_count > 1:
        for index, cell in ((1, threads_cell), (2, proc_cell)):
            if not cell.failed:
                cell.speedup = paired(index)
                cell.notes.append("speed-up: median of %d rounds' paired ratios to serial; wall: the faster round" % round_count)
        serial_cell.notes.append("wall: the faster of %d rounds" % round_count)
    checks = set(c.checksum for c in cells if c.checksum and not c.failed)
    if len(checks) > 1:
        for c in cells:
            c.notes.append("checksums differ between modes!")
    return cells


def probe(cfg, raw, budget_s=0.0):
    """probe_count sleeps of probe_sleep_s on the calling thread, or fewer (at least
    convoy_min_sleeps) once budget_s has passed when it is positive; returns (lateness list,
    total time)."""
    count = cfg["probe_count"]
    sleep_s = cfg["probe_sleep_s"]
    lateness = []
    begin = perf_counter()
    for index in range(count):
        if budget_s > 0 and index >= cfg["convoy_min_sleeps"] and perf_counter() - begin >= budget_s:
            break
        t0 = perf_counter()
        time.sleep(sleep_s)
        t1 = perf_counter()
        lateness.append(t1 - t0 - sleep_s)
        raw.append(("probe", -1, t0, t1, "waiting"))
    return lateness, perf_counter() - begin


def kernel_chunk(cfg, n):
    """Kernel iterations of about 10 ms: what a busy thread runs between looking at its stop flag."""
    return max(1000, int(n * 0.01 / max(cfg["cpu_task_s"], 1e-6)))


def record_probe(cell, lateness):
    ms = [x * 1000.0 for x in lateness]
    cell.probe_median_ms = statistics.median(ms)
    cell.probe_p90_ms = percentile(ms, 0.9)


def probe_beside_threads(cfg, chunk_n, count, spans, budget_s=0.0):
    """The probe while `count` threads run the kernel until it ends; returns (raw, lateness,
    total). Each busy thread appends its chunks to spans (lane name "cpu<i>")."""
    raw = []
    started = threading.Barrier(count + 1)
    stop = threading.Event()

    def cpu_loop(index):
        seed = index + 1
        started.wait()
        while not stop.is_set():
            start = perf_counter()
            kernel(seed, chunk_n)
            if len(spans) < SPAN_CAP:
                spans.append(("cpu%d" % index, seed - 1, start, perf_counter(), "running"))
            seed += 1

    workers = [threading.Thread(target=cpu_loop, args=(i,), name="lab-cpu-%d" % i, daemon=True) for i in range(count)]
    for worker in workers:
        worker.start()
    try:
        started.wait(30)
        lateness, total = probe(cfg, raw, budget_s)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    return raw, lateness, total


def convoy_workload(cfg, n):
    """The probe behind convoy_widths CPU threads (2, 4, ...: the CPU curve's widths; behind one
    is the mixed workload): a cell per width, its workers the CPU threads."""
    chunk_n = kernel_chunk(cfg, n)
    cells = []
    for width in cfg["convoy_widths"]:
        def threads(cell, t0, width=width):
            raw, lateness, total = probe_beside_threads(cfg, chunk_n, width, [], cfg["convoy_cell_s"])
            record_probe(cell, lateness)
            cell.probe_count = len(lateness)
            return raw, total
        cell = Cell("convoy", "cpython-threads", "CPython threading", width)
        cell = run_cell(cell, threads)
        cell.notes.append("probe: %d x sleep(%g ms) behind %d CPU thread%s; wall_s is the probe's time"
                          % (getattr(cell, "probe_count", 0), cfg["probe_sleep_s"] * 1000, width, "" if width == 1 else "s"))
        cell.speedup = 1.0 if not cell.failed and cell.wall > 0 else 0.0
        cell.spans = []
        cells.append(cell)
    return cells


def mixed_workload(cfg, ctx, n):
    chunk_n = kernel_chunk(cfg, n)
    interval_ms = cfg["switch_interval_s"] * 1000.0

    def serial(cell, t0):
        raw = []
        lateness, total = probe(cfg, raw)
        record_probe(cell, lateness)
        return raw, total

    def threads(cell, t0):
        spans = []
        raw, lateness, total = probe_beside_threads(cfg, chunk_n, 1, spans)
        record_probe(cell, lateness)
        return raw + spans, total

    def processes(cell, t0):
        raw = []
        started = ctx.Event()
        stop = ctx.Event()
        receiver, sender = ctx.Pipe(duplex=False)
        worker = ctx.Process(target=_proc_cpu_until_stopped, args=(started, stop, sender, chunk_n), daemon=True)
        worker.start()
        spans = []
        try:
            if not started.wait(30):
                raise RuntimeError("CPU process did not start")
            lateness, total = probe(cfg, raw)
        finally:
            stop.set()
            try:
                if receiver.poll(30):
                    spans = receiver.recv()
            except Exception:
                spans = []
            worker.join(30)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
        record_probe(cell, lateness)
        return raw + [("cpu", i, s, e, "running") for i, (s, e) in enumerate(spans)], total

    def make(mode, label, workers, note):
        cell = Cell("mixed", mode, label, workers)
        cell.notes.append(note)
        return cell

    probe_note = "probe: %d x sleep(%g ms); wall_s is the probe's time" % (cfg["probe_count"], cfg["probe_sleep_s"] * 1000)
    cells = [
        run_cell(make("cpython-serial", "CPython serial (probe alone)", 1, probe_note), serial),
        run_cell(make("cpython-threads", "CPython threading: probe + 1 CPU thread (switch interval %g ms)" % interval_ms,
                      2, probe_note + "; lane 1 is the CPU thread"), threads),
        run_cell(make("cpython-processes", "CPython multiprocessing: probe + 1 CPU process", 2,
                      probe_note + "; lane 1 is the CPU process"), processes),
    ]
    set_speedups(cells)
    return cells

def scaling_workload(cfg, ctx, workload, n):
    """The scaling curve: the same tasks serially once, then on threads and on processes at each
    width (widths outside, modes inside). n is the kernel's iterations for one curve task."""
    if workload == "cpu-scaling":
        widths = cfg["scaling_widths"]
        count = cfg["scaling_cpu_tasks"]

        def one(i):
            return kernel(i + 1, n)

        proc_fn, items = _proc_cpu, [(i, n) for i in range(count)]
        timeout = 120.0 + 10 * count * cfg["scaling_cpu_task_s"]
    else:
        widths = cfg["io_scaling_widths"]
        count = cfg["scaling_io_tasks"]
        seconds = cfg["scaling_io_sleep_s"]

        def one(i):
            time.sleep(seconds)
            return 0

        proc_fn, items = _proc_sleep, [(i, seconds) for i in range(count)]
        timeout = 60.0 + 4 * count * seconds

    def checksum(cell, values):
        if workload == "cpu-scaling":
            acc = 0
            for value in values:
                acc ^= value
            cell.checksum = "0x%016x" % acc
        return [], None

    def serial(cell, t0):
        return checksum(cell, [one(i) for i in range(count)])

    def threads_at(width):
        def body(cell, t0):
            with ThreadPoolExecutor(max_workers=width) as pool:
                return checksum(cell, list(pool.map(one, range(count))))
        return body

    def processes_at(width):
        def body(cell, t0):
            results = pool_map(ctx, width, proc_fn, items, timeout)
            return checksum(cell, [row[4] or 0 for row in results])
        return body

    # CPython's own speed swings from one run to the next on a virtual machine (back to back, the
    # same 8 x 15 ms of kernel took 116 to 185 ms here), in streaks. So each width has a serial
    # run beside its points, and each point is divided by its own width's serial run; the serial
    # cell reports the median of them.
    bases = []
    cells = []
    for width in widths:
        base = run_cell(Cell(workload, "cpython-serial", "CPython serial", 1), serial)
        bases.append(base)
        points = [
            run_cell(Cell(workload, "cpython-threads", "CPython threading (%d threads)" % width, width), threads_at(width)),
            run_cell(Cell(workload, "cpython-processes", "CPython multiprocessing.Pool(%d)" % width, width), processes_at(width)),
        ]
        for point in points:
            ok = not base.failed and base.wall > 0 and not point.failed and point.wall > 0
            point.speedup = base.wall / point.wall if ok else 0.0
        cells += points
    # The serial cell reports the median of the runs that worked.
    walls = [c.wall for c in bases if not c.failed and c.wall > 0]
    first = bases[0] if bases else run_cell(Cell(workload, "cpython-serial", "CPython serial", 1), serial)
    if walls:
        first.failed = None
        first.wall = statistics.median(walls)
        first.notes.append("the median of %d serial runs, one beside each width's points (each point's speed-up is against its own)" % len(walls))
    first.speedup = 1.0 if not first.failed else 0.0
    cells.insert(0, first)
    for cell in cells:
        cell.spans = []
    return cells


def data_workload(cfg, ctx):
    """Inputs of growing size with little work per byte, serially, on threads and on a process
    pool started once (its start-up timed apart): where moving the bytes costs more than it gains."""
    workers = cfg["workers"]
    tasks = cfg["data_tasks"]
    stride = cfg["data_stride"]
    repeats = max(1, cfg["data_repeats"])
    cells = []
    start = perf_counter()
    pool = ctx.Pool(workers)
    try:
        pool.map(_proc_nothing, range(workers), chunksize=1)  # every worker up
        startup = Cell("data", "cpython-pool-start", "CPython multiprocessing.Pool(%d) start-up" % workers, workers)
        startup.wall = perf_counter() - start
        startup.notes.append("from creating the pool to every worker answering once")
        cells.append(startup)
        with ThreadPoolExecutor(max_workers=workers) as threads:
            for size in cfg["data_sizes"]:
                block = bytes((i * 2654435761 >> 24) & 0xFF for i in range(min(size, 4096))) * (size // 4096 + 1)
                block = block[:size]
                blocks = [block] * tasks
                walls = {"serial": [], "threads": [], "processes": []}
                outputs = {}
                runs = {
                    "serial": lambda: [data_work(b, stride) for b in blocks],
                    "threads": lambda: list(threads.map(lambda b: data_work(b, stride), blocks)),
                    "processes": lambda: pool.map(_proc_data, [(b, stride) for b in blocks], chunksize=1),
                }
                order = ["serial", "threads", "processes"]
                for round_index in range(repeats):
                    # Each repeat starts with another mode, so none is always first after a change of size.
                    first = round_index % len(order)
                    for mode in order[first:] + order[:first]:
                        t0 = perf_counter()
                        outputs[mode] = runs[mode]()
                        walls[mode].append(perf_counter() - t0)
                serial_wall = statistics.median(walls["serial"])
                for mode, label in (("serial", "CPython serial"),
                                    ("threads", "CPython threading (%d threads)" % workers),
                                    ("processes", "CPython multiprocessing.Pool(%d)" % workers)):
                    cell = Cell("data", "cpython-" + mode, label, 1 if mode == "serial" else workers)
                    cell.wall = statistics.median(walls[mode])
                    cell.speedup = serial_wall / cell.wall if cell.wall > 0 else 0.0
                    cell.input_bytes = size
                    if outputs[mode] != outputs["serial"]:
                        cell.notes.append("outputs differ from serial!")
                    cells.append(cell)
                log("data     %8d B: serial %.4f s, threads %.4f s, processes %.4f s" % (
                    size, serial_wall, statistics.median(walls["threads"]), statistics.median(walls["processes"])))
        pool.close()
        pool.join()
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    return cells


def calibrate(cpu_task_s):
    """Iterations of the kernel that take about cpu_task_s in this interpreter: the median of five
    50,000-iteration samples, scaled. (On a VM the speed of a core can vary by 2x from moment to moment,
    so a single sample, or the fastest, can be far off.)"""
    kernel(1, 5000)  # warm up
    per_iter = []
    sample = 50000
    for _ in range(5):
        start = perf_counter()
        kernel(1, sample)
        per_iter.append((perf_counter() - start) / sample)
    cost = statistics.median(per_iter)
    return max(1000, int(round(cpu_task_s / cost))) if cost > 0 else 1000000


# ----------------------------------------------------------------------------------------------

def read_config():
    text = sys.stdin.read() if not sys.stdin.isatty() else ""
    cfg = dict(DEFAULTS)
    if text.strip():
        given = json.loads(text)
        if not isinstance(given, dict):
            raise ValueError("the configuration must be a JSON object")
        for key, value in given.items():
            if value is not None or key == "net_port":
                cfg[key] = value
    cfg["workers"] = max(1, int(cfg["workers"]))
    cfg["io_tasks"] = max(1, int(cfg["io_tasks"]))
    cfg["net_requests"] = max(1, int(cfg["net_requests"]))
    cfg["cpu_tasks"] = max(1, int(cfg["cpu_tasks"]))
    cfg["probe_count"] = max(1, int(cfg["probe_count"]))
    for key in ("io_sleep_s", "cpu_task_s", "switch_interval_s", "probe_sleep_s"):
        cfg[key] = max(0.0, float(cfg[key]))
    cfg["net_port"] = None if cfg["net_port"] is None else int(cfg["net_port"])
    for key in ("scaling_widths", "io_scaling_widths"):
        cfg[key] = [max(1, int(width)) for width in cfg[key]]
    cfg["data_sizes"] = [max(1, int(size)) for size in cfg["data_sizes"]]
    for key in ("scaling_cpu_tasks", "scaling_io_tasks", "data_tasks", "data_stride", "data_repeats"):
        cfg[key] = max(1, int(cfg[key]))
    for key in ("scaling_cpu_task_s", "scaling_io_sleep_s"):
        cfg[key] = max(0.0, float(cfg[key]))
    return cfg


def main():
    try:
        cfg = read_config()
    except Exception as error:
        log("bad configuration on stdin: %s" % error)
        sys.stdout.write("[]\n")
        sys.stdout.flush()
        return 2
    ctx = mp_context()
    try:
        load = " load average %.2f," % os.getloadavg()[0]
    except Exception:
        load = ""
    log("%s %s, multiprocessing start method %s,%s %s CPUs" % (
        sys.implementation.name, ".".join(str(x) for x in sys.version_info[:3]), ctx.get_start_method(), load,
        os.cpu_count()))
    try:
        sys.setswitchinterval(max(1e-6, cfg["switch_interval_s"]))
    except Exception as error:
        log("could not set the switch interval: %s" % error)

    workloads = list(cfg["workloads"])
    n = None
    if "cpu" in workloads or "mixed" in workloads or "cpu-scaling" in workloads or "convoy" in workloads:
        n = calibrate(cfg["cpu_task_s"])
        log("calibrated n=%d iterations per %.3f s task" % (n, cfg["cpu_task_s"]))

    cells = []
    for workload in ("io-sleep", "io-net", "cpu", "mixed", "cpu-scaling", "io-scaling", "data", "convoy"):
        if workload not in workloads:
            continue
        try:
            if workload == "io-sleep":
                cells += io_workload(cfg, ctx, workload)
            elif workload == "io-net":
                if cfg["net_port"] is None:
                    continue
                cells += io_workload(cfg, ctx, workload)
            elif workload == "cpu":
                cells += cpu_workload(cfg, ctx, n)
            elif workload == "mixed":
                cells += mixed_workload(cfg, ctx, n)
            elif workload == "data":
                cells += data_workload(cfg, ctx)
            elif workload == "convoy":
                cells += convoy_workload(cfg, n)
            elif workload == "cpu-scaling":
                scaled = max(1000, int(round(n * cfg["scaling_cpu_task_s"] / max(cfg["cpu_task_s"], 1e-9))))
                cells += scaling_workload(cfg, ctx, workload, scaled)
            else:
                cells += scaling_workload(cfg, ctx, workload, None)
        except Exception as error:  # should not happen: each mode already catches its own failure
            failed = Cell(workload, "cpython-serial", "CPython serial", 1)
            failed.failed = "%s: %s" % (type(error).__name__, error)
            cells.append(failed)

    sys.stdout.write(json.dumps([c.to_json() for c in cells], separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
