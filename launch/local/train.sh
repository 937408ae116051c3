#!/usr/bin/env bash
# N gestalt train processes on this machine, for development: what a cluster does, without one.
#   launch/local/train.sh N --config=configs/test.py --workdir=runs/local [--config.x=y ...]
# Process 0 coordinates on 127.0.0.1:$PORT (default a free port); each process gets
# DEVICES_PER_PROCESS CPU devices (XLA_FLAGS) unless accelerators are present. Logs: WORKDIR/process_<i>.log.
# The exit status is the first failing process's; when one fails the others are stopped.
set -euo pipefail
n=${1:?usage: launch/local/train.sh N --config=... --workdir=... [overrides]}
shift
python=${GESTALT_PYTHON:-python}
workdir=$(printf '%s\n' "$@" | sed -n 's/^--workdir=//p' | tail -1)
workdir=${workdir:?launch/local/train.sh: give --workdir=DIR}
port=${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export XLA_FLAGS="${XLA_FLAGS:---xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-1}}"
mkdir -p "$workdir"
pids=()
for ((i = 0; i < n; i++)); do
    "$python" -m gestalt_jax.main train --coordinator="127.0.0.1:$port" --num_processes="$n" --process_id="$i" "$@" \
        > "$workdir/process_$i.log" 2>&1 &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        status=$?
        echo "launch/local: process $i failed (exit $status); see $workdir/process_$i.log" >&2
        kill "${pids[@]}" 2>/dev/null || true
        break
    fi
done
exit $status
