#!/bin/sh
# Stand-in for firmware-agent used by image/tests/run.sh until (or instead of)
# the real static binary: same command line, same config layering
# (agent.toml < card file < environment), publishes to <prefix>/<device>/status
# over MQTT 3.1.1 (plain TCP) using only BusyBox (sh, awk, nc, printf).
# Images with only /bin/busybox (no applet links, e.g. the systemd test image).
for c in awk nc cut sleep wc; do
	command -v "$c" >/dev/null 2>&1 || eval "$c() { busybox $c \"\$@\"; }"
done
CONFIG=/etc/firmware-agent/agent.toml
CARD=
while [ $# -gt 0 ]; do
	case "$1" in
		--config) CONFIG=$2; shift 2 ;;
		--card-config) CARD=$2; shift 2 ;;
		*) echo "firmware-agent(stand-in): unknown argument $1" >&2; exit 2 ;;
	esac
done

# toml_get FILE SECTION KEY -> value of a "key = \"string\"" line ("" = top level)
toml_get() {
	[ -r "$1" ] || return 0
	awk -v sec="$2" -v key="$3" '
		/^[ \t]*#/ { next }
		/^[ \t]*\[/ { s = $0; gsub(/[][ \t\r]/, "", s); cur = s; next }
		cur == sec {
			line = $0; sub(/\r$/, "", line)
			if (match(line, "^[ \t]*" key "[ \t]*=[ \t]*\"")) {
				v = substr(line, RSTART + RLENGTH); sub(/".*$/, "", v); val = v
			}
		}
		END { if (val != "") print val }' "$1"
}
layered() { # SECTION KEY
	v=$(toml_get "$CONFIG" "$1" "$2")
	[ -n "$CARD" ] && c=$(toml_get "$CARD" "$1" "$2") && [ -n "$c" ] && v=$c
	echo "$v"
}
[ -r "$CONFIG" ] || { echo "firmware-agent(stand-in): cannot read $CONFIG" >&2; exit 2; }
DEVICE=$(layered "" device_id)
URL=$(layered mqtt url)
USER=$(layered mqtt username)
PASS=$(layered mqtt password)
PREFIX=$(layered mqtt topic_prefix)
[ -n "${FIRMWARE_AGENT_DEVICE_ID:-}" ] && DEVICE=$FIRMWARE_AGENT_DEVICE_ID
[ -n "${FIRMWARE_AGENT_BROKER_URL:-}" ] && URL=$FIRMWARE_AGENT_BROKER_URL
: "${PREFIX:=edge}"
case "$URL" in
	mqtt://*) hp=${URL#mqtt://}; hp=${hp%%/*} ;;
	*) echo "firmware-agent(stand-in): unsupported broker url '$URL'" >&2; exit 2 ;;
esac
HOST=${hp%:*}; PORT=${hp##*:}; [ "$PORT" = "$hp" ] && PORT=1883
[ -n "$DEVICE" ] || { echo "firmware-agent(stand-in): no device_id" >&2; exit 2; }

o() { printf '\\%03o' "$@"; }                         # byte values -> octal escapes
remlen() { n=$1; while :; do b=$((n % 128)); n=$((n / 128)); [ $n -gt 0 ] && b=$((b | 128)); o $b; [ $n -gt 0 ] || break; done; }
s() { n=${#1}; printf '%s%s' "$(o $((n / 256)) $((n % 256)))" "$1"; }  # MQTT string

connect_pkt() {
	flags=2; payload=$(s "fa-$DEVICE")
	[ -n "$USER" ] && { flags=$((flags | 128)); payload="$payload$(s "$USER")"; }
	[ -n "$PASS" ] && { flags=$((flags | 64)); payload="$payload$(s "$PASS")"; }
	body="$(s MQTT)$(o 4 $flags 0 60)$payload"
	printf "$(o 16)$(remlen $(printf "$body" | wc -c))$body"
}
publish_pkt() { # TOPIC PAYLOAD
	body="$(s "$1")$2"
	printf "$(o 48)$(remlen $(printf "$body" | wc -c))$body"
}

TOPIC="$PREFIX/$DEVICE/status"
echo "firmware-agent(stand-in): device=$DEVICE broker=$HOST:$PORT topic=$TOPIC"
n=0
while :; do
	n=$((n + 1))
	up=$(cut -d' ' -f1 /proc/uptime)
	msg="{\"device\":\"$DEVICE\",\"agent\":\"stand-in\",\"seq\":$n,\"uptime\":$up}"
	{ connect_pkt; sleep 1; publish_pkt "$TOPIC" "$msg"; sleep 1; printf '\340\000'; } \
		| nc "$HOST" "$PORT" >/dev/null && echo "published $TOPIC seq=$n" \
		|| echo "publish to $HOST:$PORT failed"
	sleep 5
done
