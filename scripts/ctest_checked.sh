#!/usr/bin/env bash
# ctest_checked.sh BUILD_DIR [CTEST_ARGS...]: runs CTest in BUILD_DIR (with --output-on-failure)
# the way scripts/test.sh does. In CI (CI=true or CI=1) a skipped test is a failure: the
# fixtures fail there instead of skipping (tests/testutil/skip.h), and this catches any skip
# they do not, listing it, so that a run that could not mount still cannot pass.
set -euo pipefail
dir=$1
shift
junit=$(mktemp /tmp/rankfs-ctest-XXXXXX.xml)
trap 'rm -f "$junit"' EXIT
rc=0
(cd "$dir" && ctest --output-on-failure --output-junit "$junit" "$@") || rc=$?
case "${CI:-}" in
  true | 1)
    # CTest marks a test skipped when GoogleTest printed "[  SKIPPED ]" (its
    # SKIP_REGULAR_EXPRESSION, set by gtest_discover_tests).
    skipped=$(grep -o '<testcase name="[^"]*"[^>]*status="notrun"' "$junit" |
              sed 's/<testcase name="\([^"]*\)".*/\1/' || true)
    if [ -n "$skipped" ]; then
      echo "rankfs: CI=$CI and these tests were skipped (a skip is a failure in CI):" >&2
      echo "$skipped" | sed 's/^/  /' >&2
      rc=1
    fi
    ;;
esac
exit "$rc"
