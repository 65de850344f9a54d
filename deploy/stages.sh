#!/usr/bin/env bash
# One stage of the backtracking pipeline on a cluster; the SLURM and Kubernetes recipes call it.
#
#   deploy/stages.sh STAGE        (run from the repository root, on the shared filesystem)
#
# Stages, in order (each depends on the one before finishing; the schedulers chain them):
#   prepare      init-run + prepare-data (skipped when the run already has them)          one task
#   generate-1   generate baseline, every variant                                         N shards
#   analyse-1    merge, detect-events, logit-lens                                         one task
#   scan         the ablation scan's positions (whole prefill groups per shard)           N shards
#   select       ablation-scan: assemble the scan shards, select components, random draws one task
#   generate-2   targeted, random (and organism: reference-selection) ablations, Phase 2  N shards
#   analyse-2    the whole pipeline on the run: merges, reuses every finished step,
#                computes the rest (comparisons, formatting, Phase 2, report)             one task
#
# Environment:
#   BT_RUN_ID    the run id (required: every task must work on the same run folder)
#   BT_CONFIG    the config (default configs/organism.yaml); its run.output_dir (default runs/) must be on
#                the shared filesystem
#   BT_DENO      the Deno command (default "npx -y deno@2.9.6")
#   shards       --shard is not passed: the generating steps read SLURM_ARRAY_TASK_ID/_COUNT/_MIN, or
#                JOB_COMPLETION_INDEX with BT_SHARD_COUNT, or BT_SHARD=K/N (experiments/backtracking/cli/steps.ts)
set -euo pipefail

stage="${1:?usage: deploy/stages.sh prepare|generate-1|analyse-1|scan|select|generate-2|analyse-2}"
config="${BT_CONFIG:-configs/organism.yaml}"
run_id="${BT_RUN_ID:?set BT_RUN_ID to the run id shared by every task}"
read -r -a deno <<< "${BT_DENO:-npx -y deno@2.9.6}"

bt() {
  "${deno[@]}" run --quiet --allow-all --frozen experiments/backtracking/cli/main.ts "$@" \
    -c "$config" --run-id "$run_id"
}

# Run a step that refuses to redo a finished artifact; "already exists" means an earlier try finished it.
once() {
  local out
  if out="$(bt "$@" 2>&1)"; then
    printf '%s\n' "$out"
  elif grep -q "already exists" <<< "$out"; then
    echo "bt $1: already done"
  else
    printf '%s\n' "$out" >&2
    return 1
  fi
}

case "$stage" in
  prepare)
    once init-run
    once prepare-data
    ;;
  generate-1)
    bt generate --condition baseline
    ;;
  analyse-1)
    bt merge
    bt detect-events
    bt logit-lens
    ;;
  scan)
    bt ablation-scan
    ;;
  select)
    once ablation-scan
    ;;
  generate-2)
    bt generate --condition targeted_ablation
    bt generate --condition random_ablation
    # protocol validation needs a known circuit: the model organism only (as the pipeline does)
    if grep -Eq '^[[:space:]]*source:[[:space:]]*organism' "$config"; then
      bt generate --condition reference_selection_ablation
    fi
    bt phase2-sweeps
    bt phase2-steering
    ;;
  analyse-2)
    bt pipeline
    ;;
  *)
    echo "deploy/stages.sh: unknown stage \"$stage\"" >&2
    exit 2
    ;;
esac
