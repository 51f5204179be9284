#!/usr/bin/env bash
# Kafka in and out, on librdkafka's mock cluster (tests/kafka_mock, in a
# process of its own; everything on this machine's loopback).
#
# (a) throughput: `train --kafka` consuming EVENTS JSON-line events against
#     `train` on the same events from a zstd file, in the same run, at 1000
#     events a message and at 1 a message. The mock keeps at most 5 MiB or
#     100000 messages per partition (rd_kafka_mock_partition_init in
#     librdkafka's src/rdkafka_mock.c: max_size = 1024 * 1024 * 5,
#     max_cnt = 100000) and drops the oldest beyond, so the events cannot all
#     sit in the topic first: they are produced in rounds (ROUND events per
#     partition, 8 partitions), at most two rounds ahead of the learner (its
#     checkpoint names say how far it is). The rate is taken between the first
#     round learned and the last; the mock's producing shares the cores.
# (b) edge refresh lag: a learner on a 100k-item dim-64 model publishes a delta
#     every DELTA events to a 64-partition model topic (chunks spread by key,
#     so a whole snapshot fits the mock's per-partition limit); `serve --kafka`
#     follows it. Reports the median and max lag_ms of its refresh lines (the
#     publisher's write time in the chunks to the swap) and the bytes per delta.
#
# Usage: bench/bench_kafka.sh [BUILD_DIR] [EVENTS] [a|b|ab]
# Defaults: build/release 10000000 ab
set -uo pipefail
build="${1:-build/release}"; events="${2:-10000000}"; parts="${3:-ab}"
bdir="$(cd "$build" && pwd)"
bin="$bdir/mfstream"; mock="$bdir/tests/kafka_mock"
dir="${BENCH_DIR:-/tmp/mfstream-bench}/kafka"
rm -rf "$dir"; mkdir -p "$dir"

coproc MOCK { "$mock" --brokers 3 2>"$dir/mock.err"; }
read -r _ boot <&"${MOCK[0]}" || { echo "bench_kafka: the mock cluster did not start" >&2; exit 1; }
cmd() {
	echo "$*" >&"${MOCK[1]}"
	local ans; read -r ans <&"${MOCK[0]}"
	case $ans in ok*) ;; *) echo "bench_kafka: mock: $* -> $ans" >&2; exit 1 ;; esac
}
newest() { # the newest checkpoint's events in $1
	ls "$1" 2>/dev/null | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.\(mfs\|delta\)$/\1/p' | sort -n | tail -1
}
wait_ckpt() { # dir events pid
	until [ "$(newest "$1")" -ge "$2" ] 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || { echo "bench_kafka: the learner ended early" >&2; exit 1; }
		sleep 0.01
	done
}
now() { date +%s.%N; }

if [[ $parts == *a* ]]; then
	cmd "dump $dir/ev.jsonl $events 7 0"
	zstd -q -1 --rm -f "$dir/ev.jsonl" -o "$dir/ev.jsonl.zst"
	common=(--dim 16 --max-users 4096 --max-items 4096 --quiet)
	mkdir -p "$dir/ck_file"
	"$bin" train "$dir/ev.jsonl.zst" "${common[@]}" --checkpoint-dir "$dir/ck_file" \
		--checkpoint-every 1000000 > "$dir/file.json"
	zrate=$(sed -n 's/.*"events_per_sec": \([0-9.e+]*\).*/\1/p' "$dir/file.json")
	np=8; round="${ROUND:-25000}" # 8 x 25000 divides 10M: the last round ends on a checkpoint
	for per in 1000 1; do
		t="ev$per"; ck="$dir/ck_$per"; mkdir -p "$ck"
		cmd "topic $t $np"
		step=$((np * round))
		"$bin" train --kafka "$boot" --topic "$t" "${common[@]}" --checkpoint-dir "$ck" \
			--checkpoint-every "$step" > "$dir/kafka$per.json" 2>"$dir/kafka$per.err" &
		learner=$!
		produced=0; ptime=0
		# a file of its own name: the mock keeps a "lines" file open from call to call
		lines="$dir/ev_$per.jsonl"
		zstd -dc "$dir/ev.jsonl.zst" > "$lines"
		while [ "$produced" -lt "$events" ]; do
			# at most two rounds ahead of the learner: the older one is still in the log
			if [ "$produced" -ge $((2 * step)) ]; then
				wait_ckpt "$ck" $((produced - step)) "$learner"
				[ "$produced" -eq $((2 * step)) ] && t0=$(now) # round 1 learned
			fi
			p0=$(now)
			for ((p = 0; p < np; p++)); do cmd "lines $t $p $per $round $lines"; done
			ptime=$(echo "$ptime + $(now) - $p0" | bc)
			produced=$((produced + step))
		done
		wait_ckpt "$ck" "$events" "$learner"
		t1=$(now)
		kill -TERM "$learner"; wait "$learner"
		rm -f "$lines"
		learned=$(sed -n 's/.*"model_events": \([0-9]*\).*/\1/p' "$dir/kafka$per.json")
		echo "$per $t0 $t1 $ptime $learned" >> "$dir/rates.txt"
	done
	awk -v ev="$events" -v step=$((8 * ${ROUND:-25000})) -v z="$zrate" '
	{ r = (ev - step) / ($3 - $2); pr = ev / $4
	  printf "bench_kafka throughput events=%d per_message=%d kafka_ev_per_s=%.0f zstd_file_ev_per_s=%.0f mock_produce_ev_per_s=%.0f learned=%d\n",
	    ev, $1, r, z, pr, $5 }' "$dir/rates.txt"
