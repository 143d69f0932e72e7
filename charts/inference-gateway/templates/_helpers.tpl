{{- define "inference-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: inference-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: homelab
app: inference-gateway
{{- end }}

{{- define "inference-gateway.selector" -}}
app: inference-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* LiteLLM's config.yaml as a dict (rendered with toYaml). */}}
{{- define "inference-gateway.config" -}}
{{- $names := list }}
{{- $models := list }}
{{- range .Values.backends }}
{{- if not (has .tier (list "gpu" "cpu")) }}
{{- fail (printf "backends[%s]: tier must be gpu or cpu, not %q" .name (toString .tier)) }}
{{- end }}
{{- $t := get $.Values.timeouts .tier }}
{{- $params := dict "model" .model "api_base" .apiBase "timeout" $t.timeout "stream_timeout" $t.streamTimeout }}
{{- if eq .tier "gpu" }}{{- $_ := set $params "api_key" "none" }}{{- end }}
{{- $models = append $models (dict "model_name" .name "litellm_params" $params) }}
{{- $names = append $names .name }}
{{- end }}
{{- $fallbacks := list }}
{{- range $from := keys .Values.fallbacks | sortAlpha }}
{{- if not (has $from $names) }}{{- fail (printf "fallbacks: %q is not a backend name" $from) }}{{- end }}
{{- range $to := get $.Values.fallbacks $from }}
{{- if not (has $to $names) }}{{- fail (printf "fallbacks[%s]: %q is not a backend name" $from $to) }}{{- end }}
{{- end }}
{{- $fallbacks = append $fallbacks (dict $from (get $.Values.fallbacks $from)) }}
{{- end }}
{{- $router := dict "routing_strategy" .Values.router.routingStrategy "num_retries" .Values.router.numRetries "allowed_fails" .Values.router.allowedFails "cooldown_time" .Values.router.cooldownTime "timeout" (max (int .Values.timeouts.gpu.timeout) (int .Values.timeouts.cpu.timeout)) "fallbacks" $fallbacks }}
{{- if .Values.aliases }}{{- $_ := set $router "model_group_alias" .Values.aliases }}{{- end }}
{{- $general := dict "master_key" "os.environ/LITELLM_MASTER_KEY" "background_health_checks" .Values.healthCheck.enabled "health_check_interval" .Values.healthCheck.interval }}
{{- $litellm := dict "drop_params" true "num_retries" .Values.router.numRetries "request_timeout" .Values.timeouts.cpu.timeout }}
{{- $config := dict "model_list" $models "router_settings" $router "general_settings" $general "litellm_settings" $litellm }}
{{- toYaml (mergeOverwrite $config (deepCopy .Values.extraConfig)) }}
{{- end }}
