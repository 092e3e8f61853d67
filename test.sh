#!/usr/bin/env bash
# Runs every test of bpffs: formatting and vet, unit tests, the end-to-end
# tests against a real FUSE mount with TAP devices in test network
# namespaces, the manual page lint, bounded fuzzing and a short benchmark
# run. Needs root, /dev/fuse and /dev/net/tun; installs what it needs.
set -euo pipefail
cd "$(dirname "$0")"

need_pkgs=()
command -v gcc >/dev/null || need_pkgs+=(gcc libc6-dev)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v mandoc >/dev/null || need_pkgs+=(mandoc)
command -v sysctl >/dev/null || need_pkgs+=(procps)
command -v tcpdump >/dev/null || need_pkgs+=(tcpdump)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	echo "== installing ${need_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
if ! command -v go >/dev/null; then
	[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
fi

if [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ] || [ ! -c /dev/net/tun ]; then
	msg="bpffs tests need root, /dev/fuse and /dev/net/tun"
	if [ "${CI:-}" = true ]; then echo "FAIL: $msg" >&2; exit 1; fi
	echo "warning: $msg; privileged tests will be skipped" >&2
fi

echo "== gofmt and go vet"
unformatted=$(gofmt -l . | grep -v '^\.cache/' || true)
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted" >&2; exit 1; fi
go vet ./...

echo "== manual page"
lint=$(mandoc -Tlint -W warning man/bpf.4 || true)
if [ -n "$lint" ]; then echo "$lint" >&2; exit 1; fi

echo "== tests"
go test -count=1 -timeout 20m ./...

echo "== race detector on the concurrent packages"
go test -race -count=1 -timeout 20m ./bpf/... ./bufmode/... ./devfs/... ./tap/...

echo "== bounded fuzzing (${FUZZTIME:=10s} per target; FUZZTIME=5m for longer)"
fuzz_log=$(mktemp)
for target in ./bpf/filter:FuzzDifferential ./bpf/filter:FuzzRun ./bpf/filter:FuzzValidate \
	./bpf:FuzzCatch ./ioctl:FuzzDecoders ./ioctl:FuzzDispatch ./devfs/fuse:FuzzRequest ./tap:FuzzValidName; do
	pkg=${target%%:*} name=${target##*:}
	# Go's fuzzing coordinator sometimes reports "context deadline exceeded"
	# when the time budget ends while a worker is busy; that is not a finding
	# (no failing input is written), so it earns one retry. A real failure
	# writes its input under testdata/fuzz and fails the run.
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$fuzz_log" 2>&1; then
		if grep -q 'context deadline exceeded' "$fuzz_log" && ! grep -q 'Failing input written' "$fuzz_log"; then
			echo "fuzz $name: the fuzzing harness hit its deadline mid-call; running it again"
			go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$fuzz_log" 2>&1 || { cat "$fuzz_log"; exit 1; }
		else
			cat "$fuzz_log"
			exit 1
		fi
	fi
	execs=$(grep -o 'execs: [0-9]*' "$fuzz_log" | tail -1 | cut -d' ' -f2)
	echo "fuzz $name: ${execs:-0} executions, no failure"
done
rm -f "$fuzz_log"

echo "== short benchmark run (timings are printed, never asserted)"
go test -run '^$' -bench . -benchtime 200x -benchmem ./devfs/fuse/ ./bpf/ ./bpf/filter/
go run ./cmd/bpfbench -quick -png ''
