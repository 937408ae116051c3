#!/usr/bin/env bash
# gestalt train under Open MPI: one rank per accelerator; JAX reads OMPI_MCA_orte_hnp_uri and
# OMPI_COMM_WORLD_{SIZE,RANK,LOCAL_RANK} and takes rank 0's host as the coordinator.
#   launch/mpi/train.sh -np 16 --hostfile hosts -- --config=configs/phase2.py --workdir=/shared/runs/phase2
# Everything before `--` goes to mpirun, everything after it to `gestalt train`. As root (containers,
# CI) add --allow-run-as-root; with more ranks than cores, --oversubscribe.
set -euo pipefail
mpi_args=()
while [[ $# -gt 0 && $1 != -- ]]; do mpi_args+=("$1"); shift; done
[[ ${1:-} == -- ]] || { echo "usage: launch/mpi/train.sh MPIRUN_ARGS... -- GESTALT_TRAIN_ARGS..." >&2; exit 2; }
shift
python=${GESTALT_PYTHON:-python}
for var in PATH PYTHONPATH XLA_FLAGS JAX_PLATFORMS GLIBC_TUNABLES; do  # passed on to every rank, when set
    [[ -n ${!var:-} ]] && mpi_args+=(-x "$var")
done
exec mpirun "${mpi_args[@]}" "$python" -m gestalt_jax.main train --distributed "$@"
