#!/usr/bin/env bash
# Times kubepki against the tools it replaces, in one run on one machine:
#   1. the openssl loop of Kubernetes the Hard Way ( genrsa 4096, req,
#      x509 -req for the CA and 8 certificates) vs kubepki init --profile
#      hardway --key-algorithm RSA-4096;
#   2. kubeadm init phase certs all (RSA-2048, kubeadm's default) vs kubepki
#      init --profile kubeadm --key-algorithm RSA-2048;
#   3. kubepki's default (ECDSA-P256), for reference.
# Each is run RUNS times (default 5); the medians and their ratios are
# printed as a Markdown table. kubeadm comes from the cache the e2e tests
# fill (run ./hack/test once first), or KUBEADM=/path/to/kubeadm.
#
# For the two RSA sets it also prints kubepki init against the cores' limit:
# the processor time of every key generation of the run (kubepki prints one
# line per key with KUBEPKI_DEBUG_TIMING=1, the generating thread's CPU
# time) divided by the cores. RSA prime search is random, so a run's own
# keys are its yardstick: the limit is computed per run, and the table
# gives the median limit and the median of the per-run ratios init / limit.
# The machine's load average is printed before and after: other work on the
# cores slows init but not the keys' processor time, so the ratio only
# means something on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export GOTOOLCHAIN=local
go build -o "$work/kubepki" ./cmd/kubepki
kubepki="$work/kubepki"
kubeadm=${KUBEADM:-$(ls -d "${KUBEPKI_TOOLS_CACHE:-$HOME/.cache/kubepki/tools}"/*/kubeadm 2>/dev/null | head -1 || true)}
conf="$PWD/internal/cluster/testdata/caconf/kthw.conf"

# ms runs "$@" once and prints its wall time in milliseconds; a failing
# command stops the benchmark (a fast failure is not a fast tool).
ms() {
	local start end
	start=$(date +%s%N)
	if ! "$@" >"$work/last.log" 2>&1; then
		echo "benchmark step failed: $*" >&2
		cat "$work/last.log" >&2
		exit 1
	fi
	end=$(date +%s%N)
	echo $(((end - start) / 1000000))
}

# limit prints, in milliseconds, the time of the keys kubepki generated in
# the last run (the "timing: key" lines of ms's log) divided by the cores:
# their processor time (field 5) or their wall time (field 7).
limit() {
	awk -v f="${1:-5}" -v cores="$(nproc)" '$1 == "timing:" && $2 == "key" { s += $f } END { printf "%d\n", s * 1000 / cores }' "$work/last.log"
}

# median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

hardway_openssl() {
	local d=$1
	mkdir -p "$d" && cd "$d"
	openssl genrsa -out ca.key 4096
	openssl req -x509 -new -sha512 -noenc -key ca.key -days 3653 -config "$conf" -out ca.crt
	for cert in admin node-0 node-1 kube-proxy kube-scheduler kube-controller-manager kube-api-server service-accounts; do
		openssl genrsa -out "$cert.key" 4096
		openssl req -new -key "$cert.key" -sha256 -config "$conf" -section "$cert" -out "$cert.csr"
		openssl x509 -req -days 3653 -in "$cert.csr" -copy_extensions copyall -sha256 \
			-CA ca.crt -CAkey ca.key -CAcreateserial -out "$cert.crt"
	done
	cd - >/dev/null
}

# kubeadm_certs makes kubeadm's PKI and kubeconfigs in $1, as kubepki does.
kubeadm_certs() {
	sed "s|CERTDIR|$1/pki|" "$work/kubeadm.yaml" >"$work/kubeadm-$$.yaml"
	"$kubeadm" init phase certs all --config "$work/kubeadm-$$.yaml"
	"$kubeadm" init phase kubeconfig all --config "$work/kubeadm-$$.yaml" --kubeconfig-dir "$1"
}

cat >"$work/kubeadm.yaml" <<'YAML'
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.168.10.100
nodeRegistration:
  name: server
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: server.kubernetes.local:6443
certificatesDir: CERTDIR
networking:
  serviceSubnet: 10.32.0.0/24
YAML

# timed NAME ARGS... runs kubepki init ARGS with key timing on, and adds
# its wall time to t[NAME], its limit to t[NAME-limit], the ratio of the
# two (in thousandths) to t[NAME-ratio], and the ratio to the limit of the
# keys' wall time to t[NAME-wratio].
timed() {
	local name=$1 w l lw
	shift
	w=$(KUBEPKI_DEBUG_TIMING=1 ms "$kubepki" init "$@")
	l=$(limit 5)
	lw=$(limit 7)
	t[$name]+="$w "
	t[$name-limit]+="$l "
	t[$name-ratio]+="$(awk -v a="$w" -v b="$l" 'BEGIN { printf "%d", (b > 0 ? a * 1000 / b : 0) }') "
	t[$name-wratio]+="$(awk -v a="$w" -v b="$lw" 'BEGIN { printf "%d", (b > 0 ? a * 1000 / b : 0) }') "
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A t
for i in $(seq "$runs"); do
	t[openssl]+="$(ms hardway_openssl "$work/o$i") "
	timed hardway4096 --dir "$work/h$i" --key-algorithm RSA-4096
	if [ -n "$kubeadm" ]; then
		t[kubeadm]+="$(ms kubeadm_certs "$work/k$i") "
	fi
	timed kubeadm2048 --dir "$work/p$i/pki" --profile kubeadm --key-algorithm RSA-2048
	t[ecdsa]+="$(ms "$kubepki" init --dir "$work/e$i") "
	echo "run $i/$runs done" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

med() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "-" }'; }
permille() { awk -v a="$1" 'BEGIN { printf "%.2f×", a / 1000 }'; }

o=$(med openssl); h=$(med hardway4096); p=$(med kubeadm2048); e=$(med ecdsa)
echo "| job | median (ms, $runs runs, $(nproc) cores) | kubepki's speed-up |"
echo "|---|---|---|"
echo "| the hard way's openssl loop, RSA-4096, CA + 8 certs | $o | |"
echo "| kubepki init --profile hardway --key-algorithm RSA-4096 (+ 6 kubeconfigs) | $h | $(ratio "$o" "$h") |"
if [ -n "$kubeadm" ]; then
	k=$(med kubeadm)
	echo "| kubeadm init phase certs all + kubeconfig all (RSA-2048) | $k | |"
	echo "| kubepki init --profile kubeadm --key-algorithm RSA-2048 | $p | $(ratio "$k" "$p") |"
else
	echo "| kubepki init --profile kubeadm --key-algorithm RSA-2048 | $p | (kubeadm not found) |"
fi
echo "| kubepki init (default ECDSA-P256, hardway) | $e | $(ratio "$o" "$e") vs openssl |"
echo
echo "| kubepki init | median (ms) | limit: Σ keygen CPU / $(nproc) cores, median (ms) | init / limit, median of runs | runs (init / limit) | init / (Σ keygen wall / $(nproc)), median |"
echo "|---|---|---|---|---|---|"
for set in hardway4096 kubeadm2048; do
	case $set in
	hardway4096) label="--profile hardway --key-algorithm RSA-4096 (9 keys)" ;;
	kubeadm2048) label="--profile kubeadm --key-algorithm RSA-2048 (16 keys)" ;;
	esac
	echo "| $label | $(med $set) | $(med $set-limit) | $(permille "$(med $set-ratio)") | $(tr ' ' '\n' <<<"${t[$set-ratio]}" | grep . | awk '{printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / 1000}') | $(permille "$(med $set-wratio)") |"
done
echo
echo "load average (1, 5, 15 min): $load_before before, $load_after after"
