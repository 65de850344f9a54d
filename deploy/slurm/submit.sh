#!/usr/bin/env bash
# Submit the backtracking pipeline as a chain of SLURM jobs: the generation stages and the ablation scan as
# job arrays of N shards (one GPU each), the analysis stages as single jobs that start when the stage before
# succeeded (deploy/stages.sh lists the stages).
#
#   BT_CONFIG=configs/r1_distill_qwen_7b.yaml deploy/slurm/submit.sh 8 [RUN_ID]
#
# Run from the repository root on the shared filesystem. A failed shard stops the chain (afterok); fix
# it, resubmit only that task (sbatch --array=K deploy/slurm/bt.sbatch generate-1: the shard resumes
# where it stopped), then submit the rest again: finished stages are reused.
set -euo pipefail

shards="${1:?usage: deploy/slurm/submit.sh SHARDS [RUN_ID]}"
export BT_RUN_ID="${2:-${BT_RUN_ID:-$(date -u +%Y%m%d_%H%M%S)}}"
export BT_CONFIG="${BT_CONFIG:-configs/organism.yaml}"
script="deploy/slurm/bt.sbatch"
last=$((shards - 1))

submit() { sbatch --parsable --export=ALL "$@"; }

prep=$(submit --job-name=bt-prepare "$script" prepare)
gen1=$(submit --job-name=bt-generate-1 --dependency="afterok:${prep}" --array="0-${last}" "$script" generate-1)
ana1=$(submit --job-name=bt-analyse-1 --dependency="afterok:${gen1}" "$script" analyse-1)
scan=$(submit --job-name=bt-scan --dependency="afterok:${ana1}" --array="0-${last}" "$script" scan)
sel=$(submit --job-name=bt-select --dependency="afterok:${scan}" "$script" select)
gen2=$(submit --job-name=bt-generate-2 --dependency="afterok:${sel}" --array="0-${last}" "$script" generate-2)
ana2=$(submit --job-name=bt-analyse-2 --dependency="afterok:${gen2}" "$script" analyse-2)
echo "run ${BT_RUN_ID}: jobs ${prep} → ${gen1} (array 0-${last}) → ${ana1} → ${scan} (array) → ${sel} →" \
  "${gen2} (array 0-${last}) → ${ana2}"
