#!/bin/bash
# One point of a pare sweep per Slurm array task: runs line $SLURM_ARRAY_TASK_ID of the jobs file that
# `pare run RECIPE --emit-jobs JOBS --out OUT` wrote (docs/sweeps.md). Submit with one task per line:
#
#   sbatch --array=1-$(wc -l < JOBS) tools/sweep_slurm.sh JOBS
#
# then, once every task has finished: pare compare OUT. Adjust the #SBATCH lines to the model: a 7B
# point wants the cores of a node and the memory of docs/scale.md.
#SBATCH --job-name=pare-sweep
#SBATCH --cpus-per-task=16
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --output=pare-sweep-%A_%a.log
set -euo pipefail
jobs=${1:?usage: sbatch --array=1-N tools/sweep_slurm.sh JOBS_FILE}
task=${SLURM_ARRAY_TASK_ID:?run it as an array job: sbatch --array=1-N tools/sweep_slurm.sh JOBS_FILE}
line=$(sed -n "${task}p" "$jobs")
if [ -z "$line" ]; then
    echo "sweep_slurm.sh: $jobs has no line $task (it has $(wc -l < "$jobs"))" >&2
    exit 2
fi
# pare's threads: the cores Slurm gave this task, not the node's
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then export PARE_THREADS=$SLURM_CPUS_PER_TASK; fi
exec bash -c "$line"
