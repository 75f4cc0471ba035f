"""The scripts of a run bundle (``segstudio.workspace.bundles``) as templates: ``@@name`` is replaced by a value
(shell-quoted where the shell reads it as a word: ``@@q_dataset``); ``$`` and ``@`` stay the shell's.

``launch_torchrun.sh`` is POSIX sh and runs torchrun on one machine (``--standalone``) or on one of several (a c10d
rendezvous at ``RDZV_ENDPOINT``); ``segstudio.sbatch`` runs it on every node of a SLURM job.
"""

from __future__ import annotations

import string


class Template(string.Template):
    delimiter = "@@"  # "$" and "@" are the shell's


LAUNCH_TEMPLATE = r"""#!/bin/sh
# segstudio run bundle "@@name": trains @@config on the dataset with torchrun, on this
# machine or on each of several. Written by segstudio @@version on @@created; README.txt says more.
#
#   one machine, N processes (one per GPU):  NPROC_PER_NODE=N sh @@launch
#   several machines, on each of them:       NNODES=M RDZV_ENDPOINT=first-node:@@port RDZV_ID=job-1 sh @@launch
#   a SLURM cluster:                         sbatch @@sbatch   (it runs this script on every node)
#
# Settings come from the environment; the default is in brackets:
#   DATASET         the dataset as this machine sees it [@@dataset]
#   DATASET_FORMAT  its format, empty to detect it [@@format]
#   WORKSPACE       a segstudio workspace whose corrections train too; empty: none [@@workspace]
#   OUT             the run folder to write; it must not hold a run yet [@@out/ in this bundle]
#   RESUME          1 continues the run in OUT from its last checkpoint [0]
#   NPROC_PER_NODE  training processes on this machine, one per GPU [@@nproc]
#   NNODES          machines taking part [1]
#   RDZV_ENDPOINT   host:port on the first machine, where the processes of all machines meet [localhost:@@port]
#   RDZV_ID         the job's name, the same on every machine [segstudio-@@slug]
#   RDZV_BACKEND    c10d, or static (then NODE_RANK numbers the machines 0..NNODES-1) [c10d]
#   NODE_RANK       this machine's number, with RDZV_BACKEND=static [0]
#   TORCHRUN        the torchrun to use [torchrun of the active Python environment, which must have segstudio]
set -eu

HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
DEFAULT_DATASET=@@q_dataset
DEFAULT_FORMAT=@@q_format
DEFAULT_WORKSPACE=@@q_workspace
DATASET=${DATASET:-$DEFAULT_DATASET}
DATASET_FORMAT=${DATASET_FORMAT-$DEFAULT_FORMAT}
WORKSPACE=${WORKSPACE-$DEFAULT_WORKSPACE}
OUT=${OUT:-$HERE/@@out}
NPROC_PER_NODE=${NPROC_PER_NODE:-@@nproc}
NNODES=${NNODES:-1}
RDZV_BACKEND=${RDZV_BACKEND:-c10d}
RDZV_ENDPOINT=${RDZV_ENDPOINT:-localhost:@@port}
RDZV_ID=${RDZV_ID:-segstudio-@@slug}
NODE_RANK=${NODE_RANK:-0}
TORCHRUN=${TORCHRUN:-torchrun}

fail() {
    echo "segstudio bundle: $*" >&2
    exit 2
}
[ -e "$DATASET" ] || fail "the dataset $DATASET is not on $(uname -n). Set DATASET to where it is on this machine, e.g. DATASET=/shared/data/lungs sh $0 ($HERE/@@dataset_file records what was opened)."
if [ -n "$WORKSPACE" ] && [ ! -d "$WORKSPACE" ]; then
    fail "the workspace $WORKSPACE (its corrections train too) is not on $(uname -n). Set WORKSPACE to where it is, or WORKSPACE= (empty) to train on the dataset's GT only."
fi
command -v "$TORCHRUN" >/dev/null 2>&1 || fail "$TORCHRUN not found. Activate the Python environment that has segstudio installed (it brings torch and torchrun), or set TORCHRUN=/path/to/torchrun."

set -- "$TORCHRUN" --nproc-per-node="$NPROC_PER_NODE"
if [ "$NNODES" = 1 ]; then
    # one machine: a private rendezvous on a free local port
    set -- "$@" --standalone
else
    set -- "$@" --nnodes="$NNODES" --rdzv-backend="$RDZV_BACKEND" --rdzv-endpoint="$RDZV_ENDPOINT" --rdzv-id="$RDZV_ID"
    # c10d numbers the machines itself; only the static rendezvous takes the machine's number
    if [ "$RDZV_BACKEND" = static ]; then
        set -- "$@" --node-rank="$NODE_RANK"
    fi
fi
set -- "$@" -m segstudio train "$DATASET" --config "$HERE/@@config" --out "$OUT"
if [ -n "$DATASET_FORMAT" ]; then
    set -- "$@" --format "$DATASET_FORMAT"
fi
if [ -n "$WORKSPACE" ]; then
    set -- "$@" --workspace "$WORKSPACE"
fi
if [ "${RESUME:-0}" = 1 ]; then
    set -- "$@" --resume
fi
echo "segstudio bundle: $*" >&2
exec "$@"
"""

