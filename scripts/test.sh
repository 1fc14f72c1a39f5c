#!/usr/bin/env bash
# Runs every test with the race detector (what `make test` and CI run).
# A hung test fails its package after TEST_TIMEOUT with a dump of every
# goroutine; that dump is long, and a CI log keeps only its end, so on
# failure this prints, last, which tests failed or were still running,
# and where the goroutines that had waited for minutes were waiting.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
log=$(mktemp -t nfpipe-test.XXXXXX)
waited='
# Reads a go test log; for goroutines that had waited a minute or more when
# a test timed out, prints one line per (state, innermost frame, innermost
# frame of this module) with how many goroutines share it.
/^goroutine [0-9]+ \[.*minutes?\]:$/ {
	flush()
	state = $0; sub(/^goroutine [0-9]+ \[/, "", state); sub(/, [0-9]+ minutes?\]:$/, "", state)
	in_g = 1; inner = ""; ours = ""; next
}
/^goroutine / { flush(); in_g = 0; next }
in_g && /^[^\t].*\(/ {
	fn = $0; sub(/\(0x.*$|\(\.\.\.\)$|\([^()]*\)$/, "", fn)
	if (inner == "" && fn !~ /^(runtime|sync|internal\/[a-z]+|gvisor\.dev\/gvisor\/pkg\/sync)\./) inner = fn
	if (ours == "" && fn ~ /nfpipe\/nfpipe/) ours = fn
}
/^$/ { flush(); in_g = 0 }
END { flush(); for (k in n) printf "%4d× %s\n", n[k], k }
function flush() {
	if (in_g && inner != "") {
		k = "[" state "] " inner
		if (ours != "" && ours != inner) k = k " ← " ours
		n[k]++
	}
	in_g = 0; inner = ""
}
'
trap 'rm -f "$log"' EXIT

"$GO" test -race -count=1 -timeout "${TEST_TIMEOUT:-8m}" "$@" ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
	echo
	echo "=== summary: failed tests, and the tests a timed-out package was still running ==="
	grep -E -A6 '^panic: test timed out' "$log" | grep -E '^(panic:|[[:space:]]+(running tests:|Test|Fuzz|Example))' || true
	grep -E '^(--- FAIL|FAIL|panic: )' "$log" | grep -v '^panic: test timed out' || true
	if grep -q '^panic: test timed out' "$log"; then
		echo "goroutines that had waited a minute or more, by state, innermost frame and innermost frame of ours:"
		awk "$waited" "$log" | sort -rn | head -15
	fi
fi
exit "$rc"
