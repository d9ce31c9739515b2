#!/bin/sh
# run.sh - `make bench`: relayshim against its peers, side by side, on loopback.
#
#   BUILD=build sh bench/run.sh          (what `make bench` runs)
#   BENCH_QUICK=1 sh bench/run.sh        (fewer runs, for trying changes; ~1 min)
#
# Builds the helpers in bench/ into a scratch directory, fetches the peers
# that would provide /usr/sbin/sendmail (ssmtp, dma, esmtp, nullmailer) with
# `apt-get download` and unpacks them with `dpkg -x` into the scratch
# directory (never installed), starts Postfix's smtp-sink as the relay on a
# free loopback port, measures every row of bench/README.md and prints one
# markdown table on stdout and into bench/results.md (BENCH_OUT overrides).
# bench/README.md explains every figure. A component that does not work yet
# (no sendmail binary, no shim, no -bs, no queue, a peer that cannot be
# made to run) gives "n/a (reason)" in its cell; the table always comes out.
#
# Everything started here is recorded and killed on exit (trap); peers that
# daemonize run inside private PID namespaces (bench/nsrun.sh).

# Lists of numbers and option strings are split on purpose; cells are
# assigned through eval:
# shellcheck disable=SC2046,SC2086,SC2154
set -u

BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
SM=$ROOT/$BUILD/sendmail/sendmail
SHIM=$ROOT/$BUILD/shim/librelayshim.so
QUICK=${BENCH_QUICK:-0}
OUT=${BENCH_OUT:-$BENCH/results.md}
CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relayshim-bench}
CC=${CC:-cc}
W=$(mktemp -d /tmp/relayshim-bench.XXXXXX)
# dma drops privileges to user mail and must reach its spool in here.
chmod 755 "$W"
BIN=$W/bin
PIDS=""
TOOLS="relayshim msmtp esmtp dma ssmtp nullmailer"
RCPT=rcpt@example.net
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)

# The machine is shared (builds, other test runs): at nice -10 every process
# of the benchmark - relay, clients, peers alike - is disturbed less by them.
renice -n -10 $$ >/dev/null 2>&1 || true

if [ "$QUICK" = 1 ]; then
	ROUNDS=3 LAT_N=10 SEQ_N=100 PAR_N=200 TP_LIMIT=5 BIG_N=2 SHIM_N=30 BS_N=300 Q_N=10
	DRAIN_N=2000 HERD_S=50 HERD_M=20
else
	ROUNDS=5 LAT_N=20 SEQ_N=500 PAR_N=1000 TP_LIMIT=20 BIG_N=3 SHIM_N=100 BS_N=1000 Q_N=30
	DRAIN_N=10000 HERD_S=50 HERD_M=20
fi

note() {
	echo "bench: $*" >&2
}

# start_bg - run a command in the background and remember it for cleanup
start_bg() {
	"$@" &
	PIDS="$PIDS $!"
	LAST_PID=$!
}

# stop_bg - stop one background command started with start_bg
stop_bg() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# kv KEY LINE - value of KEY in a key=value line
kv() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# calc EXPR - floating point arithmetic
calc() {
	awk "BEGIN { printf \"%.${2:-2}f\", ($1) }"
}

# stats FILE - "median p10 p90 count" of the numbers in FILE
stats() {
	sort -g "$1" | awk '{ v[NR] = $1 }
	function q(p,   pos, lo) { pos = p * (NR - 1) + 1; lo = int(pos);
		if (lo >= NR) return v[NR]; return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]) }
	END { if (NR == 0) print "- - - 0"; else printf "%.3f %.3f %.3f %d\n", q(0.5), q(0.1), q(0.9), NR }'
}

# median_of WORDS... - median of numbers given as arguments
median_of() {
	printf '%s\n' "$@" | grep -v '^-*$' | sort -g | awk '{ v[NR] = $1 }
	END { if (NR == 0) print "-"; else if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2];
	else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# free_ports N - N free TCP ports on 127.0.0.1
free_ports() {
	/usr/bin/python3 -c '
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}

# wait_port PORT - wait up to 5 s for a listener on 127.0.0.1:PORT
wait_port() {
	i=0
	while [ $i -lt 50 ]; do
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# reason_from LOG STATUS - one short line saying why runs failed
reason_from() {
	r=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | tr -d '|\r' | cut -c1-70)
	echo "exit $2${r:+: $r}"
}

# ---------------------------------------------------------------- setup

mkdir -p "$BIN" "$W/err" "$W/cfg" "$W/pkg"
chmod 755 "$W/cfg"
# Nothing below may write into the source tree by accident.
cd "$W" || exit 1
note "scratch directory $W"
for t in timer smtpc rtproxy connloop fastsink countsink; do
	$CC -std=c11 -D_GNU_SOURCE -O2 -o "$BIN/$t" "$BENCH/$t.c" -lpthread || {
		echo "bench: cannot build bench/$t.c" >&2
		exit 1
	}
done
STATIC_OK=1
$CC -static -O2 -o "$BIN/trivial" "$BENCH/trivial.c" 2>"$W/err/static" || STATIC_OK=0
# The same do-nothing program, linked dynamically: against libc only, and
# the way the Makefile links build/sendmail/sendmail (PIE, -z relro -z now;
# libc is its only library, OpenSSL and
# SASL are dlopen'ed on use): what exec and the dynamic loader cost it
# before main() runs.
$CC -O2 -o "$BIN/trivial-libc" "$BENCH/trivial.c" 2>/dev/null
$CC -O2 -fPIE -pie -Wl,-z,relro -Wl,-z,now \
	-o "$BIN/trivial-like" "$BENCH/trivial.c" 2>/dev/null
TIMER=$BIN/timer
SMTPC=$BIN/smtpc

# Measure private copies: other work may rebuild build/ while we run, and a
# binary being rewritten cannot be exec'ed (ETXTBSY) or changes mid-table.
if [ -x "$SM" ]; then
	cp "$SM" "$BIN/sendmail" && SM=$BIN/sendmail
fi
if [ -f "$SHIM" ]; then
	cp "$SHIM" "$BIN/librelayshim.so" && SHIM=$BIN/librelayshim.so
fi

SINK_BIN=""
for p in /usr/sbin/smtp-sink /usr/lib/postfix/sbin/smtp-sink; do
	[ -x "$p" ] && SINK_BIN=$p && break
done
[ -n "$SINK_BIN" ] || {
	echo "bench: smtp-sink not found (package postfix); run make deps" >&2
	exit 1
}

# Peers: fetched once into $CACHE, unpacked per run into the scratch dir.
mkdir -p "$CACHE"
PEER_DEBS="ssmtp dma esmtp libesmtp6 nullmailer"
for p in $PEER_DEBS; do
	if ! ls "$CACHE/${p}_"*.deb >/dev/null 2>&1; then
		note "fetching $p with apt-get download"
		(cd "$CACHE" && apt-get download -o APT::Sandbox::User=root "$p") \
			>"$W/err/fetch-$p" 2>&1
	fi
	deb=$(ls "$CACHE/${p}_"*.deb 2>/dev/null | tail -n 1)
	[ -n "$deb" ] && dpkg -x "$deb" "$W/pkg/$p"
done

SINK=$(free_ports 1)
start_bg "$SINK_BIN" -u nobody "127.0.0.1:$SINK" 256
wait_port "$SINK" || {
	echo "bench: smtp-sink did not start on port $SINK" >&2
	exit 1
}
DEAD_PORT=$(free_ports 1)

printf 'From: bench@example.com\nTo: %s\nSubject: bench\n\nhello\n' "$RCPT" >"$W/msg.txt"
# 25 MiB: 76-character lines, like base64 attachments.
awk 'BEGIN { printf "From: bench@example.com\nTo: rcpt@example.net\nSubject: big\n\n";
	line = ""; for (i = 0; i < 76; i++) line = line sprintf("%c", 65 + i % 26);
	n = int(25 * 1048576 / 77); for (i = 0; i < n; i++) print line }' >"$W/big.txt"
