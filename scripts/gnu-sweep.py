#!/usr/bin/env python3
"""Side-by-side sweep: GNU parallel's own local test cases, run with GNU parallel and with workers-run.

Getting GNU's test suite (it is not part of this repository and must not be copied into it;
it is GPL-3.0 and stays out of our commits):

    git clone https://git.savannah.gnu.org/git/parallel.git
    cd parallel && git checkout 20221122      # the release the comparison is usually made against
    python3 scripts/gnu-sweep.py --testsuite parallel/testsuite --workers .build/debug/workers-run

--testsuite accepts either GNU's testsuite/ directory (its tests-to-run/ is used) or a
directory that holds the *.sh test files directly. Only the local test files are used:
files whose names contain ssh, sql, remote, polarhome, android, freebsd, macos, centos,
virtualbox, manual, tutorial or mem are skipped (see SKIP_FILE).

This sweep is a manual tool. It is not part of `swift test`, needs GNU parallel installed
(default /usr/bin/parallel), and takes minutes to hours depending on which files are run.

How a test file becomes cases
-----------------------------
* Files that define `par_*` bash functions (the usual style): every function whose name
  contains `par_` (GNU's driver greps `compgen -A function` the same way) is one case.
  The file's own driver — everything from the first line that starts with
  `export -f $(compgen` (or, failing that, the last line that starts with `compgen -A function`)
  to the end — is cut off; the rest (helpers and top-level setup) is sourced before the
  case runs, and while it is sourced `compgen` is shadowed by a function that prints nothing,
  so a driver that the cut missed would find no cases and run nothing. Of the remaining
  top-level code only function definitions, assignments, export/declare/shopt/set/unset/source
  lines are kept; other top-level commands (cleanup such as `rm -f /tmp/*.{log,par,...}` in
  parallel-local-100s.sh) are commented out and listed on stderr, so they never run here.
* Old heredoc-style files (`cat <<'EOF' | ... | parallel ... -L1`): the heredoc body is split
  into GNU -L1 records (a line ending in a blank continues on the next line, after the file's
  own `sed 's/;$/; /'`), and each group of records that starts with `echo '###` is one case,
  run as one bash script.

How a case runs
---------------
--workers is copied into the sweep's temporary directory once, at the start (its md5 and build
time go into the summary), so a rebuild during the sweep does not change the binary half-way.
Each case runs as `bash -c '. prelude; . defs; CASE 2>&1'` with stdin from /dev/null, stdout
and stderr combined into a file (as GNU's driver does with '{} 2>&1'), in a fresh working
directory, with a fresh HOME (holding .parallel/will-cite), a fresh TMPDIR, LC_ALL=C and a
minimal environment (no PARALLEL* variables). PATH starts with a directory in which `parallel`
and `sem` are GNU's (symlinks to --gnu and to the `sem` next to it) or workers' (a symlink to
--workers and a `sem` script that execs `workers-run --semaphore "$@"`), followed by a
directory of small stand-ins for helper commands GNU's test machine has (stdout, G, puniq,
field, timestamp — written here, see SHIMS) and then the caller's PATH. `replace_tmpdir`
(which GNU's Start.sh defines) is defined by the prelude. When the sweep runs as root the cases run as
--run-as (default nobody), so a misbehaving command cannot modify system files (an early run
as root let a workers-run bug compress /usr/bin/gzip in place). The case runs in its own session;
when it ends or its timeout (--timeout, default 60 s) passes, every process still in that
session is killed (TERM, then KILL), which also catches job process groups.

GNU runs first. If that run times out, the case is excluded ("gnu-timeout") and workers is not
run. Otherwise workers runs, then GNU runs a second time; if GNU's two outputs differ after
normalization the case is "gnu-unstable" and is left out of the pass rate.
With --gnu-runs 1 GNU runs once (no stability check).

Exclusions (case text is the case function plus any non-par_ helper functions it names)
--------------------------------------------------------------------------------------
remote logins (ssh, -S/--sshlogin with a host other than ':', --slf), sql (--sql*, DBURLs),
--tmux, commands this machine lacks (OPTIONAL_TOOLS not on PATH, old parallel-YYYYMMDD
binaries), and cases whose first GNU output says "X: command not found" for an X that the case
names, does not define as a function, and the case user cannot find; "Can't locate DBD/...";
"The perl module X is not installed"; or perl's "Setting locale failed".
Tool lookups are made as the case user with the cases' PATH.

Normalizations (applied to both outputs, in this order; each is listed in NORMALIZATIONS)
-----------------------------------------------------------------------------------------
 1. workers only: "workers run:" -> "parallel:" (message prefix).
 2. the run's own directories -> placeholders: working directory -> <CWD>, TMPDIR -> /TMP,
    HOME -> ~, the PATH directory holding parallel/sem -> <BIN>, the run root -> <RUN>.
 3. "/usr/bin" -> "/bin" (GNU's drivers do the same to their output).
 4. random letters of temporary names, keeping their length and shape:
    mktemp's tmp.XXXXXXXXXX, and GNU-style par?????.par / workers-style par??????.par names
    (any of GNU's suffixes .par .tms .tmx .arg .all .pip .tmb .chr .log .swp .loa .ssh .df .pac).
 5. joblog lines (9 tab-separated fields, fields 3 and 4 numbers): Starttime and JobRuntime
    -> "<T>".
PIDs and other numbers are not touched.

Classification of a failing case (first that applies)
------------------------------------------------------
"refused option" (workers printed "... is not supported by workers run", named by the option),
"unknown option" (workers printed "unknown option X"), "timeout" (workers ran past --timeout),
otherwise "output differs".

Output (--out, default /tmp/gnu-sweep-out): cases/<file>/<case>/{case.sh,gnu.out,gnu2.out,
workers.out,diff.txt,result.json}, results.jsonl, summary.json and summary.txt.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SKIP_FILE = re.compile(r"ssh|sql|remote|polarhome|android|freebsd|macos|centos|virtualbox|manual|tutorial|mem")

# Commands some cases need that a test machine may lack. A case that names one that is not
# on PATH is excluded. (Common words such as "rc" are left out on purpose.)
OPTIONAL_TOOLS = [
    "pv", "expect", "sudo", "sshpass", "zsh", "rzsh", "csh", "tcsh", "fish", "fizsh", "ksh",
    "ksh93", "ksh2020", "lksh", "mksh", "posh", "yash", "sash", "static-sh", "fdsh", "rush",
    "pixz", "lzop", "pigz", "lzip", "clzip", "plzip", "pbzip2", "lbzip2", "lrz", "lzma",
    "pzstd", "zstd", "lz4", "xz", "bzip2", "xxd", "pstree", "killall", "openssl", "shuf",
    "parsort", "parcat", "parset", "env_parallel", "niceload", "python", "ifconfig", "tmux",
]

NORMALIZATIONS = [
    "workers output only: 'workers run:' -> 'parallel:'",
    "run directories: cwd -> <CWD>, TMPDIR -> /TMP, HOME -> ~, parallel/sem dir -> <BIN>, run root -> <RUN>",
    "'/usr/bin' -> '/bin' (as GNU's drivers do)",
    "random letters in tmp.XXXXXXXXXX and par?????(?).<suffix> temp names -> X (length kept)",
    "joblog lines (9 tab fields): Starttime and JobRuntime -> <T>",
]

# Stand-ins for helper commands of GNU's test machine (tangetools etc.). Written for this sweep.
SHIMS = {
    "stdout": '#!/bin/bash\n# run a command with stderr sent to stdout\nexec "$@" 2>&1\n',
    "puniq": "#!/bin/sh\n# print each distinct line once, first occurrence first\nexec perl -ne 'print unless $seen{$_}++'\n",
    "field": (
        "#!/usr/bin/perl\n# field N[,M...]: print whitespace-separated fields (1-based)\n"
        "my @f = map { $_ - 1 } split /,/, (shift // 1);\n"
        "while (<>) { chomp; s/^\\s+//; my @w = split /\\s+/; print join(' ', map { $w[$_] // '' } @f), \"\\n\" }\n"
    ),
    "G": (
        "#!/bin/bash\n# G [opts] PATTERN [opts] PATTERN ...: one grep per pattern, options apply to the next pattern\n"
        "cmd='cat'; opts=()\n"
        "for a in \"$@\"; do\n"
        "  if [[ $a == -?* ]]; then opts+=(\"$a\"); continue; fi\n"
        "  q=$(printf '%q ' \"${opts[@]}\" -- \"$a\"); cmd=\"$cmd | grep $q\"; opts=()\n"
        "done\n"
        "eval \"$cmd\"\n"
    ),
    "timestamp": (
        "#!/usr/bin/perl\n# timestamp [-d|-dd|-d -d]: prefix lines with seconds since start (-d) or since the previous line (-dd)\n"
        "use Time::HiRes qw(time); my $d = grep { $_ eq '-d' } @ARGV; $d = 2 if grep { $_ eq '-dd' } @ARGV;\n"
        "@ARGV = (); $| = 1; my $start = time; my $last = $start;\n"
        "while (<>) { my $t = time; my $v = $d >= 2 ? $t - $last : $d ? $t - $start : $t; $last = $t; printf \"%.3f\\t%s\", $v, $_ }\n"
    ),
}

PRELUDE = r'''
# Defined by GNU's testsuite/Start.sh; rewritten here: replace $TMPDIR (also shell-quoted) with /TMP.
replace_tmpdir() {
    perl -pe 'BEGIN { $t = shift; $q = $t; $q =~ s/([^-_.+=\/A-Za-z0-9])/\\$1/g; }
              s:\Q$q\E:/TMP:g; s:\Q$t\E:/TMP:g; s/\0/\n/g' "$TMPDIR"
}
export -f replace_tmpdir
'''

REFUSED = re.compile(r"option (.+?) is not supported by workers run")
UNKNOWN = re.compile(r"unknown option (\S+)")
NOT_FOUND = re.compile(r"(?:^|: )([^\s:]+): (?:command )?not found", re.M)


# ----------------------------------------------------------------------------- test files

def find_test_files(testsuite: Path) -> list[Path]:
    base = testsuite / "tests-to-run" if (testsuite / "tests-to-run").is_dir() else testsuite
    files = [p for p in sorted(base.glob("*.sh")) if not SKIP_FILE.search(p.name)]

    def speed(p: Path):
        m = re.search(r"-(\d+(?:\.\d+)?)s\.sh$", p.name)
        return (float(m.group(1)) if m else 5.0, p.name)
    return sorted(files, key=speed)


def strip_driver(text: str) -> str | None:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("export -f $(compgen"):
            return "".join(lines[:i])
    last = None
    for i, line in enumerate(lines):
        if line.startswith("compgen -A function"):
            last = i
    return "".join(lines[:last]) if last is not None else None


KEEP_TOPLEVEL = re.compile(r"(export|declare|typeset|readonly|shopt|set|unset|alias|source|\.)(\s|$)|[A-Za-z_]\w*=")
FUNCTION_HEAD = re.compile(r"(function\s+)?[^\s()=|&;<>]+\s*\(\)")


def bash_complete(stmt: str) -> bool:
    r = subprocess.run(["bash", "-n"], input=stmt, capture_output=True, text=True, errors="replace")
    return r.returncode == 0 and "here-document" not in r.stderr


def filter_toplevel(text: str) -> tuple[str, list[str]]:
    """Keeps function definitions, assignments, export/declare/shopt/set/unset/source lines and
    comments; turns every other top-level command into a comment (they are the file's own setup
    or cleanup, such as `rm -f /tmp/*.{log,...}`, which must not run on the sweeping machine)."""
    lines = text.splitlines(keepends=True)
    out, dropped, stmt = [], [], []
    for i, line in enumerate(lines):
        if not stmt and (not line.strip() or line.lstrip().startswith("#")):
            out.append(line)
            continue
        stmt.append(line)
        joined = "".join(stmt)
        is_function = bool(FUNCTION_HEAD.match(stmt[0].lstrip()))
        if is_function and not (line.startswith("}") or line.rstrip().endswith("}")) and i + 1 < len(lines):
            continue
        if not bash_complete(joined) and i + 1 < len(lines):
            continue
        first = stmt[0].lstrip()
        if is_function or KEEP_TOPLEVEL.match(first):
            out.append(joined)
        else:
            dropped.append(joined.strip())
            out.extend("# [gnu-sweep: top-level command not run] " + l for l in stmt)
        stmt = []
    return "".join(out), dropped


def heredoc_cases(text: str) -> list[tuple[str, str]] | None:
    m = re.search(r"^cat <<'?(\w+)'?\s*\|(.*\bparallel\b.*)$", text, re.M)
    if not m or "-L1" not in m.group(2):
        return None
    tag = m.group(1)
    body_start = m.end() + 1
    end = re.search(r"^" + re.escape(tag) + r"$", text[body_start:], re.M)
    body = text[body_start: body_start + (end.start() if end else len(text))]
    lines = [re.sub(r";$", "; ", line) for line in body.split("\n")]
    records, current = [], []
    for line in lines:
        current.append(line)
        if not re.search(r"[ \t]$", line):
            records.append("\n".join(current))
            current = []
    if current:
        records.append("\n".join(current))
    cases, group = [], []
    for rec in records:
        if re.match(r"\s*echo '###", rec) and group:
            cases.append(group)
            group = []
        if rec.strip() or group:
            group.append(rec)
    if group:
        cases.append(group)
    out = []
    for n, group in enumerate(cases, 1):
        head = re.sub(r"^\s*echo '###\s*", "", group[0].strip())
        slug = re.sub(r"[^A-Za-z0-9]+", "_", head)[:40].strip("_") or "case"
        out.append((f"{n:02d}_{slug}", "\n".join(group).rstrip() + "\n"))
    return out


# ----------------------------------------------------------------------------- running

class Sandbox:
    """Directories shared by all runs: shims, the two parallel/sem directories."""

    def __init__(self, root: Path, gnu: str, workers: str, run_as: str):
        self.root = root
        root.chmod(0o755)
        self.uid = self.gid = None
        if run_as:
            import pwd
            entry = pwd.getpwnam(run_as)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.shims = root / "shims"
        self.shims.mkdir(parents=True, exist_ok=True)
        for name, body in SHIMS.items():
            p = self.shims / name
            p.write_text(body)
            p.chmod(0o755)
        (root / "prelude.sh").write_text(PRELUDE)
        self.prelude = root / "prelude.sh"
        self.bins = {}
        for variant in ("gnu", "workers"):
            d = root / f"bin-{variant}"
            d.mkdir(exist_ok=True)
            self.bins[variant] = d
        gnu_sem = Path(gnu).with_name("sem")
        os.symlink(gnu, self.bins["gnu"] / "parallel")
        if gnu_sem.exists():
            os.symlink(gnu_sem, self.bins["gnu"] / "sem")
        else:
            (self.bins["gnu"] / "sem").write_text(f'#!/bin/sh\nexec {sh_quote(gnu)} --semaphore "$@"\n')
            (self.bins["gnu"] / "sem").chmod(0o755)
        os.symlink(workers, self.bins["workers"] / "parallel")
        (self.bins["workers"] / "sem").write_text(f'#!/bin/sh\nexec {sh_quote(workers)} --semaphore "$@"\n')
        (self.bins["workers"] / "sem").chmod(0o755)
        self.orig_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        self.search_path = f"{self.shims}:{self.orig_path}"
        self.counter = 0
        self.found: dict[str, bool] = {}
        self.lock = threading.Lock()

    def fresh(self, label: str) -> Path:
        with self.lock:
            self.counter += 1
            n = self.counter
        d = self.root / "runs" / f"{n:05d}-{label}"
        for sub in ("work", "home/.parallel", "tmp"):
            (d / sub).mkdir(parents=True)
        (d / "home/.parallel/will-cite").touch()
        if self.uid is not None:
            for dirpath, dirnames, filenames in os.walk(d):
                for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                    os.chown(name, self.uid, self.gid)
        return d

    def have(self, command: str) -> bool:
        """Whether `command -v` finds the command as the case user with the cases' PATH (cached)."""
        with self.lock:
            if command in self.found:
                return self.found[command]
        d = self.fresh("which")
        r = subprocess.run(["bash", "-c", 'command -v "$1" >/dev/null', "bash", command], cwd=d / "work",
                           env={"PATH": self.search_path, "HOME": str(d / "home")}, capture_output=True,
                           **self.credentials())
        with self.lock:
            self.found[command] = r.returncode == 0
        return r.returncode == 0

    def credentials(self) -> dict:
        return {} if self.uid is None else {"user": self.uid, "group": self.gid, "extra_groups": []}


def sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def kill_session(sid: int):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + 2
        while time.time() < deadline and session_pids(sid):
            time.sleep(0.05)


def run_case(box: Sandbox, variant: str, defs: Path, script: str, label: str, timeout: float) -> dict:
    # The directory's name leaves the variant out: a case that prints its own paths after
    # mangling them (par_wd_3dot_local turns digits into 0) must print the same text for both.
    d = box.fresh(label)
    work, home, tmp = d / "work", d / "home", d / "tmp"
    env = {
        "PATH": f"{box.bins[variant]}:{box.shims}:{box.orig_path}",
        "HOME": str(home), "TMPDIR": str(tmp), "LC_ALL": "C", "LANG": "C",
        "SHELL": "/bin/bash", "TERM": "dumb",
        "USER": os.environ.get("USER", "root"), "LOGNAME": os.environ.get("LOGNAME", "root"),
    }
    bash_cmd = (
        "compgen() { :; }; . \"$1\"; . \"$2\" >/dev/null 2>&1 </dev/null; unset -f compgen; "
        + script
    )
    out_path = d / "output"
    start = time.time()
    with open(out_path, "wb") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(["bash", "-c", bash_cmd, "bash", str(box.prelude), str(defs)],
                                stdin=devnull, stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env,
                                start_new_session=True, **box.credentials())
        timed_out = False
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_session(proc.pid)
            rc = proc.wait()
        kill_session(proc.pid)
    elapsed = time.time() - start
    raw = out_path.read_bytes().decode("utf-8", "replace")
    return {"raw": raw, "rc": rc, "timeout": timed_out, "seconds": round(elapsed, 2),
            "dirs": {"work": str(work), "tmp": str(tmp), "home": str(home), "bin": str(box.bins[variant]),
                     "root": str(d)}}


