# Shared by the bench scripts that start odradek nodes (source it after setting ODRADEK and
# TMP): every node started is recorded in PIDS and stopped by PID by `stop_all`.
#
#   start NAME ARGS...        starts `$ODRADEK serve ARGS...`, waits (bounded) for its ready line
#   start_cluster             three voters on 127.0.0.2-4 (--smp 1, data under $TMP/n1..n3);
#                             sets PORTS[1..3] and BOOT (the three Kafka addresses)
#   stop_all                  SIGTERM every node started, then waits for each
#   fresh_data_dir DIR OUT    creates DIR (refused if it exists: a run still going, or killed)
#                             and OUT; refuses DIR on tmpfs/ramfs/overlay, since the figures
#                             must come from a disk; sets FSTYPE

PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

free_port() { python3 -c "import socket;s=socket.socket();s.bind(('$1',0));print(s.getsockname()[1])"; }

start() {
    local name=$1; shift
    "$ODRADEK" serve "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    for _ in $(seq 1 200); do
        grep -q "odradek ready" "$TMP/$name.out" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$name did not start:"; tail -5 "$TMP/$name.err"; exit 1
}

start_cluster() {
    local voters="" cports=()
    PORTS=()
    for i in 1 2 3; do
        PORTS[i]=$(free_port "127.0.0.$((i + 1))"); cports[i]=$(free_port "127.0.0.$((i + 1))")
        voters+="${voters:+,}$i@127.0.0.$((i + 1)):${cports[i]}"
    done
    for i in 1 2 3; do
        start "n$i" --node-id "$i" --listen "127.0.0.$((i + 1)):${PORTS[i]}" \
            --controller-listen "127.0.0.$((i + 1)):${cports[i]}" \
            --controller-quorum-voters "$voters" --data-dir "$TMP/n$i" --smp 1
    done
    # Bounded wait until all three brokers are registered.
    for _ in $(seq 1 100); do
        [ "$(kcat -L -b "127.0.0.2:${PORTS[1]}" 2>/dev/null | grep -c '  broker ')" = 3 ] && break
        sleep 0.1
    done
    BOOT="127.0.0.2:${PORTS[1]},127.0.0.3:${PORTS[2]},127.0.0.4:${PORTS[3]}"
}

fresh_data_dir() {
    local dir=$1 out=$2
    if [ -e "$dir" ]; then
        echo "$dir exists (a previous run still going, or killed?); remove it first" >&2; exit 1
    fi
    mkdir -p "$dir" "$out"
    FSTYPE="$(df --output=fstype "$dir" | tail -n 1 | tr -d ' ')"
    case "$FSTYPE" in
        tmpfs | ramfs | overlay)
            rmdir "$dir"; echo "$dir is on $FSTYPE, not a disk; set DATA_DIR" >&2; exit 1 ;;
    esac
}