SBATCH_TEMPLATE = r"""#!/bin/bash
# segstudio run bundle "@@name" as a SLURM job: one task per node runs @@launch (torchrun), which
# starts the training processes of its node. Written by segstudio @@version on @@created.
#
# Submit it from the bundle's folder:    cd /path/to/this/bundle && sbatch @@sbatch
# The run lands in OUT (default: @@out/ in this bundle, on the file system shared by the nodes). Bring it back with
# Train -> Import Run Folder... in the app, or: segstudio models import WORKSPACE /path/to/this/bundle/@@out
#
# EDIT the #SBATCH lines for your cluster: nodes, GPUs and CPUs per node, the time limit, and (remove one '#')
# the partition and account when your cluster wants them. --ntasks-per-node stays 1: torchrun is the one task of
# its node and starts NPROC_PER_NODE training processes.
#SBATCH --job-name=segstudio-@@slug
#SBATCH --nodes=@@nnodes
#SBATCH --ntasks-per-node=1
@@gpu_line
#SBATCH --cpus-per-task=@@cpus
#SBATCH --time=@@time
#SBATCH --output=%x-%j.out
##SBATCH --partition=gpu
##SBATCH --account=my-project
set -euo pipefail

# EDIT: make segstudio (and with it torch and torchrun) available on the nodes, e.g.
# module load cuda
# source "$HOME/venvs/segstudio/bin/activate"

# EDIT: where the nodes see the dataset, when not at the exported path (@@dataset_file), and the workspace whose
# corrections train too (WORKSPACE= leaves them out)
# export DATASET=/shared/datasets/lungs
# export WORKSPACE=

BUNDLE=${BUNDLE:-${SLURM_SUBMIT_DIR:-$(pwd)}}
if [ ! -f "$BUNDLE/@@launch" ]; then
    echo "segstudio bundle: no @@launch in $BUNDLE: submit from the bundle's folder, or set BUNDLE=/path/to/bundle" >&2
    exit 2
fi
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
export BUNDLE
export NNODES=$SLURM_NNODES
export NPROC_PER_NODE=${NPROC_PER_NODE:-@@nproc}
export RDZV_ENDPOINT=${RDZV_ENDPOINT:-$HEAD_NODE:@@port}
export RDZV_ID=${RDZV_ID:-$SLURM_JOB_ID}
export OUT=${OUT:-$BUNDLE/@@out}
# the node's CPUs shared out among its training processes (torchrun would give each one thread)
case $NPROC_PER_NODE in
    ''|*[!0-9]*) THREADS=1 ;;
    *) THREADS=$(( ${SLURM_CPUS_PER_TASK:-@@cpus} / NPROC_PER_NODE )) ;;
esac
if [ "$THREADS" -lt 1 ]; then THREADS=1; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$THREADS}

echo "segstudio bundle: $NNODES node(s) x $NPROC_PER_NODE process(es), rendezvous at $RDZV_ENDPOINT, run folder $OUT"
# on every node: torchrun --nproc-per-node=$NPROC_PER_NODE --nnodes=$SLURM_NNODES --rdzv-backend=c10d
#   --rdzv-endpoint=$HEAD_NODE:@@port --rdzv-id=$SLURM_JOB_ID -m segstudio train "$DATASET" --config ... --out "$OUT"
# (NODE_RANK=$SLURM_NODEID numbers the nodes for RDZV_BACKEND=static; c10d numbers them itself)
srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    bash -c 'NODE_RANK=$SLURM_NODEID exec sh "$BUNDLE/@@launch"'
echo "segstudio bundle: done; bring the run back with: segstudio models import WORKSPACE $OUT"
"""

README_TEMPLATE = """segstudio run bundle "@@name"
Written by segstudio @@version on @@created, from the app's Training panel.

What is here
  @@config     the training config, as the Training panel would train it
  @@dataset_file          the dataset as it was opened (@@dataset, format @@format)
  @@launch    runs torchrun -m segstudio train on this machine, or on one node of several
  @@sbatch      the same as a SLURM job (edit its #SBATCH lines first)
  bundle.json           what this bundle is, for segstudio

Before you start
  The machines that train need segstudio installed, the version of the app that wrote this (it brings torch and
  torchrun), and the dataset at the same path, or DATASET set to where they see it:
      DATASET=/shared/datasets/lungs sh @@launch
  @@corrections_line

One machine
      sh @@launch                          # @@nproc process(es), one per GPU
      NPROC_PER_NODE=2 sh @@launch         # two processes (GPUs) instead
  It runs: torchrun --standalone --nproc-per-node=N -m segstudio train DATASET --config @@config --out OUT

Several machines
  Start the script on every machine with the same NNODES, RDZV_ENDPOINT (host:port on the first machine, reachable
  from all of them) and RDZV_ID:
      NNODES=2 NPROC_PER_NODE=4 RDZV_ENDPOINT=node001:@@port RDZV_ID=lungs-1 sh @@launch
  On SLURM, from this folder:  sbatch @@sbatch   (@@nnodes node(s) x @@nproc process(es) as exported)

The run
  It lands in OUT (default: @@out/ in this bundle; with several machines keep it on a shared file system). It is a
  segstudio run folder: @@config, run.json, curves.csv and .png, checkpoints/best and last. A stopped run
  continues with RESUME=1 and the same OUT.

Bringing it back
  Copy the run folder to the computer with the app (or reach it over a mount), then in the app:
      Train -> Import Run Folder...   (choose the run folder, or this bundle's folder)
  or on the command line:
      segstudio models import WORKSPACE /path/to/@@out
  The run is copied into the workspace's run history with its curves, metrics and checkpoints; Use This Model
  (or segstudio models promote WORKSPACE RUN_ID) makes it the workspace's model.
"""
