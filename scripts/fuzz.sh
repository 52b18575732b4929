#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer target and runs each for SECONDS.
#
#   scripts/fuzz.sh [SECONDS [NAME...]]   (default 60; `make fuzz` passes $FUZZ_SECONDS)
#
# With NAMEs (e.g. `scripts/fuzz.sh 300 schema wfdef`) only those targets run.
#
# A target declares the source folders (or files) it links in its first line, e.g.
#   /* fuzz-link: src/ingest src/util */
# (src/main.c is never linked; src/util is the default). Targets are built with clang
# -fsanitize=fuzzer,address,undefined into build/fuzz/ and run on build/fuzz/corpus-NAME,
# which starts as a copy of tests/fuzz/corpus/NAME/ and keeps what the fuzzer finds
# between runs; the repository corpus is never written. Crash inputs land in build/fuzz/
# as crash-NAME-*. Exits non-zero if a target fails to build or finds a crash.
set -euo pipefail
secs=${1:-60}
shift $(($# > 0 ? 1 : 0))
only=" $* "
cd "$(dirname "$0")/.."
out=build/fuzz
mkdir -p "$out"
CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -Werror -Isrc -Itests)
LIBS=(-ljansson -lcrypto -lz -lcsv -lm -pthread)
status=0
shopt -s nullglob
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  name=${name#fuzz_}
  [ "$only" = "  " ] || [[ "$only" == *" $name "* ]] || continue
  dirs=$(head -n 1 "$src" | sed -n 's|.*fuzz-link:[[:space:]]*\(.*\)\*/.*|\1|p')
  if [ -z "$dirs" ] && head -n 1 "$src" | grep -q 'fuzz-link:'; then
    echo "FAIL: $name: its fuzz-link comment must end on line 1 (keep it under 100 columns)" >&2
    status=1
    continue
  fi
  [ -n "$dirs" ] || dirs=src/util
  srcs=()
  for d in $dirs; do
    while IFS= read -r f; do
      [ "$f" = src/main.c ] || srcs+=("$f")
    done < <(find "$d" -name '*.c' | sort)
  done
  bin=$out/fuzz_$name
  echo "== building $bin (${dirs})"
  if ! clang "${CFLAGS[@]}" "$src" "${srcs[@]}" "${LIBS[@]}" -o "$bin"; then
    echo "FAIL: $name does not build" >&2
    status=1
    continue
  fi
  corpus=$out/corpus-$name
  mkdir -p "$corpus"
  if [ -d "tests/fuzz/corpus/$name" ]; then
    cp -n "tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true
  fi
  echo "== running $name for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
       -print_final_stats=1 -artifact_prefix="$out/crash-$name-" "$corpus"; then
    echo "FAIL: $name crashed; see $out/crash-$name-*" >&2
    status=1
  fi
done
exit $status
