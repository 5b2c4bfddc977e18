{{/*
The chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "connector-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified name for the release's objects: the release name, suffixed with the chart
name unless it already holds it.
*/}}
{{- define "connector-operator.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "connector-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "connector-operator.labels" -}}
helm.sh/chart: {{ include "connector-operator.chart" . }}
{{ include "connector-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: connector-operator
{{- end }}

{{/*
Selector labels: stable across upgrades.
*/}}
{{- define "connector-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connector-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the manager runs as.
*/}}
{{- define "connector-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connector-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The manager image.
*/}}
{{- define "connector-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The Secret holding the API's certificate (tls.crt, tls.key): api.tls.secretName, or the
Certificate's default name when cert-manager issues it; empty when the API serves a
self-signed certificate.
*/}}
{{- define "connector-operator.apiTLSSecretName" -}}
{{- if .Values.api.tls.secretName }}
{{- .Values.api.tls.secretName }}
{{- else if .Values.api.tls.certManager.enabled }}
{{- printf "%s-api-tls" (include "connector-operator.fullname" .) }}
{{- end }}
{{- end }}