BIG_MB=$(calc "$(wc -c <"$W/big.txt") / 1048576" 2)

# ---------------------------------------------------------------- tools

# setup_tool TOOL TAG PORT [MODE] - configure TOOL for relay port PORT.
# MODE: plain (default), tls (STARTTLS+AUTH against the Postfix fixture),
# starttls (STARTTLS without AUTH, the fixture's plain port with STARTTLS offered),
# queue (relayshim: dead relay + fallback; dma: DEFER = spool only).
# Sets CMD (argv), PRE (wrapper before the timer), ENVV (env assignments
# for the timer) or SKIP (why the tool cannot run).
setup_tool() {
	st_tool=$1 st_tag=$2 st_port=$3 st_mode=${4:-plain} st_auth="" st_noauth=""
	# tlsplain: like tls, with the SASL mechanism forced to PLAIN.
	if [ "$st_mode" = tlsplain ]; then
		st_mode=tls st_auth=PLAIN
	fi
	# starttls: like tls, without AUTH (7 round trips with TLS 1.3).
	if [ "$st_mode" = starttls ]; then
		st_mode=tls st_noauth=1
	fi
	d=$W/cfg/$st_tool-$st_tag
	mkdir -p "$d"
	chmod 755 "$d"
	CMD="" PRE="" ENVV="" SKIP=""
	case $st_tool in
	relayshim)
		[ -x "$SM" ] || {
			SKIP="$BUILD/sendmail/sendmail not built"
			return
		}
		{
			echo "[relay]"
			if [ "$st_mode" = queue ]; then
				echo "host = 127.0.0.1:$DEAD_PORT"
			else
				echo "host = 127.0.0.1:$st_port"
			fi
			if [ "$st_mode" = tls ]; then
				echo "tls = starttls"
				echo "tls_ca_file = $PF_CA"
				if [ -z "$st_noauth" ]; then
					echo "username = $PF_USER"
					echo "password = $PF_PASSWORD"
				fi
				[ -n "$st_auth" ] && echo "auth_mechanisms = $st_auth"
			else
				echo "tls = none"
			fi
			echo "[queue]"
			if [ "$st_mode" = queue ]; then
				echo "mode = fallback"
				echo "dir = $d/spool"
			else
				echo "mode = never"
			fi
			echo "[log]"
			echo "target = none"
			echo "[rewrite]"
			echo "domain = example.com"
		} >"$d/relayshim.conf"
		chmod 600 "$d/relayshim.conf"
		mkdir -p "$d/spool"
		ENVV="RELAYSHIM_CONFIG=$d/relayshim.conf"
		CMD="$SM -i $RCPT"
		# The queue worker must not outlive the benchmark.
		[ "$st_mode" = queue ] && PRE="sh $BENCH/nsrun.sh --"
		;;
	msmtp)
		command -v msmtp >/dev/null || {
			SKIP="msmtp not installed"
			return
		}
		{
			echo "account default"
			echo "host 127.0.0.1"
			echo "port $st_port"
			if [ "$st_mode" = tls ]; then
				echo "tls on"
				echo "tls_starttls on"
				echo "tls_trust_file $PF_CA"
				if [ -n "$st_noauth" ]; then
					echo "auth off"
				else
					if [ -n "$st_auth" ]; then
						echo "auth plain"
					else
						echo "auth on"
					fi
					echo "user $PF_USER"
					echo "password $PF_PASSWORD"
				fi
			else
				echo "tls off"
				echo "auth off"
			fi
			echo "from bench@example.com"
			echo "syslog off"
		} >"$d/msmtprc"
		chmod 600 "$d/msmtprc"
		[ "$st_mode" = queue ] && SKIP="no queue"
		CMD="$(command -v msmtp) -C $d/msmtprc -i $RCPT"
		;;
	ssmtp)
		b=$W/pkg/ssmtp/usr/sbin/ssmtp
		[ -x "$b" ] || {
			SKIP="ssmtp package not fetched"
			return
		}
		{
			echo "mailhub=127.0.0.1:$st_port"
			echo "rewriteDomain=example.com"
			echo "hostname=bench.example.com"
			echo "FromLineOverride=YES"
			if [ "$st_mode" = tls ]; then
				echo "UseSTARTTLS=YES"
				echo "AuthUser=$PF_USER"
				echo "AuthPass=$PF_PASSWORD"
			fi
		} >"$d/ssmtp.conf"
		[ "$st_mode" = queue ] && SKIP="no queue"
		CMD="$b -C $d/ssmtp.conf -i $RCPT"
		;;
	esmtp)
		b=$W/pkg/esmtp/usr/bin/esmtp
		lib=$W/pkg/libesmtp6/usr/lib/x86_64-linux-gnu
		if [ ! -x "$b" ] || [ ! -d "$lib" ]; then
			SKIP="esmtp/libesmtp6 packages not fetched"
			return
		fi
		if [ "$st_mode" = tls ]; then
			# libESMTP trusts $HOME/.config/libesmtp/ca.pem and verifies the
			# DNS name (the certificate has DNS:localhost); its SASL plugins
			# are looked up in a compiled-in directory, hence the overlay.
			mkdir -p "$d/home/.config/libesmtp"
			cp "$PF_CA" "$d/home/.config/libesmtp/ca.pem"
			chmod 700 "$d/home/.config/libesmtp"
			chmod 600 "$d/home/.config/libesmtp/ca.pem"
			{
				echo "hostname=localhost:$st_port"
				echo "username=$PF_USER"
				echo "password=$PF_PASSWORD"
				echo "starttls=required"
			} >"$d/esmtprc"
			ENVV="HOME=$d/home"
			PRE="sh $BENCH/nsrun.sh -o /usr/lib/x86_64-linux-gnu=$lib --"
		else
			echo "hostname=127.0.0.1:$st_port" >"$d/esmtprc"
			ENVV="LD_LIBRARY_PATH=$lib"
		fi
		chmod 600 "$d/esmtprc"
		[ "$st_mode" = queue ] && SKIP="no queue"
		CMD="$b -C $d/esmtprc -f bench@example.com -i $RCPT"
		;;
	dma)
		b=$W/pkg/dma/usr/sbin/dma
		[ -x "$b" ] || {
			SKIP="dma package not fetched"
			return
		}
		# dma reads only /etc/dma/dma.conf: overlay /etc in a private
		# mount namespace; it drops privileges to user mail for the spool.
		mkdir -p "$d/etc/dma" "$d/spool"
		chown mail:mail "$d/spool" 2>/dev/null
		{
			echo "SMARTHOST 127.0.0.1"
			echo "PORT $st_port"
			echo "SPOOLDIR $d/spool"
			echo "MAILNAME example.com"
			echo "NULLCLIENT"
			if [ "$st_mode" = tls ]; then
				echo "SECURETRANSFER"
				echo "STARTTLS"
				echo "AUTHPATH /etc/dma/auth.conf"
			fi
			[ "$st_mode" = queue ] && echo "DEFER"
		} >"$d/etc/dma/dma.conf"
		if [ "$st_mode" = tls ]; then
			echo "$PF_USER|127.0.0.1:$PF_PASSWORD" >"$d/etc/dma/auth.conf"
		else
			: >"$d/etc/dma/auth.conf"
		fi
		if [ "$st_mode" = queue ]; then
			PRE="sh $BENCH/nsrun.sh -o /etc=$d/etc --"
		else
			PRE="sh $BENCH/nsrun.sh -o /etc=$d/etc -s $d/spool --"
		fi
		CMD="$b -f bench@example.com -i $RCPT"
		;;
	nullmailer)
		p=$W/pkg/nullmailer
		[ -x "$p/usr/sbin/sendmail" ] || {
			SKIP="nullmailer package not fetched"
			return
		}
		case $st_tag in
		rt*)
			SKIP="only spools; nullmailer-send, its daemon, delivers"
			return
			;;
		esac
		# sendmail -> /usr/bin/nullmailer-inject -> setuid-mail
		# /usr/sbin/nullmailer-queue -> /var/spool/nullmailer, all
		# compiled-in paths: overlays plus a bind-mounted scratch spool.
		# The trigger FIFO has no reader (no daemon), so it only spools.
		mkdir -p "$d/etc/nullmailer" "$d/varspool/nullmailer" "$d/spool/tmp" \
			"$d/spool/queue" "$d/spool/failed"
		echo bench.example.com >"$d/etc/mailname"
		echo bench.example.com >"$d/etc/nullmailer/me"
		echo example.com >"$d/etc/nullmailer/defaultdomain"
		echo "127.0.0.1 smtp --port=$st_port" >"$d/etc/nullmailer/remotes"
		[ -p "$d/spool/trigger" ] || mkfifo "$d/spool/trigger"
		chown -R mail:mail "$d/spool" 2>/dev/null
		PRE="sh $BENCH/nsrun.sh -o /usr/bin=$p/usr/bin -o /usr/sbin=$p/usr/sbin"
		PRE="$PRE -o /etc=$d/etc -o /var/spool=$d/varspool -b /var/spool/nullmailer=$d/spool --"
		CMD="/usr/sbin/sendmail -f bench@example.com -i $RCPT"
		;;
	esac
}

