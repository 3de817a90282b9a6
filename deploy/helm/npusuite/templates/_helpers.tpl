{{/*
Shared pieces of every workload.  Rules:
- names are "<release>-<component>" (npusuite.name), labels follow app.kubernetes.io/*;
- every container runs the one image, `npusuite <command> ...`, as non-root with a read-only
  root filesystem; writable places are emptyDir /tmp and the volumes a component declares;
- pods listen on 0.0.0.0 *inside the pod* (`--host 0.0.0.0`): the npusuite default is
  127.0.0.1, which a Service or a kubelet probe cannot reach;
- credentials come only from Secrets (secretKeyRef), never from values.
*/}}

{{- define "npusuite.name" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "npusuite.selectorLabels" -}}
app.kubernetes.io/name: npusuite
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "npusuite.labels" -}}
{{ include "npusuite.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "npusuite.image" -}}
{{- $v := .Values.image -}}
{{- if not (has $v.variant (list "cpu" "cuda" "npu")) -}}
{{- fail (printf "image.variant must be cpu, cuda or npu, not %q" $v.variant) -}}
{{- end -}}
{{- printf "%s:%s-%s" $v.repository (default .Chart.AppVersion $v.tag) $v.variant -}}
{{- end -}}

{{- define "npusuite.kafkaBootstrap" -}}
{{- required "kafka.bootstrap is required: an existing Kafka cluster's host:port[,host:port]" .Values.kafka.bootstrap -}}
{{- end -}}

{{/* Pod spec fields every workload shares (indent 6 under a pod template's spec). */}}
{{- define "npusuite.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container fields every workload shares (indent 10 under a container). */}}
{{- define "npusuite.containerCommon" -}}
image: {{ include "npusuite.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{/* The admin token env var, from its Secret. */}}
{{- define "npusuite.adminTokenEnv" -}}
- name: NPUSUITE_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.adminToken.existingSecret }}
      key: {{ .Values.adminToken.key }}
{{- end -}}

{{/* NPUSUITE_HOME points the suite's caches and local state at the writable /tmp. */}}
{{- define "npusuite.homeEnv" -}}
- name: NPUSUITE_HOME
  value: /tmp/npusuite
- name: HOME
  value: /tmp
{{- end -}}

{{- define "npusuite.modelsVolume" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ required "models.existingClaim is required: a PVC holding the model repository" .Values.models.existingClaim }}
    readOnly: true
{{- end -}}

{{- define "npusuite.modelsMount" -}}
- name: models
  mountPath: {{ .Values.models.mountPath }}
  readOnly: true
{{- end -}}
