#!/usr/bin/env bash
# Runs each C test binary given; prints one summary line per binary and a total.
set -u
pass=0; fail=0
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | tail -n 1)
  if [ $rc -eq 0 ]; then
    echo "ok   $t: $line"
  else
    printf '%s\n' "$out" | tail -n 40
    echo "FAIL $t (exit $rc)"
  fi
  p=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -n1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -n1)
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
  [ $rc -ne 0 ] && [ "${f:-0}" = 0 ] && fail=$((fail + 1))
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