# time_tool TOOL TAG OPTS... - run the timer for the configured tool;
# prints its key=value line (or "SKIP reason").
time_tool() {
	tt_tool=$1 tt_tag=$2
	shift 2
	if [ -n "$SKIP" ]; then
		echo "SKIP $SKIP"
		return
	fi
	# shellcheck disable=SC2086
	env $ENVV $PRE "$TIMER" -e "$W/err/$tt_tool-$tt_tag.log" "$@" -- $CMD
}

# cell_or_reason LINE LOG - "" when LINE is a successful measurement,
# otherwise the reason to print
cell_or_reason() {
	case "$1" in
	SKIP*)
		echo "${1#SKIP }"
		return
		;;
	"")
		echo "no output"
		return
		;;
	esac
	runs=$(kv runs "$1")
	fails=$(kv fails "$1")
	if [ "${runs:-0}" = 0 ] || [ "$fails" = "$runs" ]; then
		reason_from "$2" "$(kv status "$1")"
	elif [ "$fails" != 0 ]; then
		echo "PARTIAL $fails/$runs failed, $(reason_from "$2" "$(kv status "$1")")"
	fi
}

# ---------------------------------------------------------------- row 1+2: floor and latency

note "rows 1-2: floor and one-message latency, $ROUNDS rounds"
for t in $TOOLS; do
	eval "LAT_OK_$t=1"
	: >"$W/lat-$t"
done
: >"$W/lat-floor"
: >"$W/exec-floor"
: >"$W/sess-floor"
for t in $TOOLS; do
	setup_tool "$t" plain "$SINK"
	eval "LAT_SKIP_$t=\$SKIP"
done
r=1
while [ $r -le $ROUNDS ]; do
	if [ $STATIC_OK = 1 ]; then
		line=$("$SMTPC" session -n "$LAT_N" -w 3 -x "$BIN/trivial" -o "$W/lat-floor" 127.0.0.1 "$SINK")
		eval "FLOOR_R$r=$(kv med_ms "$line")"
		kv exec_med_ms "$line" >>"$W/exec-floor"
		kv session_med_ms "$line" >>"$W/sess-floor"
	fi
	for b in trivial trivial-libc trivial-like; do
		[ -x "$BIN/$b" ] && "$TIMER" -n "$LAT_N" -w 2 -o "$W/exec-$b" -- "$BIN/$b" >/dev/null
	done
	for t in $TOOLS; do
		setup_tool "$t" plain "$SINK"
		n=$LAT_N
		[ "$t" = ssmtp ] && n=2
		line=$(time_tool "$t" lat -n "$n" -w 1 -T 3 -i "$W/msg.txt" -o "$W/lat-$t")
		why=$(cell_or_reason "$line" "$W/err/$t-lat.log")
		case "$why" in
		"" | PARTIAL*) eval "LAT_R${r}_$t=$(kv med_ms "$line")" ;;
		*)
			eval "LAT_OK_$t=0"
			eval "LAT_WHY_$t=\$why"
			;;
		esac
		[ -n "$why" ] && eval "LAT_NOTE_$t=\$why"
	done
	r=$((r + 1))
