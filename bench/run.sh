#!/usr/bin/env bash
# bench/run.sh: the standard load scenarios against a freshly started
# homeserver, on SQLite, then on PostgreSQL. It builds homeserver and
# loadtest, and for each engine: `homeserver init` in a temp dir, `homeserver
# run` on 127.0.0.1 with a free port, every scenario with bounded sizes
# (loadtest --pid samples the server's memory and CPU), then stops it.
#
# Results: bench/results/<date>/<engine>/<scenario>/ (results.json,
# index.html, histograms), <engine>/<scenario>.txt (the table) and
# summary.txt (every table). A scenario the server answers M_UNRECOGNIZED
# to is skipped with a message. It takes 5 to 8 minutes on 2 cores.
#
# Environment:
#   HOMESERVER_BENCH_POSTGRES  server to create a fresh database on
#       (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable);
#       the database is dropped at the end
#   BENCH_ENGINES    engines to run (default "sqlite postgres")
#   BENCH_SCENARIOS  scenarios to run (default "chat initial-sync join send e2ee media")
#   BENCH_RESULTS    results directory (default bench/results/<date>)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
stamp=$(date +%Y-%m-%d_%H%M%S)
results=${BENCH_RESULTS:-$root/bench/results/$stamp}
pg_dsn=${HOMESERVER_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
engines=${BENCH_ENGINES:-sqlite postgres}
scenarios=${BENCH_SCENARIOS:-chat initial-sync join send e2ee media}

# The standard sizes: bounded so that both engines finish in under
# 12 minutes on a 2-core machine. chat and initial-sync are the sizes of
# the sync targets (issue 5): 200 users in 20 rooms at 100 messages/s, and
# one user in 500 rooms of 20 events.
declare -A sizes=(
	[chat]="--users 200 --rooms 20 --senders 20 --rate 100 --warmup 5s --duration 30s --drain 10s --idle 15s"
	[initial-sync]="--rooms 500 --messages 20 --syncs 10 --warmup 2s --duration 60s"
	[join]="--users 50 --ops 100000 --warmup 3s --duration 20s"
	[send]="--senders 20 --rooms 20 --rate 200 --warmup 5s --duration 30s"
	[e2ee]="--devices 20 --otks 20 --claims 5 --fanout 5 --rate 20 --warmup 5s --duration 20s --drain 10s"
	[media]="--sizes 10KiB,1MiB --uploads 20 --downloads 3 --concurrency 4 --warmup 2s --duration 60s"
)
# A scenario is sent Ctrl-C after this long (it then stops and still
# reports), and killed 30 s later.
scenario_timeout=180s

work=$(mktemp -d)
hs_pid=""
pg_db=""
failures=0

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_server() {
	if [[ -n $hs_pid ]]; then
		kill -TERM "$hs_pid" 2>/dev/null || true
		wait "$hs_pid" 2>/dev/null || true
		hs_pid=""
	fi
}

drop_database() {
	if [[ -n $pg_db ]]; then
		psql "$pg_dsn" -qAtc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null || log "could not drop database $pg_db"
		pg_db=""
	fi
}

cleanup() {
	stop_server
	drop_database
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a TCP port nothing listens on at 127.0.0.1.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# start_server ENGINE [DATABASE_URL]: init and run a fresh server; sets
# hs_pid, hs_url and hs_secret.
start_server() {
	local engine=$1 db=${2:-} dir=$work/$1 port
	port=$(free_port) || { log "no free port"; return 1; }
	local args=(--server-name bench.local --dir "$dir" --client-listen "127.0.0.1:$port" --federation-listen off)
	[[ -n $db ]] && args+=(--database "$db")
	"$work/bin/homeserver" init "${args[@]}" >/dev/null || return 1
	# The bench measures the server, not its per-user request limiter: a
	# simulated user may send more than 50 requests a second.
	sed -i 's|^\( *\)#request: {per_second: 50, burst: 200}|\1request: {per_second: 0, burst: 1}|' "$dir/homeserver.yaml"
	grep -q '^ *request: {per_second: 0, burst: 1}' "$dir/homeserver.yaml" ||
		log "warning: could not lift the request rate limit in $dir/homeserver.yaml"
	hs_secret=$(sed -n 's/^ *shared_secret: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$dir/homeserver.yaml" | head -n 1)
	[[ -n $hs_secret ]] || { log "no shared_secret in $dir/homeserver.yaml"; return 1; }
	"$work/bin/homeserver" run --config "$dir/homeserver.yaml" >"$results/$engine/homeserver.log" 2>&1 &
	hs_pid=$!
	hs_url="http://127.0.0.1:$port"
	for _ in $(seq 150); do
		if curl -fsS "$hs_url/_matrix/client/versions" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$hs_pid" 2>/dev/null; then
			log "the homeserver exited; see $results/$engine/homeserver.log"
			hs_pid=""
			return 1
		fi
		sleep 0.2
	done
	log "the homeserver did not answer within 30 s"
	return 1
}

# run_scenarios ENGINE: every scenario against the running server.
run_scenarios() {
	local engine=$1 name rc out
	for name in $scenarios; do
		out=$results/$engine/$name
		log "$engine: $name ${sizes[$name]}"
		# Write back what is dirty in the page cache first (the binaries
		# just built, the new database, an earlier scenario's files): the
		# kernel flushes dirty pages 30 s after they were written, and such
		# a burst in the middle of a scenario stalls every fsync of the
		# server for 50-100 ms (measured: the build's write-back landed
		# 28 s into the send scenario).
		sync
		set +e
		# shellcheck disable=SC2086 # sizes are words on purpose
		timeout --signal=INT --kill-after=30s "$scenario_timeout" \
			"$work/bin/loadtest" --hs "$hs_url" --shared-secret "$hs_secret" --pid "$hs_pid" --out "$out" \
			"$name" ${sizes[$name]} >"$out.txt" 2>"$out.log"
		rc=$?
		set -e
		case $rc in
		0) cat "$out.txt" ;;
		3) log "$engine: $name skipped: $(sed -n 's/^loadtest [a-z0-9-]*: skipped: //p' "$out.log")" ;;
		130) cat "$out.txt"; log "$engine: $name stopped at the $scenario_timeout limit: partial figures" ;;
		*) log "$engine: $name failed (exit $rc); see $out.log"; tail -n 3 "$out.log" >&2; failures=$((failures + 1)) ;;
		esac
		{
			printf '== %s: %s (exit %d)\n' "$engine" "$name" "$rc"
			if [[ $rc == 3 ]]; then sed -n 's/^loadtest [a-z0-9-]*: //p' "$out.log"; else cat "$out.txt"; fi
			echo
		} >>"$results/summary.txt"
		if ! kill -0 "$hs_pid" 2>/dev/null; then
			log "$engine: the homeserver died during $name; see $results/$engine/homeserver.log"
			failures=$((failures + 1))
			hs_pid=""
			return 1
		fi
	done
}

