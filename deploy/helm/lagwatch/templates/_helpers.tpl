{{/* The name of every object: the release's, with "lagwatch" unless it says so. */}}
{{- define "lagwatch.fullname" -}}
{{- if contains "lagwatch" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-lagwatch" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lagwatch.selector" -}}
app.kubernetes.io/name: lagwatch
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lagwatch.labels" -}}
{{ include "lagwatch.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Refuse values that would run lagwatch wrongly. */}}
{{- define "lagwatch.checks" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.config.ha) -}}
{{- fail (printf "replicaCount is %d but config.ha is not set: each replica would watch and page for every group on its own; set config.ha (README, \"Replicas sharing the watching\") or replicaCount: 1" (int .Values.replicaCount)) -}}
{{- end -}}
{{- end -}}
