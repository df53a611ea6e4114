{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "jina-embeddings.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of every object: the release name when it already contains the chart name. */}}
{{- define "jina-embeddings.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jina-embeddings.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: name + instance only, because selectors are immutable. */}}
{{- define "jina-embeddings.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jina-embeddings.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jina-embeddings.labels" -}}
helm.sh/chart: {{ include "jina-embeddings.chart" . }}
{{ include "jina-embeddings.selectorLabels" . }}
app.kubernetes.io/component: embedding-server
app.kubernetes.io/part-of: jina-embeddings
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
jina-embeddings/task: {{ .Values.model.variant }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "jina-embeddings.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jina-embeddings.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: set it to an existing ServiceAccount" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "jina-embeddings.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}
{{- end }}

{{/* The single JSON object vLLM merges into the HF config: Matryoshka sizes, and in base mode the task. */}}
{{- define "jina-embeddings.hfOverrides" -}}
{{- $o := dict "matryoshka_dimensions" .Values.model.matryoshkaDimensions }}
{{- if eq .Values.model.servingMode "base" }}
{{- $_ := set $o "jina_task" .Values.model.jinaTask }}
{{- end }}
{{- toJson $o }}
{{- end }}

{{- define "jina-embeddings.probe" -}}
httpGet:
  path: {{ .probe.path }}
  port: http
periodSeconds: {{ .probe.periodSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
{{- with .probe.successThreshold }}
successThreshold: {{ . }}
{{- end }}
{{- end }}

{{/* How long a probe tolerates failure, in seconds: periodSeconds x failureThreshold. The one place the
formula lives in the chart (infra/core/values.py probe_window_seconds is its twin). Usage:
int (include "jina-embeddings.probeWindow" .Values.probes.startup) */}}
{{- define "jina-embeddings.probeWindow" -}}
{{- mul (int .periodSeconds) (int .failureThreshold) }}
{{- end }}

{{/* Replicas the HPA never goes under, or the fixed count. */}}
{{- define "jina-embeddings.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* HPA behavior: GPU pods start slowly, so scale up in steps and scale down slowly. */}}
{{- define "jina-embeddings.hpaBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: {{ .scaleUp.stabilizationWindowSeconds }}
  selectPolicy: Max
  policies:
    - type: Pods
      value: {{ .scaleUp.podsPerPeriod }}
      periodSeconds: {{ .scaleUp.periodSeconds }}
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDown.stabilizationWindowSeconds }}
  selectPolicy: Min
  policies:
    - type: Pods
      value: {{ .scaleDown.podsPerPeriod }}
      periodSeconds: {{ .scaleDown.periodSeconds }}
{{- end }}

{{/*
Checkov suppressions (`checkov.io/skipN: <check>=<reason>`), each rendered only while the values
deviate from the check, with the reason. Reasons never contain "=": Checkov splits on it.
README "Security controls" lists them.
*/}}
{{- define "jina-embeddings.linterSkips" -}}
{{- $skips := list }}
{{- if ne .Values.image.pullPolicy "Always" }}
{{- $skips = append $skips "CKV_K8S_15=the tag is a pinned vLLM release; IfNotPresent spares a registry round trip (and Docker Hub rate limits) on every start of a 10+ GB GPU image" }}
{{- end }}
{{- if not .Values.image.digest }}
{{- $skips = append $skips "CKV_K8S_43=the tag is a pinned vLLM release (schema refuses latest and nightly); set image.digest to pull by digest" }}
{{- end }}
{{- if eq (int .Values.podSecurityContext.runAsUser) 2000 }}
{{- $skips = append $skips "CKV_K8S_40=UID 2000 is the vllm user the vLLM images ship (vllm#40275); restricted Pod Security only forbids UID 0" }}
{{- end }}
{{- if not .Values.securityContext.readOnlyRootFilesystem }}
{{- $skips = append $skips "CKV_K8S_22=nvidia-container-toolkit 1.20.0's CDI hook writes into the container and aborts its creation on a read-only root (NVIDIA/nvidia-container-toolkit#2026); every path vLLM writes is still an emptyDir" }}
{{- end }}
{{- if .Values.vllm.apiKey.existingSecret }}
{{- $skips = append $skips "CKV_K8S_35=vLLM reads its API key only from VLLM_API_KEY (no file variant); it comes from a secretKeyRef, never a literal, and the HF token is a mounted file" }}
{{- end }}
{{- range $i, $skip := $skips }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- if not .Values.securityContext.readOnlyRootFilesystem }}
{{- /* kube-score's per-object ignore annotation; the reason is the CKV_K8S_22 skip's above. */}}
kube-score/ignore: container-security-context-readonlyrootfilesystem
{{- end }}
{{- end }}
