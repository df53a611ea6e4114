#!/usr/bin/env bash
# Smoke test of a running tools/cluster.sh cluster that was started with tools/example-gpu-nodes.yaml:
#  1. a pod asking for nvidia.com/gpu: 1 (with the toleration) lands on the NVIDIA node and turns Ready;
#  2. Pod Security admission rejects a privileged pod in a namespace that enforces "restricted";
#  3. an AMD pod lands on the AMD node; a GPU pod without the toleration stays Unschedulable;
#  4. a Deployment + autoscaling/v2 HPA on CPU scales up once kwok reports high usage for its pods
#     (pod annotation kwok.x-k8s.io/usage-cpu), within a bounded wait.
# Everything lives in namespace "smoke"/"smoke-psa", which are deleted at the end.
#   usage: tools/cluster-smoke.sh   (HPA_TIMEOUT=300 by default)
set -euo pipefail
TOOLS_SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/env.sh
source "$TOOLS_SRC_DIR/env.sh"
HPA_TIMEOUT="${HPA_TIMEOUT:-300}"
log() { printf '[smoke] %s\n' "$*" >&2; }
fail() { printf '[smoke] FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() { kubectl delete ns smoke smoke-psa --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

kubectl get ns smoke >/dev/null 2>&1 && { kubectl delete ns smoke --wait=true --timeout=60s >/dev/null || true; }
kubectl create ns smoke >/dev/null

# --- 1. GPU pod ------------------------------------------------------------------------------------
kubectl -n smoke apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: gpu-probe}
spec:
  nodeSelector: {nvidia.com/gpu.present: "true"}
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  containers:
  - name: main
    image: registry.invalid/vllm:fake
    resources: {limits: {nvidia.com/gpu: 1}, requests: {cpu: "1", memory: 1Gi}}
EOF
kubectl -n smoke wait --for=condition=Ready pod/gpu-probe --timeout=60s >/dev/null || fail "gpu-probe not Ready"
node=$(kubectl -n smoke get pod gpu-probe -o jsonpath='{.spec.nodeName}')
[ "$node" = gpu-nvidia-0 ] || fail "gpu-probe scheduled on '$node', expected gpu-nvidia-0"
log "gpu pod: Ready on $node ($(kubectl -n smoke get pod gpu-probe -o jsonpath='{.status.phase}'))"
alloc=$(kubectl get node gpu-nvidia-0 -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')
log "gpu-nvidia-0 allocatable nvidia.com/gpu=$alloc"
kubectl -n smoke apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: amd-probe}
spec:
  tolerations: [{key: amd.com/gpu, operator: Exists, effect: NoSchedule}]
  containers:
  - name: main
    image: registry.invalid/vllm-rocm:fake
    resources: {limits: {amd.com/gpu: 1}}
---
apiVersion: v1
kind: Pod
metadata: {name: gpu-no-toleration}
spec:
  containers:
  - name: main
    image: registry.invalid/vllm:fake
    resources: {limits: {nvidia.com/gpu: 1}}
EOF
kubectl -n smoke wait --for=condition=Ready pod/amd-probe --timeout=60s >/dev/null || fail "amd-probe not Ready"
node=$(kubectl -n smoke get pod amd-probe -o jsonpath='{.spec.nodeName}')
[ "$node" = gpu-amd-0 ] || fail "amd-probe scheduled on '$node', expected gpu-amd-0"
log "amd pod: Ready on $node"
kubectl -n smoke wait --for=jsonpath='{.status.conditions[?(@.type=="PodScheduled")].reason}'=Unschedulable \
  pod/gpu-no-toleration --timeout=30s >/dev/null || fail "gpu pod without toleration was not reported Unschedulable"
log "gpu pod without toleration: Unschedulable ($(kubectl -n smoke get pod gpu-no-toleration \
  -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].message}'))"

# --- 2. Pod Security admission -------------------------------------------------------------------------
kubectl create ns smoke-psa >/dev/null 2>&1 || true
kubectl label ns smoke-psa --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
if out=$(kubectl -n smoke-psa run priv --image=registry.invalid/x --privileged=true 2>&1); then
  fail "privileged pod was admitted in a restricted namespace: $out"
fi
grep -q 'violates PodSecurity' <<<"$out" || fail "unexpected rejection: $out"
log "pod security: privileged pod rejected ($(grep -o 'violates PodSecurity "[^"]*"' <<<"$out"))"

# --- 3. HPA on kwok-simulated CPU -------------------------------------------------------------------------
kubectl -n smoke apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {kwok.x-k8s.io/usage-cpu: "10m"}
    spec:
      nodeSelector: {kubernetes.io/hostname: cpu-0}
      containers:
      - name: main
        image: registry.invalid/web:fake
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
EOF
kubectl -n smoke rollout status deploy/web --timeout=60s >/dev/null
# wait until metrics-server reports the low usage (the HPA has a baseline), then raise it
t0=$(date +%s)
until kubectl -n smoke top pod -l app=web --no-headers 2>/dev/null | grep -q .; do
  [ $(( $(date +%s) - t0 )) -lt "$HPA_TIMEOUT" ] || fail "no pod metrics after ${HPA_TIMEOUT}s"
  sleep 3
done
log "metrics: $(kubectl -n smoke top pod -l app=web --no-headers | head -1) after $(( $(date +%s) - t0 ))s"
kubectl -n smoke patch deploy web --type merge \
  -p '{"spec":{"template":{"metadata":{"annotations":{"kwok.x-k8s.io/usage-cpu":"400m"}}}}}' >/dev/null
t1=$(date +%s)
while :; do
  want=$(kubectl -n smoke get hpa web -o jsonpath='{.status.desiredReplicas}')
  have=$(kubectl -n smoke get deploy web -o jsonpath='{.status.readyReplicas}')
  if [ "${want:-0}" -gt 1 ] && [ "${have:-0}" -ge "$want" ]; then break; fi
  [ $(( $(date +%s) - t1 )) -lt "$HPA_TIMEOUT" ] || fail "HPA did not scale up in ${HPA_TIMEOUT}s (desired=$want ready=$have)"
  sleep 3
done
log "hpa: scaled to $have ready replicas (desired $want) $(( $(date +%s) - t1 ))s after raising usage to 400m/100m"
kubectl -n smoke get hpa web >&2
echo "5 passed, 0 failed"