def normalize(text: str, run: dict, variant: str) -> str:
    if variant == "workers":
        text = text.replace("workers run:", "parallel:")
    dirs = run["dirs"]
    for key, repl in (("work", "<CWD>"), ("tmp", "/TMP"), ("home", "~"), ("bin", "<BIN>"), ("root", "<RUN>")):
        real = os.path.realpath(dirs[key])
        for p in sorted({dirs[key], real}, key=len, reverse=True):
            text = text.replace(p, repl)
    text = text.replace("/usr/bin", "/bin")
    text = re.sub(r"\btmp\.[A-Za-z0-9]{10}\b", "tmp.XXXXXXXXXX", text)
    text = re.sub(r"\b(par|tms|tmx)([A-Za-z0-9_]{5,6})(\.(?:par|tms|tmx|arg|all|pip|tmb|chr|log|swp|loa|ssh|df|pac))\b",
                  lambda m: m.group(1) + "X" * len(m.group(2)) + m.group(3), text)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        f = line.split("\t")
        if len(f) == 9 and re.fullmatch(r"\d+\.?\d*", f[2].strip()) and re.fullmatch(r"-?\d+\.?\d*", f[3].strip()):
            f[2] = f[3] = "<T>"
            lines[i] = "\t".join(f)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- exclusions

