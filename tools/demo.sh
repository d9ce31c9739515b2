#!/bin/sh
# demo.sh - make demo: a private Postfix relay on loopback, one message through
# sendmail and one through the LD_PRELOAD shim, then what the relay delivered.
set -eu
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/relayshim-demo.XXXXXX)
chmod 755 "$dir"
export PYTHONPATH="$top/tests"

stop() {
	/usr/bin/python3 -m harness.relay_ctl stop "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap stop EXIT INT TERM

echo "== starting a private Postfix relay on loopback"
/usr/bin/python3 -m harness.relay_ctl start "$dir" --owner $$
. "$dir/env"
echo "   relay: 127.0.0.1:$RELAY_PLAIN_PORT, delivered mail lands in $CAPTURE_DIR"

cat >"$dir/relayshim.conf" <<CONF
[relay]
host = 127.0.0.1:$RELAY_PLAIN_PORT

[rewrite]
domain = example.com
header_tag = demo

[aliases]
root = ops@example.com

[queue]
mode = never

[log]
level = info
CONF
export RELAYSHIM_CONFIG="$dir/relayshim.conf"

echo "== 1. sendmail -t -i (as PHP mail() calls it): a message from root to root, with a Bcc"
printf 'To: root\nBcc: hidden@example.com\nSubject: hello from sendmail\n\nDelivered by relayshim.\n' |
	"$top/$BUILD/sendmail/sendmail" -t -i

echo "== 2. python3 smtplib to localhost:25 through the shim (nothing listens there)"
LD_PRELOAD="$top/$BUILD/shim/librelayshim.so" RELAYSHIM_SENDMAIL="$top/$BUILD/sendmail/sendmail" \
	/usr/bin/python3 - <<'PY'
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "app@example.com"
m["To"] = "dev@example.com"
m["Subject"] = "hello from smtplib via the shim"
m.set_content("Delivered by relayshim's LD_PRELOAD shim.")
with smtplib.SMTP("127.0.0.1", 25, timeout=20) as s:
    s.send_message(m)
PY

# Postfix relays to the capture sink asynchronously: wait for both messages.
i=0
while [ "$(ls "$CAPTURE_DIR" | grep -c '\.eml$')" -lt 2 ] && [ $i -lt 100 ]; do
	sleep 0.2
	i=$((i + 1))
done
echo "== what the relay delivered"
for f in "$CAPTURE_DIR"/*.eml; do
	echo "---- envelope: $(tr -d '\n' <"${f%.eml}.json" | tr -s ' ')"
	tr -d '\r' <"$f"
done