fi

if [[ $parts == *b* ]]; then
	delta="${DELTA:-2000}"; rounds="${ROUNDS:-30}"
	"$bin" gen --events 1200000 --users 50000 --items 100000 --zipf 0 --ids int --format jsonl \
		--seed 3 --output "$dir/big.jsonl" >/dev/null
	cmd "topic in 32"; cmd "topic mfstream-model 64"
	for ((p = 0; p < 32; p++)); do cmd "lines in $p 1000 31250 $dir/big.jsonl"; done # 1M
	train=("$bin" train --kafka "$boot" --topic in --dim 64 --max-users 60000 --max-items 100000
	       --checkpoint-dir "$dir/ckb" --keep 1000 --publish "$boot/mfstream-model"
	       --publish-full-every 1000 --quiet)
	mkdir -p "$dir/ckb"
	# run 1: the first million events (every item), a whole checkpoint at its end
	"${train[@]}" --checkpoint-every 1000000 > "$dir/b1.json" 2>"$dir/b1.err" &
	learner=$!
	wait_ckpt "$dir/ckb" 1000000 "$learner"
	kill -TERM "$learner"; wait "$learner"
	# run 2 resumes: a whole snapshot first (the publisher's first), then deltas
	"${train[@]}" --checkpoint-every 100000000 --delta-every "$delta" > "$dir/b2.json" 2>"$dir/b2.err" &
	learner=$!
	cmd "lines in 0 1000 $delta $dir/big.jsonl"
	wait_ckpt "$dir/ckb" $((1000000 + delta)) "$learner"
	"$bin" serve --kafka "$boot" --model-topic mfstream-model --no-stdin --listen 0 \
		2>"$dir/serve.err" &
	server=$!
	until grep -q '"serving"' "$dir/serve.err"; do
		kill -0 "$server" 2>/dev/null || { cat "$dir/serve.err" >&2; exit 1; }
		sleep 0.05
	done
	for ((i = 1; i <= rounds; i++)); do
		cmd "lines in $((i % 32)) 1000 $delta $dir/big.jsonl"
		wait_ckpt "$dir/ckb" $((1000000 + (i + 1) * delta)) "$learner"
		sleep "${GAP:-1.5}"
	done
	sleep 3
	kill -TERM "$learner"; wait "$learner"
	kill -TERM "$server"; wait "$server"
	grep '"refresh"' "$dir/serve.err" | sed -n 's/.*"lag_ms": \([0-9.]*\).*/\1/p' | sort -n > "$dir/lag.txt"
	grep '"refresh"' "$dir/serve.err" | sed -n 's/.*"load_ms": \([0-9.]*\).*/\1/p' | sort -n > "$dir/load.txt"
	full=$(ls -l "$dir"/ckb/*.mfs | awk '{print $5}' | sort -n | tail -1)
	ls -l "$dir"/ckb/*.delta | awk '{print $5}' | sort -n > "$dir/delta_bytes.txt"
	items=$(sed -n 's/.*"items": \([0-9]*\).*/\1/p' "$dir/b2.json")
	pub=$(sed -n 's/.*"published": \({[^}]*}\).*/\1/p' "$dir/b2.json")
	awk -v full="$full" -v items="$items" -v pub="$pub" -v d="$delta" '
	FILENAME ~ /lag/ { lag[++n] = $1 } FILENAME ~ /load/ { load[++m] = $1 }
	FILENAME ~ /delta_bytes/ { db[++k] = $1 }
	END { printf "bench_kafka refresh items=%s dim=64 delta_every=%d refreshes=%d lag_ms median=%s max=%s load_ms median=%s max=%s\n",
	        items, d, n, lag[int((n + 1) / 2)], lag[n], load[int((m + 1) / 2)], load[m]
	      printf "bench_kafka bytes whole_snapshot=%d deltas=%d delta_bytes median=%d min=%d max=%d published=%s\n",
	        full, k, db[int((k + 1) / 2)], db[1], db[k], pub }' "$dir/lag.txt" "$dir/load.txt" "$dir/delta_bytes.txt"
fi
echo quit >&"${MOCK[1]}"
wait
