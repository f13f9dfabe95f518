#!/usr/bin/env bash
# The long run: every target (or those named) for SECONDS each, one after the
# other, with atheris; a crash restarts that target on the grown corpus until
# its time is used up.  Corpora, crash files and logs go under OUT.
#   OUT=/tmp/freight-fuzz SECONDS_PER_TARGET=240 tests/fuzz/long_run.sh [TARGET ...]
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python}"
OUT="${OUT:-/tmp/freight-fuzz}"
PER="${SECONDS_PER_TARGET:-240}"
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=($("$PY" "$HERE/run.py" list))
mkdir -p "$OUT"
"$PY" "$HERE/run.py" seeds "$OUT/corpus" "${TARGETS[@]}"
for t in "${TARGETS[@]}"; do
  mkdir -p "$OUT/artifacts/$t"
  vm=0; [ "$t" = pickle ] && vm=2048  # see run.py --max-vm-mb
  end=$(( $(date +%s) + PER ))
  while [ "$(date +%s)" -lt "$end" ]; do
    left=$(( end - $(date +%s) ))
    [ "$left" -lt 30 ] && break
    FREIGHT_FUZZ_KNOWN_DIR="$OUT/artifacts/$t" "$PY" "$HERE/run.py" fuzz "$t" --seconds "$left" --max-vm-mb "$vm" --corpus "$OUT/corpus/$t" \
      -- "-artifact_prefix=$OUT/artifacts/$t/" -print_final_stats=1 \
      >>"$OUT/$t.log" 2>&1
    echo "== $t exited $? at $(date +%T)" >>"$OUT/$t.log"
  done
done
