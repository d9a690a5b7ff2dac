#!/usr/bin/env bash
# test.sh: install what is needed, build, and run the whole test suite twice: a normal build with
# warnings as errors, and an ASan+UBSan build. Ends with 'N passed, N failed, N skipped'.
# Environment: HR_TEST_SLOW=1 also runs the slow suite.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test || exit 1
slow=false
[ "${HR_TEST_SLOW:-0}" = 1 ] && slow=true
status=0
run_suite() { # DIR LABEL SETUP-ARGS...
  local dir=$1 label=$2
  shift 2
  if ! scripts/build.sh "$dir" -Dwerror=true -Dslow_tests=$slow "$@"; then
    echo "test: $label build failed" >&2
    status=1
    return
  fi
  meson configure "$dir" -Dslow_tests=$slow >/dev/null
  echo "== $label"
  meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
}
run_suite build "normal build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan "ASan+UBSan build" -Db_sanitize=address,undefined \
  -Dc_args=-fno-sanitize-recover=all -Dc_link_args=-fno-sanitize-recover=all
python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys, re
passed = failed = skipped = asserts = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        print(f"test: missing {path}")
        continue
    for line in lines:
        t = json.loads(line)
        r = t.get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
        asserts += len(re.findall(r"^ok \d+", t.get("stdout") or "", re.M))
print(f"({asserts} TAP assertions passed across both builds)")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
[ $? = 0 ] || status=1
exit $status
