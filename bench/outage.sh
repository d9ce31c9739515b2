#!/bin/sh
# outage.sh - rows 9 and 10 of `make bench`: a relay outage and its end.
#
#   sh bench/outage.sh drain SENDMAIL BIN DIR [MESSAGES [PROCESSES]]
#   sh bench/outage.sh herd  SENDMAIL BIN DIR [SPOOLS [MESSAGES [TIMEOUT]]]
#
# BIN holds the bench helpers built by run.sh (timer, countsink); DIR is a
# scratch directory of its own. Prints one line of key=value pairs.
#
# drain: the relay is down (a loopback port nobody listens on); PROCESSES
# senders submit MESSAGES messages between them (`timer -j`), every one
# must exit 0 with its message queued. Then countsink starts on that port
# and `sendmail -q` drains the queue: rate (msg/s over the -q run),
# conns (relay connections), msgs/unique/dups (Message-IDs at the sink:
# exactly once means unique = msgs = MESSAGES, dups = 0), left (entries
# still queued).
#
# herd: SPOOLS spools (one per container: its own queue directory and
# configuration), each given MESSAGES messages while the relay is down,
# each with its own queue worker. The workers run with the default retry
# base; RELAYSHIM_TEST_OUTAGE_ROUNDS stands in for the hours of outage that
# drive the worker's backoff to its cap (it starts the worker as if that
# many passes had already found the relay down). Then the relay returns:
# peak (concurrent connections seen by the relay), all_s (seconds from the
# relay's return to the last message), msgs/unique/dups, within TIMEOUT s.
#
# Every process started here runs in a private PID namespace (unshare):
# the workers end with it.
set -u

MODE=$1 SM=$2 BIN=$3 D=$4
shift 4
mkdir -p "$D"
RCPT=rcpt@example.net
printf 'From: bench@example.com\nTo: %s\nSubject: outage\n\nhello\n' "$RCPT" >"$D/msg.txt"

port=$(/usr/bin/python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# conf DIR - a configuration queueing to DIR/spool, relay on $port
conf() {
	mkdir -p "$1/spool"
	cat >"$1/relayshim.conf" <<EOF
[relay]
host = 127.0.0.1:$port
tls = none
[queue]
mode = fallback
dir = $1/spool
[log]
target = none
[rewrite]
domain = example.com
EOF
	chmod 600 "$1/relayshim.conf"
}

# queued DIR - entries in DIR/spool (state files and locks aside)
queued() {
	find "$1/spool" -path '*/q/*' -type f ! -name '*.*' 2>/dev/null | wc -l
}

# stat_of KEY - a figure from countsink's statistics
stat_of() {
	sed -n "s/.* *$1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" "$D/stats" | head -n 1
}

case "$MODE" in
drain)
	N=${1:-10000} P=${2:-20}
	conf "$D/a"
	# Fill: the workers the submissions start die with the namespace.
	fill=$(RELAYSHIM_CONFIG=$D/a/relayshim.conf RELAYSHIM_RETRY_BASE=3600 \
		unshare --pid --fork --kill-child \
		"$BIN/timer" -n "$N" -j "$P" -i "$D/msg.txt" -e "$D/fill.err" -- "$SM" -i "$RCPT")
	fails=$(echo "$fill" | tr ' ' '\n' | sed -n 's/^fails=//p')
	q=$(queued "$D/a")
	"$BIN/countsink" "$port" "$D/stats" >/dev/null &
	sink=$!
	i=0
	while [ $i -lt 50 ] && ! ss -Hltn "sport = :$port" | grep -q .; do
		sleep 0.1
		i=$((i + 1))
	done
	t0=$(date +%s.%N)
	RELAYSHIM_CONFIG=$D/a/relayshim.conf unshare --pid --fork --kill-child \
		"$SM" -q 2>"$D/q.err"
	qrc=$?
	t1=$(date +%s.%N)
	sleep 0.1
	kill "$sink"
	wait "$sink" 2>/dev/null
	left=$(queued "$D/a")
	rate=$(awk "BEGIN { d = $t1 - $t0; printf \"%.0f\", (d > 0 ? $q / d : 0) }")
	echo "fill_fails=${fails:-?} queued=$q q_rc=$qrc drain_s=$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }") rate=$rate conns=$(stat_of conns) msgs=$(stat_of msgs) unique=$(stat_of unique) dups=$(stat_of dups) left=$left"
	[ -s "$D/q.err" ] && tail -n 1 "$D/q.err" >&2
	;;
herd)
	S=${1:-50} M=${2:-20} TMO=${3:-90}
	conf "$D/tmpl"
	sed "s|$D/tmpl|@DIR@|" "$D/tmpl/relayshim.conf" >"$D/conf.in"
	# One namespace for the whole row: the workers of the spools live in
	# it, and die when it ends. (The script is in single quotes on purpose.)
	# shellcheck disable=SC2016
	OUTAGE_PORT=$port unshare --pid --fork --kill-child sh -c '
		D=$1 S=$2 M=$3 TMO=$4 SM=$5 BIN=$6 RCPT=$7
		i=0
		while [ $i -lt "$S" ]; do
			c=$D/c$i
			mkdir -p "$c/spool"
			sed "s|@DIR@|$c|" "$D/conf.in" >"$c/relayshim.conf"
			chmod 600 "$c/relayshim.conf"
			RELAYSHIM_CONFIG=$c/relayshim.conf RELAYSHIM_TEST_OUTAGE_ROUNDS=8 \
				"$BIN/timer" -n "$M" -i "$D/msg.txt" -e "$D/fill.err" -- "$SM" -i "$RCPT" \
				>>"$D/fill.out" &
			i=$((i + 1))
			[ $((i % 10)) = 0 ] && wait
		done
		wait
		# Let every worker finish its first pass and go to sleep.
		sleep 2
		find "$D" -path "*/q/*" -type f ! -name "*.*" | wc -l >"$D/queued"
		"$BIN/countsink" "$OUTAGE_PORT" "$D/stats" >/dev/null &
		date +%s.%N >"$D/t0"
		end=$(($(date +%s) + TMO))
		want=$((S * M))
		while [ "$(date +%s)" -lt "$end" ]; do
			m=$(sed -n "s/.*msgs=\([0-9]*\).*/\1/p" "$D/stats" 2>/dev/null)
			[ "${m:-0}" -ge "$want" ] && break
			sleep 0.2
		done
		sleep 0.5
		kill $!
		wait
	' sh "$D" "$S" "$M" "$TMO" "$SM" "$BIN" "$RCPT" 2>"$D/herd.err"
	fails=$(sed -n 's/.*fails=\([0-9]*\).*/\1/p' "$D/fill.out" | awk '{ s += $1 } END { print s + 0 }')
	t0=$(cat "$D/t0")
	last=$(stat_of last)
	msgs=$(stat_of msgs)
	all_s=$(awk "BEGIN { if ($msgs >= $S * $M) printf \"%.1f\", $last - $t0; else print \"-\" }")
	echo "fill_fails=$fails queued=$(cat "$D/queued") peak=$(stat_of peak) conns=$(stat_of conns) all_s=$all_s first_s=$(awk "BEGIN { l = $(stat_of first); printf \"%.1f\", (l > 0 ? l - $t0 : -1) }") msgs=$msgs unique=$(stat_of unique) dups=$(stat_of dups) timeout=$TMO"
	;;
*)
	echo "usage: outage.sh drain|herd SENDMAIL BIN DIR ..." >&2
	exit 2
	;;
esac
