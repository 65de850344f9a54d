#!/usr/bin/env bash
# Run the backtracking pipeline on Kubernetes: the stages of deploy/stages.sh, the generation stages and the
# ablation scan as Indexed Jobs of N pods (generate-job.yaml), the others as single-pod Jobs
# (analysis-job.yaml), each applied when the one before has completed (kubectl wait).
#
#   deploy/k8s/run.sh SHARDS RUN_ID [CONFIG]        e.g. deploy/k8s/run.sh 8 qwen7b configs/r1_distill_qwen_7b.yaml
#
# Needs the claim bt-shared (ReadWriteMany) holding the repository at /shared/backtracking-interp.
set -euo pipefail

shards="${1:?usage: deploy/k8s/run.sh SHARDS RUN_ID [CONFIG]}"
run_id="${2:?usage: deploy/k8s/run.sh SHARDS RUN_ID [CONFIG]}"
config="${3:-configs/organism.yaml}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
timeout="${BT_K8S_TIMEOUT:-48h}"

# Render a manifest for one stage: its name, stage, run id, config and (Indexed Jobs) the shard count.
render() {
  local file="$1" from="$2" stage="$3"
  sed -e "s/bt-${from}\b/bt-${stage}-${run_id}/" \
    -e "s/stage: ${from}\b/stage: ${stage}/" \
    -e "s/\"deploy\/stages.sh\", \"${from}\"/\"deploy\/stages.sh\", \"${stage}\"/" \
    -e "s/value: \"cluster-run\"/value: \"${run_id}\"/" \
    -e "s#value: configs/organism.yaml#value: ${config}#" \
    -e "s/completions: 4/completions: ${shards}/" \
    -e "s/parallelism: 4/parallelism: ${shards}/" \
    -e "s/maxFailedIndexes: 4/maxFailedIndexes: ${shards}/" \
    -e "/name: BT_SHARD_COUNT/{n;s/value: \"4\"/value: \"${shards}\"/}" \
    "$file"
}

stage() {
  local kind="$1" name="$2"
  if [[ "$kind" == indexed ]]; then
    render "$here/generate-job.yaml" generate-1 "$name" | kubectl apply -f -
  else
    render "$here/analysis-job.yaml" analyse-2 "$name" | kubectl apply -f -
  fi
  kubectl wait --for=condition=complete --timeout="$timeout" "job/bt-${name}-${run_id}"
}

stage single prepare
stage indexed generate-1
stage single analyse-1
stage indexed scan
stage single select
stage indexed generate-2
stage single analyse-2
echo "run ${run_id}: done; report in runs/${run_id}/report.md on the shared volume"
