# Sourced by the benchmark scripts (scripts/bench-footprint.sh, bench-idle.sh, bench-guest.sh):
# the parts they share. The caller has a `pids` array (what its cleanup stops).
#
#   bench_free_port                    prints a free TCP port on 127.0.0.1
#   bench_broker DIR                   starts a private mosquitto on loopback (no persistence,
#                                      no queue limit, no log), waits until it answers; sets
#                                      `port` and adds its pid to `pids`
#   bench_collectd_conf DIR PORT ID    writes DIR/collectd.conf: cpu, memory, load, interface
#                                      and the mqtt plugin publishing to 127.0.0.1:PORT as ID

bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_broker() {
    local dir=$1 i
    port=$(bench_free_port)
    mkdir -p "$dir"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_dest none\n' \
        "$port" >"$dir/mosquitto.conf"
    mosquitto -c "$dir/mosquitto.conf" &
    pids+=($!)
    for i in $(seq 50); do mosquitto_pub -p "$port" -t bench/ping -m x 2>/dev/null && return 0; sleep 0.1; done
    echo "bench: mosquitto on port $port did not answer" >&2
    return 1
}

bench_collectd_conf() {
    local dir=$1 port=$2 id=$3
    mkdir -p "$dir"
    cat >"$dir/collectd.conf" <<CONF
Hostname "bench"
FQDNLookup false
BaseDir "$dir"
PIDFile "$dir/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 10
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin interface
LoadPlugin mqtt
<Plugin mqtt>
  <Publish "bench">
    Host "127.0.0.1"
    Port "$port"
    ClientId "$id"
    Prefix "collectd"
    QoS 1
  </Publish>
</Plugin>
CONF
}