def static_exclusion(text: str, box: "Sandbox") -> str | None:
    if re.search(r"(?<![\w-])ssh(?![\w-])|--slf\b|--sshloginfile|--sshdelay|@lo\b", text):
        return "remote login (ssh)"
    for m in re.finditer(r"(?:(?<=\s)-S\s*|--sshlogin[= ]\s*)([^\s;|&)]+)", text):
        logins = m.group(1).strip("'\"").split(",")
        if any(not re.fullmatch(r"(\d+/)?:", login.strip()) for login in logins):
            return "remote login (-S)"
    if re.search(r"--sql|sqlite|csv:///|(?<![\w-])sql(?![\w-])|mysql:|pg:/", text):
        return "sql"
    if re.search(r"--tmux\b", text):
        return "tmux"
    m = re.search(r"\bparallel-\d{8}\b", text)
    if m:
        return f"needs {m.group(0)} (not installed)"
    for tool in OPTIONAL_TOOLS:
        if re.search(r"(?<![\w./-])" + re.escape(tool) + r"(?![\w.-])", text) and not box.have(tool):
            return f"needs {tool} (not installed)"
    return None


def output_exclusion(gnu_raw: str, text: str, box: "Sandbox") -> str | None:
    """GNU's first output says a command the case names is missing (and it is not a function
    the case defines, and the case user cannot find it either)."""
    if re.search(r"Can't locate DBD/", gnu_raw):
        return "sql (DBD module missing)"
    m = re.search(r"The perl module (\S+) is not installed", gnu_raw)
    if m:
        return f"needs perl module {m.group(1)} (GNU: not installed)"
    m = re.search(r"perl: warning: Setting locale failed", gnu_raw)
    if m:
        return "needs a locale this machine lacks (GNU: Setting locale failed)"
    for m in NOT_FOUND.finditer(gnu_raw):
        cmd = m.group(1)
        if not re.fullmatch(r"[A-Za-z][\w.+-]*", cmd):
            continue
        named = re.search(r"(?<![\w./-])" + re.escape(cmd) + r"(?![\w.-])", text)
        defined = re.search(r"(?<![\w.-])" + re.escape(cmd) + r"\s*\(\)", text)
        if named and not defined and not box.have(cmd):
            return f"needs {cmd} (GNU: command not found)"
    return None