done

if [ $STATIC_OK = 1 ]; then
	set -- $(stats "$W/lat-floor")
	FLOOR_MED=$1
	CELL_FLOOR_LAT="$(calc "$1" 3) ms ($(calc "$2" 3)–$(calc "$3" 3))"
	CELL_FLOOR_PARTS="exec $(median_of $(cat "$W/exec-floor")) + session $(median_of $(cat "$W/sess-floor")) ms"
else
	FLOOR_MED=""
	CELL_FLOOR_LAT="n/a (gcc -static failed: $(tail -n 1 "$W/err/static" | cut -c1-50))"
	CELL_FLOOR_PARTS=""
fi

# exec_cell NAME - median exec time of one of the do-nothing programs
exec_cell() {
	if [ -s "$W/exec-$1" ]; then
		set -- $(stats "$W/exec-$1")
		echo "$(calc "$1" 3) ms ($(calc "$2" 3)–$(calc "$3" 3))"
	else
		echo "n/a (could not build it)"
	fi
}
CELL_EXEC_STATIC=$(exec_cell trivial)
CELL_EXEC_LIBC=$(exec_cell trivial-libc)
CELL_EXEC_LIBS=$(exec_cell trivial-like)

for t in $TOOLS; do
	eval "ok=\$LAT_OK_$t"
	if [ "$ok" = 1 ]; then
		set -- $(stats "$W/lat-$t")
		eval "LAT_MED_$t=$1"
		cell="$(calc "$1" 2) ms ($(calc "$2" 2)–$(calc "$3" 2))"
		eval "nt=\${LAT_NOTE_$t:-}"
		[ -n "$nt" ] && cell="$cell [$nt]"
		eval "CELL_LAT_$t=\$cell"
	else
		eval "why=\${LAT_WHY_$t:-}"
		eval "LAT_MED_$t="
		eval "CELL_LAT_$t=\"n/a (\$why)\""
	fi
done

# What those two measure is not a delivery: say so in their cells.
for t in dma nullmailer; do
	eval "c=\${CELL_LAT_$t:-}"
	case "$c" in n/a* | "") ;; *) eval "CELL_LAT_$t=\"\$c [spools]\"" ;; esac
done

# Ratios pair by pair: per round, tool median / relayshim median (and /
# floor median), then the median over rounds.
for t in $TOOLS; do
	rr="" rf=""
	r=1
	while [ $r -le $ROUNDS ]; do
		eval "a=\${LAT_R${r}_$t:-}"
		eval "b=\${LAT_R${r}_relayshim:-}"
		eval "f=\${FLOOR_R$r:-}"
		[ -n "$a" ] && [ -n "$b" ] && rr="$rr $(calc "$a / $b" 3)"
		[ -n "$a" ] && [ -n "$f" ] && rf="$rf $(calc "$a / $f" 3)"
		r=$((r + 1))
	done
	eval "ok=\$LAT_OK_$t"
	if [ "$ok" = 1 ] && [ -n "$rr" ]; then
		eval "CELL_RRS_$t=\"$(calc "$(median_of $rr)" 2)×\""
	else
		eval "CELL_RRS_$t=—"
	fi
	if [ "$ok" = 1 ] && [ -n "$rf" ]; then
		eval "RF_$t=$(median_of $rf)"
		eval "CELL_RFL_$t=\"$(calc "$(median_of $rf)" 2)×\""
	else
		eval "RF_$t="
		eval "CELL_RFL_$t=—"
	fi
done

# ---------------------------------------------------------------- row 3: throughput

note "row 3: throughput, $SEQ_N sequential and $PAR_N 8-way parallel (each capped at ${TP_LIMIT}s)"
for t in $TOOLS; do
	setup_tool "$t" plain "$SINK"
	for kind in seq par; do
		if [ $kind = seq ]; then
			line=$(time_tool "$t" $kind -n "$SEQ_N" -w 2 -T "$TP_LIMIT" -i "$W/msg.txt")
			want=$SEQ_N
		else
			line=$(time_tool "$t" $kind -n "$PAR_N" -j 8 -w 2 -T "$TP_LIMIT" -i "$W/msg.txt")
			want=$PAR_N
		fi
		why=$(cell_or_reason "$line" "$W/err/$t-$kind.log")
		case "$why" in
		"" | PARTIAL*)
			rate=$(kv rate "$line")
			runs=$(kv runs "$line")
			eval "TP_${kind}_$t=$rate"
			cell="$(calc "$rate" 0) msg/s"
			[ "$runs" != "$want" ] && cell="$cell (n=$runs)"
			[ -n "$why" ] && cell="$cell [$why]"
			;;
		*)
			eval "TP_${kind}_$t="
			cell="n/a ($why)"
			;;
		esac
		eval "CELL_TP_${kind}_$t=\$cell"
	done
done

# ---------------------------------------------------------------- row 4: round trips

# rtt_row TAG UPSTREAM MODE [TOOLS] - per tool: 3 messages through the counting
# proxy (1 ms return latency) in front of UPSTREAM; cell = median rt.
rtt_row() {
	rt_tag=$1 rt_up=$2 rt_mode=$3
	for t in ${4:-$TOOLS}; do
		rt_port=$(free_ports 1)
		log=$W/rt-$rt_tag-$t.log
		: >"$log"
		start_bg "$BIN/rtproxy" -d 1000 "$rt_port" 127.0.0.1 "$rt_up" "$log" >/dev/null
		ppid=$LAST_PID
		wait_port "$rt_port"
		setup_tool "$t" "rt$rt_tag" "$rt_port" "$rt_mode"
		line=$(time_tool "$t" "rt$rt_tag" -n 3 -T 5 -i "$W/msg.txt")
		sleep 0.3
		stop_bg "$ppid"
		why=$(cell_or_reason "$line" "$W/err/$t-rt$rt_tag.log")
		case "$why" in
		"" | PARTIAL*)
			sed -n 's/^conn=.* rt=\([0-9]*\) .*/\1/p' "$log" >"$log.n"
			set -- $(stats "$log.n")
			if [ "$4" = 0 ]; then
				cell="n/a (no connection seen)"
				eval "RT_${rt_tag}_$t="
			else
				lo=$(sort -n "$log.n" | head -n 1)
				hi=$(sort -n "$log.n" | tail -n 1)
				cell=$(calc "$1" 0)
				[ "$lo" != "$hi" ] && cell="$cell ($lo–$hi)"
				eval "RT_${rt_tag}_$t=$(calc "$1" 0)"
			fi
			[ -n "$why" ] && cell="$cell [$why]"
			;;
		*)
			cell="n/a ($why)"
			eval "RT_${rt_tag}_$t="
			;;
		esac
		eval "CELL_RT_${rt_tag}_$t=\$cell"
	done
}

