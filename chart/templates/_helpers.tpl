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
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
app.kubernetes.io/managed-by: {{ .Release.Service }}
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

{{/* repository:tag or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "ai-app.image" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (default .appVersion .tag) }}
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
{{- if and (eq .Values.auth.mode "existingSecret") (not .Values.auth.existingSecret.name) }}
{{- fail "auth.existingSecret.name is required when auth.mode=existingSecret (a Secret holding AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_SAS_TOKEN)" }}
{{- end }}
{{- end }}