# ----------------------------------------------------------------------------- main flow

def first_difference(a: list[str], b: list[str]) -> tuple[str, str]:
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "<EOF>"
        y = b[i] if i < len(b) else "<EOF>"
        if x != y:
            return x, y
    return "", ""


def process_case(box: Sandbox, args, entry: dict) -> dict:
    case_dir = Path(args.out) / "cases" / entry["file"] / entry["case"]
    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / "case.sh").write_text(entry["script"])
    result = {"id": entry["id"], "file": entry["file"], "case": entry["case"]}
    reason = static_exclusion(entry["scan"], box)
    if reason:
        result.update(status="excluded", reason=reason)
        return finish(case_dir, result)
    label = re.sub(r"[^A-Za-z0-9]+", "_", entry["case"])[:30]
    g1 = run_case(box, "gnu", entry["defs"], entry["script"], label, args.timeout)
    (case_dir / "gnu.out").write_text(g1["raw"])
    result["gnu_seconds"] = g1["seconds"]
    if g1["timeout"]:
        result.update(status="excluded", reason="gnu-timeout")
        return finish(case_dir, result)
    reason = output_exclusion(g1["raw"], entry["scan"], box)
    if reason:
        result.update(status="excluded", reason=reason)
        return finish(case_dir, result)
    w = run_case(box, "workers", entry["defs"], entry["script"], label, args.timeout)
    (case_dir / "workers.out").write_text(w["raw"])
    result["workers_seconds"] = w["seconds"]
    gnu_n = normalize(g1["raw"], g1, "gnu")
    wk_n = normalize(w["raw"], w, "workers")
    (case_dir / "gnu.norm").write_text(gnu_n)
    (case_dir / "workers.norm").write_text(wk_n)
    if args.gnu_runs >= 2:
        g2 = run_case(box, "gnu", entry["defs"], entry["script"], label, args.timeout)
        (case_dir / "gnu2.out").write_text(g2["raw"])
        if g2["timeout"] or normalize(g2["raw"], g2, "gnu") != gnu_n:
            gd = "".join(difflib.unified_diff(gnu_n.splitlines(True), normalize(g2["raw"], g2, "gnu").splitlines(True),
                                              "gnu-run-1", "gnu-run-2"))
            (case_dir / "gnu-vs-gnu.diff").write_text(gd)
            result.update(status="gnu-unstable", workers_matches_run1=(wk_n == gnu_n))
            return finish(case_dir, result)
    if wk_n == gnu_n:
        result.update(status="pass")
        return finish(case_dir, result)
    diff = "".join(difflib.unified_diff(gnu_n.splitlines(True), wk_n.splitlines(True), "gnu", "workers"))
    (case_dir / "diff.txt").write_text(diff)
    refused = sorted(set(m.group(1) for m in REFUSED.finditer(wk_n)))
    unknown = sorted(set(m.group(1) for m in UNKNOWN.finditer(wk_n)))
    if refused:
        cat = "refused option"
    elif unknown:
        cat = "unknown option"
    elif w["timeout"]:
        cat = "timeout"
    else:
        cat = "output differs"
    fg, fw = first_difference(gnu_n.split("\n"), wk_n.split("\n"))
    result.update(status="fail", category=cat, refused=refused, unknown=unknown,
                  gnu_rejects_too=bool(re.search(r"Unknown option", gnu_n)),
                  first_gnu=fg[:300], first_workers=fw[:300])
    return finish(case_dir, result)