note "row 4: SMTP round trips (plain)"
rtt_row plain "$SINK" plain

note "row 4: SMTP round trips (STARTTLS+AUTH, Postfix fixture)"
PF_ERROR=""
if [ -f "$ROOT/tests/harness/postfix.py" ]; then
	start_bg env PYTHONPATH="$ROOT/tests" /usr/bin/python3 "$BENCH/postfix_relay.py" "$W/pf.info"
	PF_PID=$LAST_PID
	i=0
	while [ $i -lt 300 ] && [ ! -f "$W/pf.info" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ -f "$W/pf.info" ]; then
		. "$W/pf.info"
	else
		PF_ERROR="Postfix fixture did not start in 30 s"
	fi
	if [ -z "$PF_ERROR" ]; then
		rtt_row tls "$PF_SUBMISSION" tls
		rtt_row tlsplain "$PF_SUBMISSION" tlsplain "relayshim msmtp"
		rtt_row starttls "$PF_PLAIN" starttls "relayshim msmtp"
	fi
	stop_bg "$PF_PID"
else
	PF_ERROR="tests/harness/postfix.py missing"
fi
if [ -n "$PF_ERROR" ]; then
	for t in $TOOLS; do
		eval "CELL_RT_tls_$t=\"n/a (\$PF_ERROR)\""
		eval "CELL_RT_tlsplain_$t=\"n/a (\$PF_ERROR)\""
		eval "CELL_RT_starttls_$t=\"n/a (\$PF_ERROR)\""
		eval "RT_tls_$t="
	done
fi

# ---------------------------------------------------------------- row 5: 25 MB

# big_row SUFFIX PORT - the big message to the relay on PORT, every tool;
# cells CELL_BIG<SUFFIX>_<tool>, CELL_RSS<SUFFIX>_<tool>, CELL_BIG<SUFFIX>_FLOOR
big_row() {
	bg_sfx=$1 bg_port=$2
	for t in $TOOLS; do
		setup_tool "$t" "big$bg_sfx" "$bg_port"
		line=$(time_tool "$t" "big$bg_sfx" -n "$BIG_N" -w 1 -T 30 -i "$W/big.txt")
		why=$(cell_or_reason "$line" "$W/err/$t-big$bg_sfx.log")
		case "$why" in
		"" | PARTIAL*)
			med=$(kv med_ms "$line")
			rss=$(kv rss_max_kb "$line")
			mbs=$(calc "$BIG_MB / ($med / 1000)" 0)
			eval "BIG_MBS${bg_sfx}_$t=$mbs"
			eval "BIG_RSS${bg_sfx}_$t=$rss"
			cell="$mbs MB/s ($(calc "$med" 0) ms)"
			[ -n "$why" ] && cell="$cell [$why]"
			case $t in dma | nullmailer) cell="$cell spool only" ;; esac
			eval "CELL_BIG${bg_sfx}_$t=\$cell"
			eval "CELL_RSS${bg_sfx}_$t=\"$(calc "$rss / 1024" 1) MB\""
			;;
		*)
			eval "BIG_MBS${bg_sfx}_$t= BIG_RSS${bg_sfx}_$t="
			eval "CELL_BIG${bg_sfx}_$t=\"n/a (\$why)\""
			eval "CELL_RSS${bg_sfx}_$t=—"
			;;
		esac
	done
	# The ceiling: the same message from a client that has it ready in
	# memory (smtpc -m): what this relay and loopback take on this machine.
	line=$("$SMTPC" session -n "$BIG_N" -w 1 -m "$W/big.txt" 127.0.0.1 "$bg_port")
	med=$(kv med_ms "$line")
	if [ -n "$med" ] && [ "$(kv fails "$line")" = 0 ]; then
		eval "BIG_CEIL$bg_sfx=$(calc "$BIG_MB / ($med / 1000)" 0)"
		eval "CELL_BIG${bg_sfx}_FLOOR=\"ceiling $(calc "$BIG_MB / ($med / 1000)" 0) MB/s ($(calc "$med" 0) ms)\""
	else
		eval "BIG_CEIL$bg_sfx="
		eval "CELL_BIG${bg_sfx}_FLOOR=\"n/a (smtpc -m failed)\""
	fi
}

note "row 5: a ${BIG_MB} MB message (smtp-sink)"
big_row "" "$SINK"

# smtp-sink reads DATA record by record and is slower than the target;
# bench/fastsink.c discards DATA with 256 KB reads, so the clients' own
# speed shows.
note "row 5: a ${BIG_MB} MB message (fastsink)"
FAST=$(free_ports 1)
start_bg "$BIN/fastsink" "$FAST" >/dev/null
FAST_PID=$LAST_PID
if wait_port "$FAST"; then
	big_row _fast "$FAST"
else
	for t in $TOOLS; do
		eval "CELL_BIG_fast_$t=\"n/a (fastsink did not start)\""
	done
	CELL_BIG_fast_FLOOR="n/a"
fi
stop_bg "$FAST_PID"

# ---------------------------------------------------------------- row 6: the shim