mkdir -p "$results" "$work/bin"
log "building homeserver and loadtest"
(cd "$root" && go build -o "$work/bin/homeserver" ./cmd/homeserver && go build -o "$work/bin/loadtest" ./cmd/loadtest)
{
	echo "bench/run.sh $stamp on $(uname -n): $(nproc) cores, $(go version | cut -d' ' -f3)"
	echo "commit $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
	echo
} >"$results/summary.txt"

for engine in $engines; do
	mkdir -p "$results/$engine"
	case $engine in
	sqlite)
		start_server sqlite || { failures=$((failures + 1)); stop_server; continue; }
		;;
	postgres)
		if ! command -v psql >/dev/null; then
			log "postgres: skipped (no psql to create the database)"
			echo "== postgres: skipped (no psql)" >>"$results/summary.txt"
			continue
		fi
		if ! psql "$pg_dsn" -qAtc 'select 1' >/dev/null 2>&1; then
			log "postgres: skipped (no PostgreSQL answers at HOMESERVER_BENCH_POSTGRES=$pg_dsn)"
			echo "== postgres: skipped (no server at $pg_dsn)" >>"$results/summary.txt"
			continue
		fi
		pg_db="hs_bench_$(date +%s)_$$"
		psql "$pg_dsn" -qAtc "CREATE DATABASE $pg_db" >/dev/null
		base=${pg_dsn%%\?*}
		query=""
		[[ $pg_dsn == *\?* ]] && query="?${pg_dsn#*\?}"
		start_server postgres "${base%/*}/$pg_db$query" || { failures=$((failures + 1)); stop_server; drop_database; continue; }
		;;
	*)
		log "unknown engine $engine (sqlite, postgres)"
		failures=$((failures + 1))
		continue
		;;
	esac
	log "$engine: homeserver $hs_pid at $hs_url"
	run_scenarios "$engine" || true
	stop_server
	drop_database
done

log "results in $results (summary.txt, and index.html in each scenario's folder)"
exit $((failures > 0))
