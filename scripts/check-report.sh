#!/usr/bin/env bash
# Renders a `workers lab` HTML report in headless Chromium and checks that the screenshot is not blank.
#
#   scripts/check-report.sh [lab.html]
#
# WORKERS_BIN=path/to/workers uses that binary instead of `swift run -c release`.
# Without a file it runs `swift run -c release workers lab --quick --report /tmp/workers-lab.html` from the
# repository root (the directory above scripts/). Needs `chromium`; when it is missing and we are root it
# runs `apt-get install -y chromium`. If Chromium still is not available it prints
# "SKIP: chromium not available" and exits 0 when CHECK_REPORT_ALLOW_SKIP=1, 1 otherwise.
# The screenshot goes to /tmp/workers-lab.png (override with CHECK_REPORT_PNG).
# Pass: at least 2 % of the pixels differ from the most common (background) colour, and the image has
# at least 8 distinct colours.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
png="${CHECK_REPORT_PNG:-/tmp/workers-lab.png}"

if [[ $# -gt 1 ]]; then
    echo "usage: $0 [lab.html]" >&2
    exit 2
fi

if [[ $# -eq 1 ]]; then
    html="$1"
else
    html="/tmp/workers-lab.html"
    rm -f "$html"
    if [[ -n "${WORKERS_BIN:-}" ]]; then
        echo "running: $WORKERS_BIN lab --quick --report $html" >&2
        "$WORKERS_BIN" lab --quick --report "$html"
    else
        echo "running: swift run -c release workers lab --quick --report $html (in $repo_root)" >&2
        (cd "$repo_root" && swift run -c release workers lab --quick --report "$html")
    fi
fi

if [[ ! -f "$html" ]]; then
    echo "FAIL  report exists: $html not found (want a file)"
    exit 1
fi
html_uri="$(python3 -c 'import pathlib, sys; print(pathlib.Path(sys.argv[1]).resolve().as_uri())' "$html")"

find_chromium() {
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

skip_or_fail() {
    echo "SKIP: chromium not available"
    if [[ "${CHECK_REPORT_ALLOW_SKIP:-0}" == "1" ]]; then
        exit 0
    fi
    echo "FAIL  chromium is required (set CHECK_REPORT_ALLOW_SKIP=1 to allow skipping)"
    exit 1
}

if ! chromium_bin="$(find_chromium)"; then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium with apt-get (about a minute)..." >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2; then
            DEBIAN_FRONTEND=noninteractive apt-get update >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2 || true
        fi
    fi
    chromium_bin="$(find_chromium)" || skip_or_fail
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# Plain --headless first (in current Chromium it is the new headless mode), then --headless=new.
# --virtual-time-budget lets timers and scripts that draw the report finish before the capture.
rendered=0
for headless in --headless --headless=new; do
    rm -f "$png"
    cmd=("$chromium_bin" "$headless" --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,3600
         --virtual-time-budget=3000 --user-data-dir="$work_dir/profile$headless"
         --screenshot="$png" "$html_uri")
    if timeout 120 "${cmd[@]}" >"$work_dir/chromium.log" 2>&1 && [[ -s "$png" ]]; then
        echo "rendered with: ${cmd[*]}"
        rendered=1
        break
    fi
done
if [[ "$rendered" != "1" ]]; then
    echo "FAIL  chromium rendered $html_uri: no screenshot (want $png); last output:"
    tail -n 20 "$work_dir/chromium.log" | sed 's/^/    /'
    exit 1
fi

python3 - "$png" <<'PY'
import struct
import sys
import zlib
from collections import Counter

path = sys.argv[1]


def fail(message):
    print("FAIL  screenshot decodes: %s" % message)
    sys.exit(1)


with open(path, "rb") as f:
    data = f.read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    fail("%s is not a PNG" % path)

pos = 8
idat = []
header = None
while pos + 8 <= len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    pos += 12 + length
    if kind == b"IHDR":
        header = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat.append(body)
    elif kind == b"IEND":
        break
if header is None:
    fail("no IHDR chunk")
width, height, depth, colour, _compression, _filter, interlace = header
channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
if depth != 8 or channels is None or interlace != 0:
    fail("unsupported PNG (bit depth %d, colour type %d, interlace %d)" % (depth, colour, interlace))

raw = zlib.decompress(b"".join(idat))
stride = width * channels
if len(raw) < height * (stride + 1):
    fail("truncated image data")

rows = []
prev = bytearray(stride)
for y in range(height):
    start = y * (stride + 1)
    ftype = raw[start]
    line = bytearray(raw[start + 1:start + 1 + stride])
    if ftype == 0:
        pass
    elif ftype == 1:  # Sub
        for i in range(channels, stride):
            line[i] = (line[i] + line[i - channels]) & 0xFF
    elif ftype == 2:  # Up
        for i in range(stride):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif ftype == 3:  # Average
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif ftype == 4:  # Paeth
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            if pa <= pb and pa <= pc:
                predictor = a
            elif pb <= pc:
                predictor = b
            else:
                predictor = c
            line[i] = (line[i] + predictor) & 0xFF
    else:
        fail("unknown filter type %d in row %d" % (ftype, y))
    rows.append(bytes(line))
    prev = line

counts = Counter()
for line in rows:
    mv = memoryview(line)
    counts.update(bytes(mv[i:i + channels]) for i in range(0, stride, channels))

total = width * height
background, background_count = counts.most_common(1)[0]
non_background = 1.0 - background_count / float(total)
distinct = len(counts)
ok_fraction = non_background >= 0.02
ok_colours = distinct >= 8
print("screenshot %s: %dx%d, colour type %d, background %s" % (path, width, height, colour,
                                                              "#" + background.hex()))
print("%s  non-background pixels: %.2f %% (want >= 2 %%)" % ("PASS" if ok_fraction else "FAIL", 100 * non_background))
print("%s  distinct colours: %d (want >= 8)" % ("PASS" if ok_colours else "FAIL", distinct))
sys.exit(0 if ok_fraction and ok_colours else 1)
PY