note "row 6: the shim"
SHIM_NS="" SHIM_SESS=""
CELL_SHIM_NS="n/a ($BUILD/shim/librelayshim.so not built)"
CELL_SHIM_SESS=$CELL_SHIM_NS
CELL_DIRECT_SESS="—"
CELL_SHIM_FIRST="n/a" CELL_SHIM_NOSPARE="n/a"
if [ -f "$SHIM" ] && [ -x "$SM" ]; then
	setup_tool relayshim shim "$SINK"
	base="" with="" errno_ok=1
	for i in 1 2 3; do
		l1=$("$BIN/connloop" 2000000 5)
		l2=$(env LD_PRELOAD="$SHIM" RELAYSHIM_SENDMAIL="$SM" $ENVV "$BIN/connloop" 2000000 5 2>"$W/err/shim-loop.log")
		base="$base $(kv ns_min "$l1")"
		with="$with $(kv ns_min "$l2")"
		[ "$(kv errno_ok "$l2")" = 1 ] || errno_ok=0
	done
	b=$(median_of $base)
	w=$(median_of $with)
	if [ "$w" = - ]; then
		CELL_SHIM_NS="n/a (connect loop under the shim failed: $(tail -n 1 "$W/err/shim-loop.log" | cut -c1-60))"
	else
		SHIM_NS=$(calc "$w - $b" 1)
		CELL_SHIM_NS="$(awk "BEGIN { printf \"%+.1f\", $SHIM_NS }") ns ($(calc "$b" 0) → $(calc "$w" 0) ns/call)"
		# Below zero is noise: the shim cannot make the kernel faster.
		[ "$(calc "$SHIM_NS < 0" 0)" = 1 ] && CELL_SHIM_NS="$CELL_SHIM_NS [noise: ≈ 0]"
		[ $errno_ok = 1 ] || CELL_SHIM_NS="$CELL_SHIM_NS [errno changed!]"
	fi
	ld=$("$SMTPC" session -q -n "$SHIM_N" -w 5 127.0.0.1 "$SINK")
	ls=$(env LD_PRELOAD="$SHIM" RELAYSHIM_SENDMAIL="$SM" $ENVV "$SMTPC" session -q -n "$SHIM_N" -w 5 127.0.0.1 25 2>"$W/err/shim-sess.log")
	dmed=$(kv med_ms "$ld")
	smed=$(kv med_ms "$ls")
	CELL_DIRECT_SESS="$(calc "$dmed" 3) ms ($(calc "$(kv p10_ms "$ld")" 3)–$(calc "$(kv p90_ms "$ld")" 3))"
	sfails=$(kv fails "$ls")
	if [ -z "$smed" ] || [ "$sfails" = "$SHIM_N" ]; then
		CELL_SHIM_SESS="n/a (session through the shim failed: $(tail -n 1 "$W/err/shim-sess.log" | tr -d '|' | cut -c1-60))"
	else
		SHIM_SESS=$(calc "$smed - $dmed" 3)
		CELL_SHIM_SESS="$(calc "$smed" 3) ms ($(calc "$(kv p10_ms "$ls")" 3)–$(calc "$(kv p90_ms "$ls")" 3)), +$SHIM_SESS ms"
		[ "$sfails" != 0 ] && CELL_SHIM_SESS="$CELL_SHIM_SESS [$sfails/$SHIM_N failed: $(tail -n 1 "$W/err/shim-sess.log" | tr -d '|' | cut -c1-60)]"
	fi
	# The sessions above after the first two (warm-ups) are served by the
	# process's spare helper. Also shown: a process's first session, whose
	# helper is started for it, and every session starting its helper.
	first=""
	for i in $(seq 20); do
		l=$(env LD_PRELOAD="$SHIM" RELAYSHIM_SENDMAIL="$SM" $ENVV "$SMTPC" session -q -n 1 -w 0 127.0.0.1 25 2>>"$W/err/shim-first.log")
		first="$first $(kv med_ms "$l")"
	done
	f=$(median_of $first)
	[ "$f" != - ] && CELL_SHIM_FIRST="$(calc "$f" 3) ms (median of 20 processes)"
	lo=$(env RELAYSHIM_SPARE=0 LD_PRELOAD="$SHIM" RELAYSHIM_SENDMAIL="$SM" $ENVV "$SMTPC" session -q -n "$SHIM_N" -w 5 127.0.0.1 25 2>"$W/err/shim-nospare.log")
	[ -n "$(kv med_ms "$lo")" ] && CELL_SHIM_NOSPARE="$(calc "$(kv med_ms "$lo")" 3) ms ($(calc "$(kv p10_ms "$lo")" 3)–$(calc "$(kv p90_ms "$lo")" 3))"
elif [ ! -x "$SM" ]; then
	CELL_SHIM_NS="n/a ($BUILD/sendmail/sendmail not built)"
	CELL_SHIM_SESS=$CELL_SHIM_NS
fi

# ---------------------------------------------------------------- row 7: -bs

note "row 7: one -bs session with $BS_N messages"
BS_RATE="" BS_CONNS=""
CELL_BS="n/a ($BUILD/sendmail/sendmail not built)"
CELL_BS_CONNS="—"
if [ -x "$SM" ]; then
	setup_tool relayshim bs "$SINK"
	rates=""
	for i in 1 2 3; do
		line=$(env $ENVV "$SMTPC" bs -n "$BS_N" -- "$SM" -bs 2>"$W/err/bs.log")
		[ "$(kv ok "$line")" = "$BS_N" ] && rates="$rates $(kv rate "$line")"
	done
	if [ -n "$rates" ]; then
		BS_RATE=$(median_of $rates)
		CELL_BS="$(calc "$BS_RATE" 0) msg/s (median of $(echo $rates | wc -w))"
		port=$(free_ports 1)
		start_bg "$BIN/rtproxy" "$port" 127.0.0.1 "$SINK" "$W/bs-conn.log" >/dev/null
		ppid=$LAST_PID
		wait_port "$port"
		setup_tool relayshim bsproxy "$port"
		env $ENVV "$SMTPC" bs -n "$BS_N" -- "$SM" -bs >/dev/null 2>&1
		sleep 0.3
		stop_bg "$ppid"
		BS_CONNS=$(grep -c '^conn=' "$W/bs-conn.log")
		CELL_BS_CONNS="$BS_CONNS"
	else
		CELL_BS="n/a (-bs: $(grep -v '^$' "$W/err/bs.log" | tail -n 1 | cut -c1-60))"
	fi
fi

# ---------------------------------------------------------------- row 8: queue

note "row 8: time to queue one message"
for t in relayshim dma nullmailer; do
	setup_tool "$t" queue "$SINK" queue
	line=$(time_tool "$t" queue -n "$Q_N" -w 1 -T 20 -i "$W/msg.txt")
	why=$(cell_or_reason "$line" "$W/err/$t-queue.log")
	case "$why" in
	"" | PARTIAL*)
		eval "Q_MED_$t=$(kv med_ms "$line")"
		cell="$(calc "$(kv med_ms "$line")" 2) ms ($(calc "$(kv p10_ms "$line")" 2)–$(calc "$(kv p90_ms "$line")" 2))"
		files=$(find "$W/cfg/$t-queue/spool" -type f ! -name lock 2>/dev/null | wc -l)
		[ "$files" = 0 ] && cell="$cell [nothing in the spool!]"
		[ -n "$why" ] && cell="$cell [$why]"
		eval "CELL_Q_$t=\$cell"
		;;
	*)
		eval "Q_MED_$t="
		eval "CELL_Q_$t=\"n/a (\$why)\""
		;;
	esac
done

# ---------------------------------------------------------------- rows 9-10: an outage

# Rows 9 and 10 load the machine themselves (20 submitters, then 50 workers):
# whether other work disturbed the latency rows is judged before them.
LOAD_LAT=$(cut -d' ' -f1 /proc/loadavg)

