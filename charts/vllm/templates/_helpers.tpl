{{/* Chart label value. */}}
{{- define "vllm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of this chart carries. */}}
{{- define "vllm.labels" -}}
helm.sh/chart: {{ include "vllm.chart" . }}
app.kubernetes.io/name: vllm
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: homelab
{{- end }}

{{/*
A model entry with the chart defaults filled in. Explicit keys win, including zero values (replicas: 0 is
the gaming-mode setting and must never fall back to the default of 1), which sprig's merge would not keep.
Returns YAML; use with fromYaml.
*/}}
{{- define "vllm.model" -}}
{{- $m := .model -}}
{{- $d := .defaults -}}
{{- $out := dict -}}
{{- range $k, $v := $d }}{{- $_ := set $out $k $v }}{{- end }}
{{- range $k, $v := $m }}{{- $_ := set $out $k $v }}{{- end }}
{{- toYaml $out }}
{{- end }}
