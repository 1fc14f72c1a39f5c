#!/usr/bin/env bash
# Installs what nfpipe's tests and demos use from Debian's archive, once:
# packages already present are skipped, so running it again is cheap.
# With arguments, installs those packages instead (bench/install-deps.sh).
set -euo pipefail

packages=(tcpdump iproute2 iputils-ping curl tshark iptables iperf3 nftables python3)
if [ $# -gt 0 ]; then
	packages=("$@")
fi

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
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
# iperf3 asks whether to run a server at boot; the tests start their own.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
