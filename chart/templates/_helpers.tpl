{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "ai-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release name already contains it. */}}
{{- define "ai-app.fullname" -}}
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

{{- define "ai-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ai-app.labels" -}}
helm.sh/chart: {{ include "ai-app.chart" . }}
{{ include "ai-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: name and instance only (a Deployment's selector never changes). */}}
{{- define "ai-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The helm test pod's labels: not the selector labels, so no Service or policy picks it. */}}
{{- define "ai-app.testLabels" -}}
helm.sh/chart: {{ include "ai-app.chart" . }}
{{ include "ai-app.testSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The prefetch DaemonSet's pods: the release's instance but not the app's name, so no selector
of the app (its Deployment, Services, PDB, NetworkPolicy, spread) ever picks one.
*/}}
{{- define "ai-app.prefetchSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: prefetch
{{- end }}

{{- define "ai-app.prefetchLabels" -}}
helm.sh/chart: {{ include "ai-app.chart" . }}
{{ include "ai-app.prefetchSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The metrics Service's name: the full name, cut to leave room for the suffix. */}}
{{- define "ai-app.metricsServiceName" -}}
{{- printf "%s-metrics" (include "ai-app.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "ai-app.testSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}

{{/*
checkov skips, each with its reason, for settings a release manager chooses knowingly;
they appear only while the setting is off. `images` is the list of image values in the pod.
*/}}
{{- define "ai-app.checkovSkips" -}}
{{- $digests := true }}
{{- $alwaysPull := true }}
{{- range .images }}
{{- if not .digest }}{{ $digests = false }}{{ end }}
{{- if ne .pullPolicy "Always" }}{{ $alwaysPull = false }}{{ end }}
{{- end }}
{{- if not $digests }}
checkov.io/skip1: "CKV_K8S_43=Tags are the pipeline's immutable build IDs; set image.*.digest to pin by digest"
{{- end }}
{{- if not $alwaysPull }}
checkov.io/skip2: "CKV_K8S_15=Immutable build-ID tags or digests need no pull at each start (image.*.pullPolicy)"
{{- end }}
{{- if not .networkPolicy }}
checkov.io/skip3: "CKV2_K8S_6=networkPolicy.enabled is false by choice: the namespace policies apply"
{{- end }}
{{- end }}

{{- define "ai-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ai-app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest; the tag defaults to the chart's appVersion. `key` names the value. */}}
{{- define "ai-app.image" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (include "ai-app.string" (list (printf "%s.tag" .key) (default .appVersion .tag))) }}
{{- end }}
{{- end }}

{{/* The loader's credential mode for the chart's auth.mode. */}}
{{- define "ai-app.loaderAuth" -}}
{{- get (dict "workloadIdentity" "identity" "existingSecret" "auto" "none" "anonymous") .Values.auth.mode }}
{{- end }}

{{/* Settings the chart cannot express in its schema, checked with messages that name the value. */}}
{{- define "ai-app.validate" -}}
{{- if and (eq .Values.auth.mode "workloadIdentity") (not .Values.auth.workloadIdentity.clientId) }}
{{- fail "auth.workloadIdentity.clientId is required when auth.mode=workloadIdentity (the managed identity's client ID)" }}
{{- end }}
{{- if and (has .Values.auth.mode (list "workloadIdentity" "none")) (not .Values.storage.accountUrl) }}
{{- fail (printf "storage.accountUrl is required when auth.mode=%s (https://<account>.blob.core.windows.net)" .Values.auth.mode) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- $minReplicas := int (include "ai-app.minReplicas" .) }}
{{- if and $pdb.enabled (ge $minReplicas 2) }}
{{- $needed := $pdb.minAvailable }}
{{- if kindIs "string" $needed }}
{{- $needed = ceil (mulf $minReplicas (divf (trimSuffix "%" $needed) 100)) }}
{{- end }}
{{- if ge (int $needed) $minReplicas }}
{{- fail (printf "podDisruptionBudget.minAvailable=%v with %d replicas allows no voluntary disruption: AKS node upgrades would fail to drain (UpgradeFailed); lower it or add replicas" $pdb.minAvailable $minReplicas) }}
{{- end }}
{{- end }}
{{- if eq .Values.service.externalTrafficPolicy "Local" }}
{{- $annotations := .Values.service.annotations | default dict }}
{{- $interval := int (get $annotations "service.beta.kubernetes.io/azure-load-balancer-health-probe-interval" | default 5) }}
{{- $probes := int (get $annotations "service.beta.kubernetes.io/azure-load-balancer-health-probe-num-of-probe" | default 2) }}
{{- $lag := add (mul $interval $probes) 5 }}
{{- if lt (int .Values.app.drainSeconds) $lag }}
{{- fail (printf "app.drainSeconds=%v is too short for service.externalTrafficPolicy=Local: the Azure load balancer probes each node every %d s and drops it after %d failed probes, so a terminating pod must keep serving for at least %d s" .Values.app.drainSeconds $interval $probes $lag) }}
{{- end }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.app.port) }}
{{- fail (printf "metrics.port=%v must differ from app.port: the metrics port is the one the public Service doesn't expose" .Values.metrics.port) }}
{{- end }}
{{- if hasKey .Values.model "volumeSizeLimit" }}
{{- fail (printf "model.volumeSizeLimit was replaced by model.volume.sizeLimit (model.volume.type emptyDir, the default): move %v there" .Values.model.volumeSizeLimit) }}
{{- end }}
{{- if and (eq .Values.auth.mode "existingSecret") (not .Values.auth.existingSecret.name) }}
{{- fail "auth.existingSecret.name is required when auth.mode=existingSecret (a Secret holding AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_SAS_TOKEN)" }}
{{- end }}
{{- end }}

{{/*
A value that becomes a string in the pod, rendered exactly as written: call with
(list "key.path" value). `--set x=20240101` gives an int64, rendered as written; a values
file gives every number as a float64, which renders 20240101 as 2.0240101e+07 and 1.0 as 1,
so it is refused with the fix rather than deployed as another version.
*/}}
{{- define "ai-app.string" -}}
{{- $key := index . 0 }}{{ $value := index . 1 }}
{{- if kindIs "float64" $value }}
{{- $meant := ternary (toString (int64 $value)) (toString $value) (eq (float64 (int64 $value)) $value) }}
{{- fail (printf "%s must be a quoted string: a values file gives helm the number %v here, and numbers lose their form (20240101 becomes 2.0240101e+07, 1.0 becomes 1); write it in quotes as meant, e.g. %s: \"%s\", or use --set-string" $key $value (last (splitList "." $key)) $meant) }}
{{- end }}
{{- toString $value }}
{{- end }}

{{/* A Kubernetes quantity (e.g. a size): whole numbers as integers, never in e-notation. */}}
{{- define "ai-app.quantity" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
The contract shared by the loader and the app, written into the pod template itself: a pod
of an old ReplicaSet (restarted, or replaced during a rollout) keeps the model it was made
for, since `helm upgrade` can't edit what it reads.
*/}}
{{- define "ai-app.modelEnv" -}}
- name: MODEL_NAME
  value: {{ include "ai-app.string" (list "model.name" .Values.model.name) | quote }}
- name: MODEL_VERSION
  value: {{ include "ai-app.string" (list "model.version" .Values.model.version) | quote }}
- name: MODEL_DIGEST
  value: {{ .Values.model.digest | quote }}
- name: MODEL_ROOT
  value: {{ .Values.model.root | quote }}
{{- end }}

{{/* How a fetch trusts and trims the volume's content store (the loader and the prefetcher). */}}
{{- define "ai-app.cacheEnv" -}}
- name: MODEL_CACHE_KEEP
  value: {{ .Values.model.cache.keep | int | quote }}
- name: MODEL_CACHE_MAX_BYTES
  value: {{ .Values.model.cache.maxBytes | int64 | quote }}
- name: MODEL_CACHE_VERIFY
  value: {{ .Values.model.cache.verify | quote }}
{{- end }}

{{/* What only the loader needs: where the models are and how to reach them. */}}
{{- define "ai-app.storageEnv" -}}
- name: MODEL_CONTAINER
  value: {{ include "ai-app.string" (list "storage.container" .Values.storage.container) | quote }}
- name: AZURE_STORAGE_ACCOUNT_URL
  value: {{ .Values.storage.accountUrl | quote }}
- name: AZURE_STORAGE_AUTH
  value: {{ include "ai-app.loaderAuth" . | quote }}
{{- end }}

{{/* The loader's Blob credential for auth.mode (the Deployment's loader and the prefetcher). */}}
{{- define "ai-app.authEnv" -}}
{{- if eq .Values.auth.mode "workloadIdentity" -}}
# Set here, not only on the ServiceAccount, so any ServiceAccount works
# (serviceAccount.create=false): the webhook keeps env that is already set.
- name: AZURE_CLIENT_ID
  value: {{ .Values.auth.workloadIdentity.clientId | quote }}
{{- else if eq .Values.auth.mode "existingSecret" -}}
- name: AZURE_STORAGE_CONNECTION_STRING
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret.name }}
      key: {{ .Values.auth.existingSecret.connectionStringKey }}
      optional: true
- name: AZURE_STORAGE_SAS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret.name }}
      key: {{ .Values.auth.existingSecret.sasTokenKey }}
      optional: true
{{- end }}
{{- end }}

{{/* The app's settings (gunicorn and request limits), each an exact integer string. */}}
{{- define "ai-app.appEnv" -}}
- name: APP_HOST
  value: {{ .Values.app.listenAddress | quote }}
- name: APP_PORT
  value: {{ .Values.app.port | int64 | quote }}
- name: METRICS_PORT
  value: {{ .Values.metrics.port | int64 | quote }}
- name: WEB_CONCURRENCY
  value: {{ .Values.app.workers | int64 | quote }}
- name: GUNICORN_THREADS
  value: {{ .Values.app.threads | int64 | quote }}
- name: GUNICORN_GRACEFUL_TIMEOUT
  value: {{ .Values.app.gracefulTimeoutSeconds | int64 | quote }}
- name: SHUTDOWN_DRAIN_SECONDS
  value: {{ .Values.app.drainSeconds | int64 | quote }}
- name: MAX_BATCH_SIZE
  value: {{ .Values.app.maxBatchSize | int64 | quote }}
- name: MAX_REQUEST_BYTES
  value: {{ .Values.app.maxRequestBytes | int64 | quote }}
- name: PROMETHEUS_MULTIPROC_DIR
  value: /run/prometheus
{{- end }}

{{/* The fewest pods the release runs: replicaCount, or the HPA's minReplicas. */}}
{{- define "ai-app.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
replicas: replicaCount; with autoscaling, the live Deployment's own count (so an upgrade never
scales it), or minReplicas on a first install. Leaving the field out instead would drop a
running release to 1 pod when autoscaling is turned on (helm removes it, Kubernetes defaults
it: the documented HPA migration caveat, helm/helm#12650).
*/}}
{{- define "ai-app.replicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- $live := lookup "apps/v1" "Deployment" .Release.Namespace (include "ai-app.fullname" .) }}
{{- if and $live $live.spec.replicas }}{{ $live.spec.replicas }}{{ else }}{{ .Values.autoscaling.minReplicas }}{{ end }}
{{- else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
A container's resources, requesting an emptyDir model volume as ephemeral storage unless set:
the scheduler then places the pod only where the model fits, instead of evicting it after the
download (an emptyDir's sizeLimit reserves nothing). The other volume types hold the model
outside the node's ephemeral storage, so nothing is added. Call with (list resources root).
*/}}
{{- define "ai-app.resources" -}}
{{- $resources := deepCopy (index . 0) }}
{{- $volume := (index . 1).Values.model.volume }}
{{- $requests := get $resources "requests" | default dict }}
{{- if and (eq $volume.type "emptyDir") (not (hasKey $requests "ephemeral-storage")) }}
{{- $_ := set $requests "ephemeral-storage" (include "ai-app.quantity" $volume.sizeLimit) }}
{{- end }}
{{- $_ := set $resources "requests" $requests }}
{{- toYaml $resources }}
{{- end }}

{{/*
The model volume (model.volume.type; the schema checks each type's settings). The loader
mounts it read-write and the app read-only, whatever the type.
*/}}
{{- define "ai-app.modelVolume" -}}
{{- $volume := .Values.model.volume }}
- name: model
{{- if eq $volume.type "emptyDir" }}
  emptyDir:
    sizeLimit: {{ include "ai-app.quantity" $volume.sizeLimit }}
{{- else if eq $volume.type "ephemeral" }}
  # A claim per pod, made when the pod starts and deleted with it.
  ephemeral:
    volumeClaimTemplate:
      metadata:
        labels:
          {{- include "ai-app.selectorLabels" . | nindent 10 }}
      spec:
        accessModes: [ReadWriteOnce]
        {{- with $volume.storageClassName }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ include "ai-app.quantity" $volume.size }}
{{- else if eq $volume.type "persistentVolumeClaim" }}
  persistentVolumeClaim:
    claimName: {{ $volume.claimName }}
{{- else if eq $volume.type "hostPath" }}
  # Must exist, writable by the loader's UID: a directory the kubelet created would be
  # root's, which the non-root loader can't write.
  hostPath:
    path: {{ $volume.hostPath }}
    type: Directory
{{- end }}
{{- end }}

{{/* model.prefetch.stage as the prefetcher's PREFETCH_STAGE: "VERSION[@DIGEST] ...". */}}
{{- define "ai-app.prefetchStage" -}}
{{- $staged := list }}
{{- range $index, $entry := . }}
{{- $version := include "ai-app.string" (list (printf "model.prefetch.stage[%d].version" $index) $entry.version) }}
{{- $staged = append $staged (ternary (printf "%s@%s" $version $entry.digest) $version (not (empty $entry.digest))) }}
{{- end }}
{{- join " " $staged }}
{{- end }}
