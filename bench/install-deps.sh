#!/usr/bin/env bash
# Installs what the benchmark harness (go run ./bench) drives, from Debian's
# archive, once (scripts/install-deps.sh does the work): iperf3 is the
# real-kernel traffic source, nftables and iptables load the kernel router's
# rules, slirp4netns and passt (pasta) are the user-mode stacks compared with
# nfpipe, gnuplot-nox draws the PNG plots, gcc builds the C relay (the
# floor of a hop through a process, bench/crelay).
set -euo pipefail
exec "$(dirname "$0")/../scripts/install-deps.sh" iproute2 iputils-ping iptables nftables iperf3 slirp4netns passt gnuplot-nox gcc