note "row 9: $DRAIN_N messages queued by 20 processes during an outage, then sendmail -q"
DRAIN_RATE="" DRAIN_ONCE=0
CELL_DRAIN="n/a ($BUILD/sendmail/sendmail not built)"
CELL_DRAIN_CONNS="—"
if [ -x "$SM" ]; then
	line=$(sh "$BENCH/outage.sh" drain "$SM" "$BIN" "$W/drain" "$DRAIN_N" 20 2>"$W/err/drain.log")
	if [ "$(kv queued "$line")" = "$DRAIN_N" ] && [ "$(kv fill_fails "$line")" = 0 ]; then
		DRAIN_RATE=$(kv rate "$line")
		[ "$(kv unique "$line")" = "$DRAIN_N" ] && [ "$(kv msgs "$line")" = "$DRAIN_N" ] &&
			[ "$(kv dups "$line")" = 0 ] && [ "$(kv left "$line")" = 0 ] && DRAIN_ONCE=1
		CELL_DRAIN="$DRAIN_RATE msg/s ($(kv drain_s "$line") s); $(kv unique "$line") distinct Message-IDs of $(kv msgs "$line") messages, $(kv left "$line") left"
		[ "$DRAIN_ONCE" = 1 ] && CELL_DRAIN="$CELL_DRAIN: exactly once" || CELL_DRAIN="$CELL_DRAIN [not exactly once!]"
		CELL_DRAIN_CONNS=$(kv conns "$line")
	else
		CELL_DRAIN="n/a (queueing failed: $(kv fill_fails "$line") failed, $(kv queued "$line") queued)"
	fi
fi

note "row 10: $HERD_S spools of $HERD_M messages, relay back after an outage at the backoff cap (up to 90 s)"
HERD_PEAK="" HERD_ALL=""
CELL_HERD="n/a ($BUILD/sendmail/sendmail not built)"
CELL_HERD_ALL="—"
if [ -x "$SM" ]; then
	line=$(sh "$BENCH/outage.sh" herd "$SM" "$BIN" "$W/herd" "$HERD_S" "$HERD_M" 90 2>"$W/err/herd.log")
	want=$((HERD_S * HERD_M))
	if [ "$(kv queued "$line")" = "$want" ] && [ "$(kv fill_fails "$line")" = 0 ]; then
		HERD_PEAK=$(kv peak "$line")
		CELL_HERD="$HERD_PEAK ($(kv conns "$line") connections in all)"
		if [ "$(kv all_s "$line")" != - ]; then
			HERD_ALL=$(kv all_s "$line")
			CELL_HERD_ALL="$HERD_ALL s (first after $(kv first_s "$line") s); $(kv unique "$line") distinct of $(kv msgs "$line")"
			[ "$(kv unique "$line")" = "$want" ] && [ "$(kv dups "$line")" = 0 ] &&
				CELL_HERD_ALL="$CELL_HERD_ALL: exactly once" || CELL_HERD_ALL="$CELL_HERD_ALL [not exactly once!]"
		else
			CELL_HERD_ALL="not within 90 s: $(kv msgs "$line") of $want delivered"
		fi
	else
		CELL_HERD="n/a (queueing failed: $(kv fill_fails "$line") failed, $(kv queued "$line") queued)"
	fi
fi

# ---------------------------------------------------------------- targets

# verdict COND - "met" / "not met" / "n/a" from an awk condition over numbers
verdict() {
	case "$1" in
	*NA*) echo "n/a" ;;
	*) awk "BEGIN { print (($1) ? \"met\" : \"**not met**\") }" ;;
	esac
}
nz() {
	if [ -n "$1" ] && [ "$1" != - ]; then
		echo "$1"
	else
		echo NA
	fi
}

rs_lat=$(nz "${LAT_MED_relayshim:-}")
fl=$(nz "$FLOOR_MED")
best_lat=NA best_seq=NA best_par=NA
for t in msmtp esmtp dma ssmtp nullmailer; do
	eval "v=\${LAT_MED_$t:-}"
	[ -n "$v" ] && { [ "$best_lat" = NA ] || [ "$(calc "$v < $best_lat" 0)" = 1 ]; } && best_lat=$v
	eval "v=\${TP_seq_$t:-}"
	[ -n "$v" ] && { [ "$best_seq" = NA ] || [ "$(calc "$v > $best_seq" 0)" = 1 ]; } && best_seq=$v
	eval "v=\${TP_par_$t:-}"
	[ -n "$v" ] && { [ "$best_par" = NA ] || [ "$(calc "$v > $best_par" 0)" = 1 ]; } && best_par=$v
done
if [ "$rs_lat" = NA ] || [ "$fl" = NA ]; then
	V_LAT=n/a
elif [ "$best_lat" = NA ]; then
	V_LAT=$(verdict "$rs_lat <= 1.5 * $fl")
else
	V_LAT=$(verdict "$rs_lat <= 1.5 * $fl && $rs_lat < $best_lat")
fi
V_SEQ=$(verdict "$(nz "${TP_seq_relayshim:-}") >= 1.5 * $best_seq")
V_PAR=$(verdict "$(nz "${TP_par_relayshim:-}") >= 1.5 * $best_par")
V_RTP=$(verdict "$(nz "${RT_plain_relayshim:-}") <= 4")
V_RTT=$(verdict "$(nz "${RT_tls_relayshim:-}") <= 7")
V_RTTP=$(verdict "$(nz "${RT_tlsplain_relayshim:-}") <= 7")
V_RTTS=$(verdict "$(nz "${RT_starttls_relayshim:-}") <= 7")
V_MBS=$(verdict "$(nz "${BIG_MBS_relayshim:-}") >= 300")
V_MBS_fast=$(verdict "$(nz "${BIG_MBS_fast_relayshim:-}") >= 300")
# Against smtp-sink the target is out of reach when the sink itself is slower.
if [ -n "${BIG_CEIL:-}" ] && [ "$(calc "$BIG_CEIL < 300" 0)" = 1 ] && [ "$V_MBS" != met ]; then
	V_MBS="$V_MBS (smtp-sink's ceiling is below 300)"
fi
V_RSS=$(verdict "$(nz "${BIG_RSS_relayshim:-}") <= 4096")
V_SNS=$(verdict "$(nz "$SHIM_NS") <= 100")
V_SSS=$(verdict "$(nz "$SHIM_SESS") <= 2")
V_BS=$(verdict "$(nz "$BS_RATE") >= 2000 && $(nz "$BS_CONNS") == 1")
V_Q=$(verdict "$(nz "${Q_MED_relayshim:-}") <= $(nz "${Q_MED_dma:-}")")
V_DRAIN=$(verdict "$(nz "$DRAIN_RATE") >= 3000 && $DRAIN_ONCE == 1")
V_HERD=$(verdict "$(nz "$HERD_PEAK") <= 10 && $(nz "$HERD_ALL") <= 60")

