#!/usr/bin/env bash
# Installs what the benchmark harness (go run ./bench) drives, from Debian's
# archive, once: packages already present are skipped, so running it again
# is cheap. iperf3 is the real-kernel traffic source, nftables and iptables
# load the kernel router's rules, slirp4netns and passt (pasta) are the
# user-mode stacks compared with nfpipe, gnuplot-nox draws the PNG plots.
set -euo pipefail

packages=(iproute2 iputils-ping iptables nftables iperf3 slirp4netns passt gnuplot-nox)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all present (${packages[*]})"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing ${missing[*]}; run as root (or with sudo) to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# iperf3 asks whether to start a system-wide daemon; answer no without a prompt.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
