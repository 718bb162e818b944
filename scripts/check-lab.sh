#!/usr/bin/env bash
# Checks a `workers lab` JSON result against the lab's acceptance list.
#
#   scripts/check-lab.sh [path-to-lab.json]
#   scripts/check-lab.sh --honesty path-to-lab.json
#
# --honesty checks only what must hold however busy the machine was: the structure, and that no
# conclusion draws a lesson from a cell the lab marked unsettled (CI runs it beside a CPU hog).
#
# WORKERS_BIN=path/to/workers uses that binary instead of `swift run -c release`.
# Without a path it runs `swift run -c release workers lab --quick --json /tmp/workers-lab.json` from
# the repository root (the directory above scripts/) and checks that file.
# Prints one line per check, "PASS|FAIL|SKIP  <description>: <measured> (want <criterion>)", and exits
# 1 if any check fails.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"

honesty=0
if [[ "${1:-}" == "--honesty" ]]; then
    honesty=1
    shift
    if [[ $# -ne 1 ]]; then
        echo "usage: $0 --honesty path-to-lab.json" >&2
        exit 2
    fi
fi
if [[ $# -gt 1 ]]; then
    echo "usage: $0 [path-to-lab.json] | --honesty path-to-lab.json" >&2
    exit 2
fi

if [[ $# -eq 1 ]]; then
    lab_json="$1"
else
    lab_json="/tmp/workers-lab.json"
    rm -f "$lab_json"
    if [[ -n "${WORKERS_BIN:-}" ]]; then
        echo "running: $WORKERS_BIN lab --quick --json $lab_json" >&2
        "$WORKERS_BIN" lab --quick --json "$lab_json"
    else
        echo "running: swift run -c release workers lab --quick --json $lab_json (in $repo_root)" >&2
        (cd "$repo_root" && swift run -c release workers lab --quick --json "$lab_json")
    fi
fi

if [[ ! -f "$lab_json" ]]; then
    echo "FAIL  lab JSON exists: $lab_json not found (want a file)"
    exit 1
fi

python3 - "$lab_json" "$honesty" <<'PY'
import json
import math
import sys

path = sys.argv[1]
honesty = sys.argv[2] == "1"
results = []  # (status, line)


def report(status, description, measured, want):
    results.append(status)
    print("%s  %s: %s (want %s)" % (status, description, measured, want))


def fmt(x):
    if x is None:
        return "missing"
    if isinstance(x, float):
        return "%.3f" % x
    return str(x)


try:
    with open(path) as f:
        doc = json.load(f)
except Exception as error:
    print("FAIL  lab JSON parses: %s (want valid JSON)" % error)
    sys.exit(1)

if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
    print("FAIL  lab JSON shape: top level is not an object with a \"cells\" array (want {machine, config, cells, conclusions})")
    sys.exit(1)

config = doc.get("config") or {}
cells = [c for c in doc["cells"] if isinstance(c, dict)]
interval_ms = config.get("switch_interval_ms")
if not isinstance(interval_ms, (int, float)) or isinstance(interval_ms, bool) or interval_ms <= 0:
    interval_ms = 5.0
interval_ms = float(interval_ms)


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def find(source, workload, mode):
    for c in cells:
        if c.get("source") == source and c.get("workload") == workload and c.get("mode") == mode:
            return c
    return None


def value(cell, key):
    if cell is None:
        return None
    v = cell.get(key)
    return float(v) if num(v) else None


def check_min(description, cell, key, low):
    v = value(cell, key)
    report("PASS" if v is not None and v >= low else "FAIL", description, fmt(v), ">= %g" % low)


def check_max(description, cell, key, high, strict=False):
    v = value(cell, key)
    ok = v is not None and (v < high if strict else v <= high)
    report("PASS" if ok else "FAIL", description, fmt(v), ("< %g" if strict else "<= %g") % high)


def check_between(description, cell, key, low, high):
    v = value(cell, key)
    report("PASS" if v is not None and low <= v <= high else "FAIL", description, fmt(v),
           "between %g and %g" % (low, high))


def workers_of(cell):
    return cell.get("workers") if cell is not None else "?"


def python_missing(cell):
    note = cell.get("note")
    return isinstance(note, str) and note.startswith("python3 not found")


cpython_cells = [c for c in cells if c.get("source") == "cpython"]
have_cpython = bool(cpython_cells) and not any(python_missing(c) for c in cpython_cells)

# --- Honesty: no lesson from an unsettled cell -----------------------------------------------
# Each lesson the conclusions can draw, and the cells it rests on.
lessons = [
    ("concurrency is one worker switching", [("io-sleep", "threads"), ("io-sleep", "async-1")]),
    ("threads do not speed up CPU-bound work under a GIL", [("cpu", "threads"), ("cpu", "threads-gil")]),
    ("switching gains nothing", [("cpu", "async-1")]),
    ("every core works", [("cpu", "processes")]),
    ("So, under a GIL", [("io-sleep", "threads"), ("cpu", "threads-gil"), ("cpu", "processes")]),
]
conclusions = [c for c in doc.get("conclusions") or [] if isinstance(c, str)]
unsettled = [c for c in cells if isinstance(c.get("unsettled"), str)]
drawn = []
for phrase, rests_on in lessons:
    for sentence in conclusions:
        if phrase not in sentence:
            continue
        for workload, mode in rests_on:
            cell = find("swift", workload, mode)
            if cell is not None and isinstance(cell.get("unsettled"), str):
                drawn.append("'%s' from unsettled %s/%s" % (phrase, workload, mode))
report("PASS" if not drawn else "FAIL", "honesty: no lesson drawn from an unsettled cell (%d unsettled)" % len(unsettled),
       "; ".join(drawn) if drawn else "none", "none")
said = any("unsettled" in sentence for sentence in conclusions)
report("PASS" if said == bool(unsettled) else "FAIL", "honesty: the conclusions say so exactly when a cell is unsettled",
       "%d unsettled cells, %s" % (len(unsettled), "said" if said else "not said"), "said iff any")

# --- The targets: computed by the lab from its LabThresholds and written into the JSON ---------
# (Sources/WorkersLab/Targets.swift), so this script keeps no numbers of its own.
if not honesty:
    targets = doc.get("targets")
    if not isinstance(targets, list) or not targets:
        report("FAIL", "targets: the JSON lists the lab's targets", "none", "a non-empty targets array")
        targets = []

    def target_cell(source_mode, t):
        for c in cells:
            if c.get("workload") == t.get("workload") and c.get("mode") == source_mode \
                    and (t.get("workers") is None or c.get("workers") == t.get("workers")) and num(c.get("wall_s")) and c["wall_s"] > 0:
                return c
        return None

    for t in targets:
        if not isinstance(t, dict):
            report("FAIL", "targets: malformed", repr(t), "an object")
            continue
        low, high = t.get("at_least"), t.get("at_most")
        want = " and ".join(x for x in (">= %g" % low if num(low) else None, "<= %g" % high if num(high) else None) if x)
        mode = t.get("mode", "")
        if mode.startswith("cpython") and not have_cpython:
            print("SKIP  %s: no CPython cells (want %s)" % (t.get("name"), want))
            continue
        cell = target_cell(mode, t)
        measured = value(cell, t.get("value", "speedup"))
        shown = fmt(measured)
        if t.get("relative_to") is not None:
            other = value(target_cell(t["relative_to"], t), t.get("value", "speedup"))
            if measured is None or other is None or other <= 0:
                report("FAIL", t.get("name"), "%s %s, %s %s" % (mode, fmt(measured), t["relative_to"], fmt(other)), want)
                continue
            shown = "%.3f / %.3f = %.3f" % (measured, other, measured / other)
            measured = measured / other
        ok = measured is not None and (not num(low) or measured >= low) and (not num(high) or measured <= high)
        report("PASS" if ok else "FAIL", t.get("name"), shown, want)

# --- Structure -------------------------------------------------------------------------------
required = {
    "workload": str, "mode": str, "label": str, "workers": int, "wall_s": (int, float),
    "speedup": (int, float), "cpu_per_wall": (int, float), "source": str,
}
optional = {
    "checksum": str, "probe_median_ms": (int, float), "probe_p90_ms": (int, float), "spans": list, "note": str,
    "unsettled": str, "input_bytes": int,
}
span_keys = {"lane": int, "task": int, "start": (int, float), "end": (int, float), "state": str}
workloads = {"io-sleep", "io-net", "cpu", "mixed", "cpu-scaling", "io-scaling", "data", "convoy"}
states = {"running", "waiting", "gil-wait"}
problems = []
for i, c in enumerate(doc["cells"]):
    where = "cell %d (%s/%s/%s)" % (i, c.get("source"), c.get("workload"), c.get("mode")) if isinstance(c, dict) else "cell %d" % i
    if not isinstance(c, dict):
        problems.append("%s is not an object" % where)
        continue
    for key, kind in required.items():
        if key not in c:
            problems.append("%s lacks %s" % (where, key))
        elif isinstance(c[key], bool) or not isinstance(c[key], kind):
            problems.append("%s has a bad %s" % (where, key))
    for key, kind in optional.items():
        if c.get(key) is not None and (isinstance(c[key], bool) or not isinstance(c[key], kind)):
            problems.append("%s has a bad %s" % (where, key))
    if c.get("workload") not in workloads:
        problems.append("%s has an unknown workload" % where)
    if c.get("source") not in ("swift", "cpython", "cpython-ft"):
        problems.append("%s has an unknown source" % where)
    for j, s in enumerate(c.get("spans") or []):
        if not isinstance(s, dict) or any(k not in s or isinstance(s[k], bool) or not isinstance(s[k], t)
                                          for k, t in span_keys.items()) or s["state"] not in states:
            problems.append("%s span %d is malformed" % (where, j))
            break
report("PASS" if not problems else "FAIL", "structure: every cell has the required keys",
       "%d cells, %d problems%s" % (len(cells), len(problems), (" (" + "; ".join(problems[:5]) + ")") if problems else ""),
       "0 problems")

missing = []
serial_mode = {"swift": "serial", "cpython": "cpython-serial"}
for source in ("swift", "cpython"):
    if source == "cpython" and not have_cpython:
        continue
    # The convoy's curve times the probe beside busy threads; its baseline (the probe alone) is
    # the mixed workload's serial cell.
    present = sorted(set(c.get("workload") for c in cells if c.get("source") == source) - {"convoy"})
    for workload in present:
        if find(source, workload, serial_mode[source]) is None:
            missing.append("%s/%s" % (source, workload))
sources = "swift" + (" and cpython" if have_cpython else "")
if not any(c.get("source") == "swift" for c in cells):
    missing.append("no swift cells at all")
report("PASS" if not missing else "FAIL", "structure: every workload has a serial cell per source (%s)" % sources,
       "missing: " + ", ".join(missing) if missing else "none missing", "none missing")

# The verdicts: each measured section's claim with the outcome the lab computed from its cells,
# by the thresholds in Sources/WorkersLab/Verdicts.swift (LabThresholds), not numbers of this script's.
verdicts = doc.get("verdicts")
bad = []
if not isinstance(verdicts, list):
    bad.append("no verdicts array")
    verdicts = []
for v in verdicts:
    if not isinstance(v, dict) or v.get("outcome") not in ("confirmed", "contradicted", "unsettled") \
            or not v.get("claim") or not v.get("because") or v.get("workload") not in workloads:
        bad.append("malformed verdict %r" % (v,))
judged = set(v.get("workload") for v in verdicts if isinstance(v, dict))
for workload in ("io-sleep", "cpu"):
    if any(c.get("workload") == workload for c in cells) and workload not in judged:
        bad.append("no verdict on %s" % workload)
report("PASS" if not bad else "FAIL", "structure: every measured section has a verdict with its claim and reason",
       "; ".join(bad[:3]) if bad else "%d verdicts" % len(verdicts), "well-formed")
if not honesty:
    for v in verdicts:
        if isinstance(v, dict):
            outcome = v.get("outcome")
            report("PASS" if outcome == "confirmed" else "SKIP" if outcome == "unsettled" else "FAIL",
                   "verdict on %s" % v.get("workload"), "%s (%s)" % (outcome, v.get("because")), "confirmed")

failed = results.count("FAIL")
print("%d passed, %d failed" % (results.count("PASS"), failed))
sys.exit(1 if failed else 0)
PY
