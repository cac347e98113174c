{{- define "streamscore.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streamscore.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- /* Pod selector of one component: (list $ "worker") */ -}}
{{- define "streamscore.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "streamscore.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "streamscore.sasl" -}}
{{- hasPrefix "SASL_" .Values.kafka.securityProtocol -}}
{{- end -}}

{{- define "streamscore.tls" -}}
{{- hasSuffix "SSL" .Values.kafka.securityProtocol -}}
{{- end -}}

{{- /* The schema registry's TLS files (schemaRegistry.tls), with a registry */ -}}
{{- define "streamscore.registryTls" -}}
{{- and .Values.schemaRegistry.url .Values.schemaRegistry.tls.secretName | empty | not -}}
{{- end -}}

{{- define "streamscore.sessionTimeout" -}}
{{- index .Values.config "STREAMSCORE_SESSION_TIMEOUT_S" | default "10" | float64 -}}
{{- end -}}

{{- /* lagThreshold = podEventsPerSecond x lagSeconds (values.yaml, docs/operations/lag-and-scaling.md) */ -}}
{{- define "streamscore.lagThreshold" -}}
{{- mulf .Values.autoscaling.podEventsPerSecond .Values.autoscaling.lagSeconds | floor | int64 -}}
{{- end -}}

{{- /* Settings that cannot work fail rendering with what to change. */ -}}
{{- define "streamscore.validate" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required" -}}
{{- end -}}
{{- if not $v.secrets.name -}}
{{- fail "secrets.name is required: an existing Secret holding STREAMSCORE_SECRET (see values.yaml)" -}}
{{- end -}}
{{- $partitions := int $v.topics.inputPartitions -}}
{{- if $v.autoscaling.enabled -}}
{{- if gt (int $v.autoscaling.maxReplicaCount) $partitions -}}
{{- fail (printf "autoscaling.maxReplicaCount (%d) is above topics.inputPartitions (%d): a pod beyond one per partition holds none and never gets ready" (int $v.autoscaling.maxReplicaCount) $partitions) -}}
{{- end -}}
{{- if or (lt (int $v.autoscaling.minReplicaCount) 1) (gt (int $v.autoscaling.minReplicaCount) (int $v.autoscaling.maxReplicaCount)) -}}
{{- fail "autoscaling.minReplicaCount must be at least 1 and at most autoscaling.maxReplicaCount" -}}
{{- end -}}
{{- if lt (int64 (include "streamscore.lagThreshold" .)) 1 -}}
{{- fail "autoscaling.podEventsPerSecond x autoscaling.lagSeconds must be at least 1" -}}
{{- end -}}
{{- else if gt (int $v.worker.replicas) $partitions -}}
{{- fail (printf "worker.replicas (%d) is above topics.inputPartitions (%d)" (int $v.worker.replicas) $partitions) -}}
{{- end -}}
{{- $protocol := $v.kafka.securityProtocol -}}
{{- if not (has $protocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) -}}
{{- fail (printf "kafka.securityProtocol %q: use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL" $protocol) -}}
{{- end -}}
{{- if eq (include "streamscore.sasl" .) "true" -}}
{{- if not (has $v.kafka.sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" $protocol) -}}
{{- end -}}
{{- if not $v.kafka.sasl.username -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.username" $protocol) -}}
{{- end -}}
{{- else if or $v.kafka.sasl.mechanism $v.kafka.sasl.username -}}
{{- fail (printf "kafka.sasl is set, but kafka.securityProtocol=%s ignores it" $protocol) -}}
{{- end -}}
{{- if and $v.kafka.tls.secretName (ne (include "streamscore.tls" .) "true") -}}
{{- fail (printf "kafka.tls.secretName is set, but kafka.securityProtocol=%s ignores it" $protocol) -}}
{{- end -}}
{{- if ne (empty $v.kafka.tls.certKey) (empty $v.kafka.tls.keyKey) -}}
{{- fail "a client certificate needs both kafka.tls.certKey and kafka.tls.keyKey" -}}
{{- end -}}
{{- if and (or $v.kafka.tls.certKey $v.kafka.tls.keyKey) (not $v.kafka.tls.secretName) -}}
{{- fail "kafka.tls.certKey and keyKey need kafka.tls.secretName" -}}
{{- end -}}
{{- $registry := $v.schemaRegistry -}}
{{- range $name := list "inputFormat" "outputFormat" -}}
{{- $format := index $registry $name | toString -}}
{{- if not (has $format (list "json" "json-schema" "avro" "protobuf")) -}}
{{- fail (printf "schemaRegistry.%s %q: use json, json-schema, avro or protobuf" $name $format) -}}
{{- end -}}
{{- if and (ne $format "json") (not $registry.url) -}}
{{- fail (printf "schemaRegistry.%s=%s needs schemaRegistry.url (a registry serving the Confluent API)" $name $format) -}}
{{- end -}}
{{- end -}}
{{- if not $registry.url -}}
{{- if $registry.basicAuth -}}
{{- fail "schemaRegistry.basicAuth is set, but schemaRegistry.url is empty (no registry)" -}}
{{- end -}}
{{- if $registry.tls.secretName -}}
{{- fail "schemaRegistry.tls.secretName is set, but schemaRegistry.url is empty (no registry)" -}}
{{- end -}}
{{- else if and $registry.tls.secretName (not (hasPrefix "https://" (lower $registry.url))) -}}
{{- fail (printf "schemaRegistry.tls.secretName is set, but schemaRegistry.url %q is not https" $registry.url) -}}
{{- end -}}
{{- if and $registry.basicAuth (not $v.secrets.schemaRegistryUserInfoKey) -}}
{{- fail "schemaRegistry.basicAuth needs secrets.schemaRegistryUserInfoKey (the key of user:password in secrets.name)" -}}
{{- end -}}
{{- if ne (empty $registry.tls.certKey) (empty $registry.tls.keyKey) -}}
{{- fail "a client certificate needs both schemaRegistry.tls.certKey and schemaRegistry.tls.keyKey" -}}
{{- end -}}
{{- if and (or $registry.tls.certKey $registry.tls.keyKey) (not $registry.tls.secretName) -}}
{{- fail "schemaRegistry.tls.certKey and keyKey need schemaRegistry.tls.secretName" -}}
{{- end -}}
{{- if not (has $v.processingGuarantee (list "at_least_once" "exactly_once")) -}}
{{- fail "processingGuarantee: at_least_once or exactly_once" -}}
{{- end -}}
{{- $managed := list "STREAMSCORE_APP_ID" "STREAMSCORE_INPUT_TOPIC" "STREAMSCORE_PARTITIONS" "STREAMSCORE_PROCESSING_GUARANTEE" "STREAMSCORE_INSTANCE_ID" "STREAMSCORE_METRICS_PORT" "STREAMSCORE_MODEL_DIR" "STREAMSCORE_DATA_DIR" "STREAMSCORE_SECRET" "STREAMSCORE_PREVIOUS_SECRETS" -}}
{{- range $key, $_ := $v.config -}}
{{- if not (hasPrefix "STREAMSCORE_" $key) -}}
{{- fail (printf "config.%s: only STREAMSCORE_* settings go in config (kafka.* sets the KAFKA_* ones)" $key) -}}
{{- end -}}
{{- if or (hasPrefix "STREAMSCORE_SCHEMA_REGISTRY_" $key) (has $key (list "STREAMSCORE_INPUT_FORMAT" "STREAMSCORE_OUTPUT_FORMAT")) -}}
{{- fail (printf "config.%s is set by the chart from schemaRegistry (see values.yaml); secrets go in the Secret secrets.name" $key) -}}
{{- end -}}
{{- if has $key $managed -}}
{{- fail (printf "config.%s is set by the chart (see values.yaml); secrets go in the Secret secrets.name" $key) -}}
{{- end -}}
{{- end -}}
{{- $minGrace := addf (mulf 2 (include "streamscore.sessionTimeout" .)) 20 -}}
{{- range $name := list "worker" "outcomes" -}}
{{- $grace := (index $v $name).terminationGracePeriodSeconds -}}
{{- if lt (float64 $grace) $minGrace -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) is shorter than a worker's shutdown: at least 2 x STREAMSCORE_SESSION_TIMEOUT_S + 20 = %v" $name $grace $minGrace) -}}
{{- end -}}
{{- end -}}
{{- if not (has $v.model.registry (list "image" "volume" "modelImage")) -}}
{{- fail "model.registry: image, volume or modelImage" -}}
{{- end -}}
{{- if and (eq $v.model.registry "volume") (not $v.model.volume) -}}
{{- fail "model.registry=volume needs model.volume (a volume source)" -}}
{{- end -}}
{{- if and (eq $v.model.registry "modelImage") (not $v.model.modelImage.repository) -}}
{{- fail "model.registry=modelImage needs model.modelImage.repository" -}}
{{- end -}}
{{- if $v.model.uri -}}
{{- fail "model.uri (STREAMSCORE_MODEL_URI) is not read by this streamscore release: use model.registry volume or modelImage" -}}
{{- end -}}
{{- end -}}