def finish(case_dir: Path, result: dict) -> dict:
    (case_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def collect_cases(box: Sandbox, files: list[Path], out: Path, only: re.Pattern | None) -> list[dict]:
    entries = []
    defs_dir = out / "defs"
    defs_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        text = f.read_text(errors="replace")
        hd = None if re.search(r"^\s*par_\S*\s*\(\)", text, re.M) else heredoc_cases(text)
        if hd is not None:
            defs = defs_dir / (f.name + ".defs")
            defs.write_text("# heredoc-style file: no definitions\n")
            for name, body in hd:
                cid = f"{f.name}:{name}"
                if only and not only.search(cid):
                    continue
                script = body if body.endswith("\n") else body + "\n"
                entries.append(dict(id=cid, file=f.name, case=name, defs=defs, script="{\n" + script + "} 2>&1\n",
                                    scan=body))
            continue
        stripped = strip_driver(text)
        if stripped is None:
            print(f"skip {f.name}: no par_ driver and not a heredoc-style file", file=sys.stderr)
            continue
        defs = defs_dir / (f.name + ".defs")
        stripped, dropped = filter_toplevel(stripped)
        for cmd in dropped:
            print(f"{f.name}: top-level command not run: {cmd[:100]!r}", file=sys.stderr)
        defs.write_text(stripped)
        d = box.fresh("enumerate")
        listing = subprocess.run(
            ["bash", "-c",
             'compgen() { :; }; . "$1" >/dev/null 2>&1 </dev/null; unset -f compgen; '
             'for f in $(compgen -A function | LC_ALL=C sort); do printf "\\001%s\\n" "$f"; declare -f "$f"; done',
             "bash", str(defs)],
            cwd=d / "work", capture_output=True, text=True, errors="replace", timeout=60, **box.credentials(),
            env={"PATH": f"{box.bins['gnu']}:{box.shims}:{box.orig_path}", "HOME": str(d / "home"),
                 "TMPDIR": str(d / "tmp"), "LC_ALL": "C"}).stdout
        bodies = {}
        for chunk in listing.split("\x01")[1:]:
            name, _, body = chunk.partition("\n")
            bodies[name] = body
        helpers = {n: b for n, b in bodies.items() if "par_" not in n}
        for name in sorted(n for n in bodies if "par_" in n):
            cid = f"{f.name}:{name}"
            if only and not only.search(cid):
                continue
            body = bodies[name]
            scan = body + "".join(b for h, b in helpers.items() if re.search(r"(?<![\w-])" + re.escape(h) + r"(?![\w-])", body))
            entries.append(dict(id=cid, file=f.name, case=name, defs=defs, script=f"{name} 2>&1\n", scan=scan))
    return entries


def summarize(results: list[dict], args, elapsed: float, not_run: int) -> dict:
    by_status = collections.Counter(r["status"] for r in results)
    excluded = collections.Counter(r["reason"] for r in results if r["status"] == "excluded")
    fails = [r for r in results if r["status"] == "fail"]
    cats = collections.Counter(r["category"] for r in fails)
    refused = collections.Counter(o for r in fails for o in r["refused"])
    unknown = collections.Counter(o for r in fails for o in r["unknown"])
    passed = by_status["pass"]
    evaluated = passed + len(fails)
    refused_cases = sum(1 for r in fails if r["category"] == "refused option")
    first = collections.Counter()
    examples = {}
    for r in fails:
        if r["category"] in ("refused option",):
            continue
        key = (re.sub(r"\d+", "#", r["first_gnu"][:100]), re.sub(r"\d+", "#", r["first_workers"][:100]))
        first[key] += 1
        examples.setdefault(key, r["id"])
    denom = evaluated - refused_cases
    return {
        "testsuite": str(args.testsuite), "workers": str(args.workers), "gnu": str(args.gnu),
        "workers_md5": args.workers_md5, "workers_mtime": args.workers_mtime,
        "timeout": args.timeout, "jobs": args.jobs, "gnu_runs": args.gnu_runs, "seconds": round(elapsed),
        "total_cases": len(results) + not_run, "not_run_budget": not_run,
        "excluded": sum(excluded.values()), "excluded_reasons": dict(excluded.most_common()),
        "gnu_unstable": by_status["gnu-unstable"], "passed": passed, "failed": len(fails),
        "pass_rate": round(passed / evaluated, 4) if evaluated else None,
        "pass_rate_without_refused": round(passed / denom, 4) if denom else None,
        "failures_by_category": dict(cats.most_common()),
        "refused_options": dict(refused.most_common()),
        "unknown_options": dict(unknown.most_common()),
        "unknown_option_cases_gnu_rejects_too": sum(1 for r in fails if r["category"] == "unknown option" and r["gnu_rejects_too"]),
        "first_differing_lines": [{"count": n, "gnu": k[0], "workers": k[1], "example": examples[k]}
                                  for k, n in first.most_common(30)],
        "normalizations": NORMALIZATIONS,
        "passed_cases": sorted(r["id"] for r in results if r["status"] == "pass"),
        "failed_cases": {r["id"]: r["category"] for r in fails},
        "gnu_unstable_cases": sorted(r["id"] for r in results if r["status"] == "gnu-unstable"),
        "excluded_cases": {r["id"]: r["reason"] for r in results if r["status"] == "excluded"},
    }


def render(s: dict) -> str:
    out = []
    w = out.append
    w(f"GNU parallel test-suite sweep: {s['total_cases']} cases in {s['seconds']} s "
      f"(timeout {s['timeout']} s, jobs {s['jobs']}, GNU runs {s['gnu_runs']})")
    w(f"  workers-run: {s['workers']} (md5 {s['workers_md5']}, built {s['workers_mtime']}); GNU: {s['gnu']}")
    if s["not_run_budget"]:
        w(f"  not run (budget reached): {s['not_run_budget']}")
    w(f"  excluded:      {s['excluded']}")
    for reason, n in s["excluded_reasons"].items():
        w(f"      {n:4d}  {reason}")
    w(f"  gnu-unstable:  {s['gnu_unstable']}")
    w(f"  passed:        {s['passed']}")
    w(f"  failed:        {s['failed']}")
    rate = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"
    w(f"  pass rate:     {rate(s['pass_rate'])} of evaluated; {rate(s['pass_rate_without_refused'])} of cases using no refused option")
    w("failures by category:")
    for cat, n in s["failures_by_category"].items():
        w(f"  {n:4d}  {cat}")
    w("refused options (cases blocked):")
    for o, n in s["refused_options"].items():
        w(f"  {n:4d}  {o}")
    w(f"unknown options (cases; GNU 20221122 rejects some too: {s['unknown_option_cases_gnu_rejects_too']}):")
    for o, n in s["unknown_options"].items():
        w(f"  {n:4d}  {o}")
    w("most common first differing lines (digits as #; '-' GNU, '+' workers):")
    for item in s["first_differing_lines"]:
        w(f"  {item['count']:4d}  - {item['gnu']!r}")
        w(f"        + {item['workers']!r}   e.g. {item['example']}")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--testsuite", required=True, type=Path)
    ap.add_argument("--workers", required=True)
    ap.add_argument("--gnu", default="/usr/bin/parallel")
    ap.add_argument("--only", help="regex on FILE:CASE ids")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--gnu-runs", type=int, default=2, choices=(1, 2))
    ap.add_argument("--budget", type=float, default=0, help="stop starting cases after this many seconds (0: no limit)")
    ap.add_argument("--out", default="/tmp/gnu-sweep-out")
    ap.add_argument("--keep-runs", action="store_true", help="keep the per-run directories")
    ap.add_argument("--run-as", default="nobody" if os.geteuid() == 0 else "",
                    help="run the cases as this user (default when root: nobody; '' runs them as yourself)")
    args = ap.parse_args()

    gnu = shutil.which(args.gnu) or args.gnu
    workers = os.path.abspath(args.workers)
    if not os.access(gnu, os.X_OK):
        sys.exit(f"GNU parallel not found: {args.gnu}")
    if not os.access(workers, os.X_OK):
        sys.exit(f"workers-run not found: {args.workers}")
    args.gnu, args.workers = gnu, workers
    out = Path(args.out)
    if (out / "cases").exists():
        shutil.rmtree(out / "cases")
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="gnu-sweep-"))
    # Snapshot the workers binary: a rebuild during the sweep must not change it half-way.
    snapshot = root / "workers-run"
    shutil.copy2(workers, snapshot)
    snapshot.chmod(0o755)
    import hashlib
    args.workers_md5 = hashlib.md5(snapshot.read_bytes()).hexdigest()
    args.workers_mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(workers).st_mtime))
    box = Sandbox(root, gnu, str(snapshot), args.run_as)
    os.chmod(out, 0o755)
    files = find_test_files(args.testsuite)
    if not files:
        sys.exit(f"no local test files in {args.testsuite}")
    only = re.compile(args.only) if args.only else None
    entries = collect_cases(box, files, out, only)
    print(f"{len(entries)} cases from {len(files)} files: {', '.join(f.name for f in files)}", file=sys.stderr)

    start = time.time()
    results, not_run = [], 0
    with open(out / "results.jsonl", "w") as log, open(out / "progress.txt", "w") as progress, \
            concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        lock = threading.Lock()

        def job(e):
            if args.budget and time.time() - start > args.budget:
                return None
            r = process_case(box, args, e)
            with lock:
                log.write(json.dumps(r) + "\n")
                log.flush()
                extra = r.get("reason") or r.get("category") or ""
                line = f"[{time.time() - start:6.0f}s] {r['status']:12s} {r['id']} {extra}"
                print(line, file=sys.stderr)
                progress.write(line + "\n")
                progress.flush()
            return r
        for r in pool.map(job, entries):
            if r is None:
                not_run += 1
            else:
                results.append(r)
    summary = summarize(results, args, time.time() - start, not_run)
    summary["run_as"] = args.run_as or "self"
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = render(summary)
    (out / "summary.txt").write_text(text)
    print(text)
    if not args.keep_runs:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
