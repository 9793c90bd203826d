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
