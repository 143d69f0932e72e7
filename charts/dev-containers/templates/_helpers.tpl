{{- define "dev-containers.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: dev-containers
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: homelab
{{- end }}

{{/* A container entry with chart defaults filled in (explicit keys win). YAML; use with fromYaml. */}}
{{- define "dev-containers.entry" -}}
{{- $e := deepCopy .entry -}}
{{- $root := .root -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString $e.name)) }}
{{- fail (printf "containers: name %q must be a DNS label" (toString $e.name)) }}
{{- end }}
{{- $_ := set $e "resources" (default $root.Values.resources $e.resources) -}}
{{- $_ := set $e "workspace" (merge (default dict $e.workspace) (deepCopy $root.Values.workspace)) -}}
{{- toYaml $e }}
{{- end }}
