{{- define "dev-proxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: dev-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: homelab
{{- end }}

{{- define "dev-proxy.selector" -}}
app.kubernetes.io/name: dev-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* nginx.conf rendered from targets and ssh_streams. */}}
{{- define "dev-proxy.nginxConf" -}}
# Rendered by charts/dev-proxy from the release's targets and ssh_streams. Edit those, not this file.
# The official nginx image has the stream module compiled in (no load_module line needed).
worker_processes 1;
pid /var/run/nginx/nginx.pid;
error_log /dev/stderr notice;

events {
    worker_connections 1024;
}

http {
    access_log /dev/stdout;
    server_tokens off;
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }

    server {
        listen 8080 default_server;
        server_name _;

        location = /healthz {
            access_log off;
            default_type text/plain;
            return 200 "ok\n";
        }
{{- range .Values.targets }}
{{- if not (regexMatch "^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$" (toString .path)) }}
{{- fail (printf "targets: path %q must start with / and not end with /" (toString .path)) }}
{{- end }}
{{- if not (regexMatch "^[A-Za-z0-9.-]+$" (toString .host)) }}
{{- fail (printf "targets[%s]: host %q is not a host name or IPv4 address" .path (toString .host)) }}
{{- end }}

        # {{ .path }} -> {{ .host }}:{{ .port }}
        location = {{ .path }} {
            return 301 {{ .path }}/;
        }
        location ^~ {{ .path }}/ {
            proxy_pass http://{{ .host }}:{{ .port }}{{ if .stripPrefix }}/{{ else }}{{ .path }}/{{ end }};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Prefix {{ .path }};
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 300s;
        }
{{- end }}

        # anything not listed above, including a target that was removed
        location / {
            return 404;
        }
    }
}

stream {
{{- range .Values.ssh_streams }}
{{- if or (lt (int .listen) 1024) (gt (int .listen) 65535) }}
{{- fail (printf "ssh_streams: listen %v must be a port from 1024 to 65535" .listen) }}
{{- end }}
    upstream ssh_{{ .listen }} {
        server {{ .service }}:{{ .port }};
    }
    server {
        listen {{ .listen }};
        proxy_pass ssh_{{ .listen }};
        proxy_connect_timeout 10s;
        # SSH sessions idle for long stretches (VS Code Remote keeps one open)
        proxy_timeout 12h;
    }
{{- end }}
}
{{- end }}
