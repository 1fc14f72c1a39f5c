#!/usr/bin/env bash
# Runs every test with the race detector (what `make test` and CI run).
# A hung test fails its package after TEST_TIMEOUT with a dump of every
# goroutine; that dump is long, and a CI log keeps only its end, so on
# failure this prints, last, which tests failed or were still running.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
log=$(mktemp -t nfpipe-test.XXXXXX)
trap 'rm -f "$log"' EXIT

"$GO" test -race -count=1 -timeout "${TEST_TIMEOUT:-8m}" "$@" ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
	echo
	echo "=== summary: failed tests, and the tests a timed-out package was still running ==="
	grep -E -A6 '^panic: test timed out' "$log" | grep -E '^(panic:|[[:space:]]+(running tests:|Test|Fuzz|Example))' || true
	grep -E '^(--- FAIL|FAIL|panic: )' "$log" | grep -v '^panic: test timed out' || true
fi
exit "$rc"
