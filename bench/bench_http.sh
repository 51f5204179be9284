#!/usr/bin/env bash
# HTTP serving under load: `mfstream serve --listen` on a 100k-item, dim-64
# model, top-10 recommendations (GET /v1/recommend?user=U&k=10), driven by
# bench_http_load (one epoll thread, keep-alive connections):
#   1. 64 connections, closed loop (the most the server can do; on a machine
#      with few cores the latency is then mostly queueing: Little's law)
#   2. a fixed offered rate below saturation (open loop, latency from each
#      request's scheduled time)
#   3. both again while 300 idle connections and 5 clients that never read
#      hold on, and the model file is replaced every second
#   4. the served file rewritten in place (cp) and truncated (: >) 100 times
#      each under load: the server must survive every one
# It prints one JSON line per run, the server's CPU time per request
# (cpu_us_per_req: its user + system time over the run / requests answered)
# and largest RSS, then wrk's view of run 1 when wrk is installed.
#
# Usage: bench/bench_http.sh [BUILD_DIR] [SECONDS]   (defaults build/release 10)
# Environment: RATE (open-loop rate, default 60% of run 1's throughput),
#   RATES ("r1 r2 ...": open-loop runs at each rate, plain, with refresh every
#   second, with 300 idle + 5 deaf clients, and with both), THREADS (2),
#   SERVE_OPTS (more serve options, e.g. "--refresh-nice 0"), NO_CRASH=1 (skip 4),
#   SWEEP_ONLY=1 (with RATES: only the sweep, not 1-3), REFRESH_COPY=1 (the
#   refresh writes a copy of the model each second, as a learner on the same
#   machine would, instead of a hard link: the cp competes for the 2 cores)
set -uo pipefail
build="${1:-build/release}"; secs="${2:-10}"
bin="$build/mfstream"; load="$build/bench/bench_http_load"
dir="${BENCH_DIR:-/tmp/mfstream-bench}/http"
mkdir -p "$dir"
[ -x "$load" ] || { echo "bench_http: build $load first (cmake --build)" >&2; exit 1; }
s="$dir/s.tsv"
[ -f "$s" ] || "$bin" gen --events 2000000 --users 50000 --items 100000 --zipf 0.8 --seed 11 \
    --output "$s" >/dev/null
for seed in 1 2; do
  [ -f "$dir/m$seed.mfs" ] || "$bin" train --quiet --dim 64 --seed $seed --max-users 60000 \
      --max-items 100000 --save "$dir/m$seed.mfs" "$s" >/dev/null
done
cut -f1 "$s" | awk '!seen[$0]++' | head -n 5000 > "$dir/users.txt"
rm -f "$dir/cur.mfs"; cp "$dir/m1.mfs" "$dir/cur.mfs" # never through a link to m1/m2

# shellcheck disable=SC2086
"$bin" serve --model "$dir/cur.mfs" --listen 127.0.0.1:0 --no-stdin --threads "${THREADS:-2}" \
    --poll-ms 200 ${SERVE_OPTS:-} 2> "$dir/serve.err" &
spid=$!
for _ in $(seq 100); do grep -q '"listen"' "$dir/serve.err" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*"listen": "127.0.0.1:\([0-9]*\)".*/\1/p' "$dir/serve.err" | head -1)
[ -n "$port" ] || { echo "bench_http: the server did not start" >&2; cat "$dir/serve.err" >&2; exit 1; }
echo "# server pid $spid on port $port; $(nproc) CPUs; model: 100k items, dim 64; top-10"