# ---------------------------------------------------------------- table

row() {
	# row NUM FIGURE FLOOR CELLPREFIX TARGET VERDICT
	num=$1 fig=$2 floor=$3 pre=$4 target=$5 v=$6
	line="| $num | $fig | $floor"
	for t in $TOOLS; do
		if [ -n "$pre" ]; then
			eval "c=\${${pre}_$t:-—}"
		else
			c="—"
		fi
		line="$line | $c"
	done
	echo "$line | $target | $v |"
}

{
	echo "# relayshim benchmark"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), Linux $(uname -r)."
	echo "Relay: Postfix smtp-sink on 127.0.0.1 (PIPELINING). Medians with p10–p90 in parentheses;"
	echo "ratios pair by pair within the same round, median over $ROUNDS rounds. See bench/README.md."
	[ "$QUICK" = 1 ] && echo "**BENCH_QUICK=1: reduced run counts.**"
	load_end=$(cut -d' ' -f1 /proc/loadavg)
	echo "Load average (1 min) at start $LOAD_START, after row 8 $LOAD_LAT, at end $load_end (rows 9 and 10 raise it themselves)."
	if [ "$(calc "$LOAD_START > 1.5 || $LOAD_LAT > 2.5" 0)" = 1 ]; then
		echo "**The machine was busy with other work during this run: latencies and their"
		echo "ratios are disturbed (a process that has to wait for a CPU loses a scheduler tick),"
		echo "so the latency verdicts are not reliable; the round-trip counts, RSS and the -bs"
		echo "connection count are unaffected. Re-run on an idle machine.**"
	fi
	echo
	echo "| # | figure | floor | relayshim | msmtp | esmtp | dma | ssmtp | nullmailer | target | relayshim |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	row 1 "floor: exec static + 1 SMTP session" "$CELL_FLOOR_LAT" "" "—" "—"
	row 1 "floor, parts (median of the $ROUNDS round medians)" "$CELL_FLOOR_PARTS" "" "—" "—"
	row 1 "exec of a do-nothing program: static" "$CELL_EXEC_STATIC" "" "—" "—"
	row 1 "… dynamic, libc only" "$CELL_EXEC_LIBC" "" "—" "—"
	row 1 "… dynamic, linked like relayshim (libc only; PIE, relro, now)" "$CELL_EXEC_LIBS" "" "—" "—"
	row 2 "latency, 1 small message" "$CELL_FLOOR_LAT" CELL_LAT "≤ 1.5× floor, < every peer" "$V_LAT"
	row 2 "ratio to relayshim" "—" CELL_RRS "—" "—"
	row 2 "ratio to floor" "1×" CELL_RFL "≤ 1.5×" "$V_LAT"
	row 3 "sequential, $SEQ_N messages" "—" CELL_TP_seq "≥ 1.5× best peer" "$V_SEQ"
	row 3 "8-way parallel, $PAR_N messages" "—" CELL_TP_par "≥ 1.5× best peer" "$V_PAR"
	row 4 "round trips/message, plain" "4" CELL_RT_plain "4" "$V_RTP"
	row 4 "round trips/message, STARTTLS+AUTH (mechanism: the tool's choice)" "—" CELL_RT_tls "7 (TLS 1.3)" "$V_RTT"
	row 4 "round trips/message, STARTTLS without AUTH (the target's case)" "—" CELL_RT_starttls "7 (TLS 1.3)" "$V_RTTS"
	row 4 "… with AUTH PLAIN forced (auth_mechanisms = PLAIN; msmtp: auth plain)" "—" CELL_RT_tlsplain "7 (TLS 1.3)" "$V_RTTP"
	row 5 "${BIG_MB} MB message: throughput (wall), smtp-sink" "$CELL_BIG_FLOOR" CELL_BIG "≥ 300 MB/s" "$V_MBS"
	row 5 "${BIG_MB} MB message: throughput (wall), fastsink" "$CELL_BIG_fast_FLOOR" CELL_BIG_fast "≥ 300 MB/s" "$V_MBS_fast"
	row 5 "${BIG_MB} MB message: peak RSS" "—" CELL_RSS "≤ 4 MB" "$V_RSS"
	echo "| 6 | shim: added per non-intercepted connect() | — | $CELL_SHIM_NS | — | — | — | — | — | ≤ 100 ns | $V_SNS |"
	echo "| 6 | shim: intercepted session (direct: $CELL_DIRECT_SESS) | — | $CELL_SHIM_SESS | — | — | — | — | — | ≤ direct + 2 ms | $V_SSS |"
	echo "| 6 | … a process's first session (its helper started for it; no spare) | — | $CELL_SHIM_FIRST | — | — | — | — | — | — | — |"
	echo "| 6 | … every session starting its helper (RELAYSHIM_SPARE=0) | — | $CELL_SHIM_NOSPARE | — | — | — | — | — | — | — |"
	echo "| 7 | one -bs session, $BS_N messages | — | $CELL_BS | n/a (no -bs) | n/a (no -bs) | n/a (-bs ignored) | n/a (no -bs) | not measured (spools via nullmailer-smtpd) | ≥ 2000 msg/s | $V_BS |"
	echo "| 7 | relay connections used by that session | — | $CELL_BS_CONNS | — | — | — | — | — | 1 | $V_BS |"
	echo "| 8 | time to queue one message (fsync) | — | ${CELL_Q_relayshim:-—} | n/a (no queue) | n/a (no queue) | ${CELL_Q_dma:-—} | n/a (no queue) | ${CELL_Q_nullmailer:-—} | ≤ dma | $V_Q |"
	echo "| 9 | outage backlog: $DRAIN_N messages queued by 20 processes, drained by sendmail -q | — | $CELL_DRAIN | — | — | — | — | — | ≥ 3000 msg/s, exactly once | $V_DRAIN |"
	echo "| 9 | relay connections used by that drain | — | $CELL_DRAIN_CONNS | — | — | — | — | — | — | — |"
	echo "| 10 | $HERD_S spools × $HERD_M messages, relay back after an outage at the backoff cap: peak concurrent relay connections | — | $CELL_HERD | — | — | — | — | — | ≤ 10 | $V_HERD |"
	echo "| 10 | … time from the relay's return to the last delivery | — | $CELL_HERD_ALL | — | — | — | — | — | ≤ 60 s | $V_HERD |"
	echo
	echo "Total bench time: $(($(date +%s) - T_START)) s."
} >"$W/results.md"

cat "$W/results.md"
cp "$W/results.md" "$OUT" 2>/dev/null || note "cannot write $OUT"