rss_max=0
sample_rss() { # the server's RSS (KiB) every 0.2 s into $dir/rss until $1 exists
  while [ ! -e "$1" ]; do
    awk '/VmRSS/{print $2}' /proc/$spid/status 2>/dev/null >> "$dir/rss"; sleep 0.2
  done
}
refresher() { # replace the model file every second (rename: a new file each time)
  local i=0
  while [ ! -e "$1" ]; do
    i=$((i + 1))
    if [ -n "${REFRESH_COPY:-}" ]; then # a writer on this machine: 44-96 MB written a second
      cp "$dir/m$(( i % 2 + 1 )).mfs" "$dir/cur.tmp"
    else # the file arrives without costing this machine's CPU: a hard link
      ln -f "$dir/m$(( i % 2 + 1 )).mfs" "$dir/cur.tmp"
    fi && { mv -f "$dir/cur.tmp" "$dir/cur.mfs" 2>/dev/null || true; } # (already that file)
    sleep 1
  done
}
cpu_ticks() { awk '{ print $14 + $15 }' /proc/$spid/stat; } # user + system, in clock ticks
hz=$(getconf CLK_TCK)
run() { # label, then bench_http_load's arguments after the users file and seconds
  local label="$1"; shift
  rm -f "$dir/stop" "$dir/rss"
  sample_rss "$dir/stop" & local sp=$!
  local c0; c0=$(cpu_ticks)
  local out; out=$("$load" "$port" "$dir/users.txt" "$secs" "$@")
  local c1; c1=$(cpu_ticks)
  touch "$dir/stop"; wait $sp
  local r; r=$(sort -n "$dir/rss" | tail -1)
  server_side > "$dir/ss"
  local cpr; cpr=$(awk -v c=$(( c1 - c0 )) -v hz="$hz" -v n="$(field requests "$out")" \
    'BEGIN { if (n > 0) printf "%.0f", c / hz / n * 1e6; else print "-" }')
  echo "$label $out cpu_us_per_req=$cpr rss_max_mb=$(( r / 1024 )) $(cat "$dir/ss")"
  [ "$r" -gt "$rss_max" ] && rss_max=$r
  last="$out"
}
field() { printf '%s' "$2" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
# The server's own time per recommend (its histogram: last byte in -> answer
# queued), for the requests since the previous call: the share within 0.5, 1
# and 2 ms. What the client sees beyond it is queueing and the network stack.
prev_b=""
server_side() {
  local cur; cur=$(curl -s "http://127.0.0.1:$port/metrics" |
    sed -n 's/^mfstream_http_request_duration_seconds_bucket{endpoint="recommend",le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p')
  awk -v prev="$prev_b" 'BEGIN { n = split(prev, p, " ");
      for (i = 1; i < n; i += 2) old[p[i]] = p[i + 1] }
    { d[$1] = $2 - old[$1] } END { t = d["+Inf"]; if (t <= 0) { print "server_side: -"; exit }
      printf "server_side: n=%d le0.5ms=%.1f%% le1ms=%.1f%% le2ms=%.1f%%\n", t,
        100 * d["0.0005"] / t, 100 * d["0.001"] / t, 100 * d["0.002"] / t }' <<< "$cur"
  prev_b=$(echo $cur)
}

if [ -z "${SWEEP_ONLY:-}" ]; then
run "closed64" 64
cap=$(field rps "$last")
rate="${RATE:-$(awk -v c="$cap" 'BEGIN{printf "%d", c * 0.6}')}"
run "open64@$rate" 64 "$rate"
rm -f "$dir/stop-refresh"; refresher "$dir/stop-refresh" & rp=$!
run "closed64+300idle+5deaf+refresh1s" 64 0 300 5
run "open64@$rate+300idle+5deaf+refresh1s" 64 "$rate" 300 5
touch "$dir/stop-refresh"; wait $rp
grep -c '"refresh"' "$dir/serve.err" | sed 's/^/# refreshes so far: /'
fi
for r in ${RATES:-}; do
  run "open64@$r" 64 "$r"
  rm -f "$dir/stop-refresh"; refresher "$dir/stop-refresh" & rp=$!
  run "open64@$r+refresh1s" 64 "$r"
  touch "$dir/stop-refresh"; wait $rp
  run "open64@$r+300idle+5deaf" 64 "$r" 300 5
  rm -f "$dir/stop-refresh"; refresher "$dir/stop-refresh" & rp=$!
  run "open64@$r+300idle+5deaf+refresh1s" 64 "$r" 300 5
  touch "$dir/stop-refresh"; wait $rp
done
sed -n 's/.*"load_ms": \([0-9.]*\).*/\1/p' "$dir/serve.err" | sort -n |
  awk '{ a[NR] = $1 } END { if (NR) printf "# refresh load_ms: n=%d median %s max %s\n", NR, a[int((NR + 1) / 2)], a[NR] }'
if [ -n "${NO_CRASH:-}" ]; then
  echo "# server RSS max over the runs: $(( rss_max / 1024 )) MiB"
  kill -TERM $spid; wait $spid 2>/dev/null
  exit 0
fi

# 100 in-place rewrites and 100 truncations under load (of a file of its own,
# not a link to m1/m2)
rm -f "$dir/cur.mfs"; cp "$dir/m1.mfs" "$dir/cur.mfs"
"$load" "$port" "$dir/users.txt" 60 16 > "$dir/crash.json" & lp=$!
crashes=0
for i in $(seq 100); do
  cp "$dir/m$(( i % 2 + 1 )).mfs" "$dir/cur.mfs"; sleep 0.05
  : > "$dir/cur.mfs"; sleep 0.05
  kill -0 $spid 2>/dev/null || { crashes=$((crashes + 1)); break; }
done
cp "$dir/m1.mfs" "$dir/cur.mfs"; sleep 0.5
kill $lp 2>/dev/null; wait $lp 2>/dev/null
health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" 2>/dev/null || echo none)
kill -0 $spid 2>/dev/null || crashes=$((crashes + 1))
fails=$(curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null | sed -n 's/^mfstream_model_refresh_failures_total //p')
echo "# cp + truncate x100 under load: crashes $crashes, healthz after $health, refresh failures counted $fails"
echo "# server RSS max over the runs: $(( rss_max / 1024 )) MiB"

if command -v wrk >/dev/null; then
  echo "# wrk, 64 connections, 2 threads, ${secs}s (one user: wrk asks one URL)"
  wrk -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/v1/recommend?user=$(head -1 "$dir/users.txt")&k=10" \
    | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
else
  echo "# wrk is not installed (Debian: apt-get install wrk); skipped its run"
fi
kill -TERM $spid; wait $spid 2>/dev/null
