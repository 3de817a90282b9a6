"""Every metric name the suite exports, in one place: ``npusuite_<component>_<what>_<unit>``.

Prometheus' naming guide: base units (seconds, bytes, ratio), ``_total`` on
counters (prometheus-client appends it to the exposition of a ``Counter``
named without it; the constants here are the exposed names), a unit suffix
on gauges and histograms.  Other modules import these constants rather than
spelling names; docs/observability.md lists each with its type, labels,
level and meaning, and tests/platform/observability/test_names.py checks the
two agree.

Levels: ``infra`` (process, host, device), ``framework`` (queues, batches,
forward and layer latency, KV cache), ``model`` (score and feature drift,
decision rates, LLM entropy), ``business`` (throughput, errors, SLAs,
backlog, confirmed false rejects).
"""

from __future__ import annotations

PREFIX = "npusuite"

# ---- infrastructure (every long-running process) ---------------------------------------------
# prometheus-client's ProcessCollector with namespace "npusuite" writes these three (and
# npusuite_process_virtual_memory_bytes, _start_time_seconds, _max_fds):
PROCESS_CPU_SECONDS = "npusuite_process_cpu_seconds_total"
PROCESS_RESIDENT_MEMORY_BYTES = "npusuite_process_resident_memory_bytes"
PROCESS_OPEN_FDS = "npusuite_process_open_fds"
PROCESS_GC_PAUSE_SECONDS = "npusuite_process_gc_pause_seconds"
HOST_CPU_USAGE_RATIO = "npusuite_host_cpu_usage_ratio"
HOST_MEMORY_TOTAL_BYTES = "npusuite_host_memory_total_bytes"
HOST_MEMORY_AVAILABLE_BYTES = "npusuite_host_memory_available_bytes"
HOST_DISK_FREE_BYTES = "npusuite_host_disk_free_bytes"
HOST_DISK_TOTAL_BYTES = "npusuite_host_disk_total_bytes"
DEVICE_UTILIZATION_RATIO = "npusuite_device_utilization_ratio"
DEVICE_MEMORY_USED_BYTES = "npusuite_device_memory_used_bytes"
DEVICE_MEMORY_TOTAL_BYTES = "npusuite_device_memory_total_bytes"
DEVICE_TEMPERATURE_CELSIUS = "npusuite_device_temperature_celsius"
DEVICE_POWER_WATTS = "npusuite_device_power_watts"

# ---- platform (npusuite platform serve) -------------------------------------------------------
PLATFORM_REQUESTS = "npusuite_platform_requests_total"
PLATFORM_REQUEST_ERRORS = "npusuite_platform_request_errors_total"
PLATFORM_QUEUE_LENGTH = "npusuite_platform_queue_length_requests"
PLATFORM_ROWS_COMPUTED = "npusuite_platform_rows_computed_total"
PLATFORM_BATCH_SIZE = "npusuite_platform_batch_size_rows"
PLATFORM_QUEUE_WAIT_SECONDS = "npusuite_platform_queue_wait_seconds"
PLATFORM_FORWARD_SECONDS = "npusuite_platform_forward_seconds"
PLATFORM_LAYER_SECONDS = "npusuite_platform_layer_seconds"
PLATFORM_MODEL_MEMORY_BYTES = "npusuite_platform_model_memory_bytes"
PLATFORM_MODEL_SWAPS = "npusuite_platform_model_swaps_total"
PLATFORM_MODEL_SWAP_SECONDS = "npusuite_platform_model_swap_seconds"
PLATFORM_MODEL_ALIAS_INFO = "npusuite_platform_model_alias_info"

# ---- LLM scheduler (framework and model level) ------------------------------------------------
LLM_TIME_TO_FIRST_TOKEN_SECONDS = "npusuite_llm_time_to_first_token_seconds"
LLM_INTER_TOKEN_SECONDS = "npusuite_llm_inter_token_seconds"
LLM_GENERATED_TOKENS = "npusuite_llm_generated_tokens_total"
LLM_ITERATION_TOKENS = "npusuite_llm_iteration_tokens"
LLM_KV_CACHE_USED_TOKENS = "npusuite_llm_kv_cache_used_tokens"
LLM_KV_CACHE_CAPACITY_TOKENS = "npusuite_llm_kv_cache_capacity_tokens"
LLM_TOKEN_ENTROPY_BITS = "npusuite_llm_token_entropy_bits"
LLM_ATTENTION_ENTROPY_BITS = "npusuite_llm_attention_entropy_bits"

# ---- fraud scorer (npusuite fraud run) --------------------------------------------------------
FRAUD_TRANSACTIONS = "npusuite_fraud_transactions_total"
FRAUD_DECISIONS = "npusuite_fraud_decisions_total"
FRAUD_DEAD_LETTERS = "npusuite_fraud_dead_letters_total"
FRAUD_LLM_ESCALATIONS = "npusuite_fraud_llm_escalations_total"
FRAUD_LLM_FALLBACKS = "npusuite_fraud_llm_fallbacks_total"
FRAUD_SCORE_LATENCY_SECONDS = "npusuite_fraud_score_latency_seconds"
FRAUD_KAFKA_COMMIT_SECONDS = "npusuite_fraud_kafka_commit_seconds"
FRAUD_BATCH_PHASE_SECONDS = "npusuite_fraud_batch_phase_seconds"
FRAUD_CONSUMER_LAG = "npusuite_fraud_consumer_lag_records"
FRAUD_PARTITIONS_ASSIGNED = "npusuite_fraud_partitions_assigned"
FRAUD_KAFKA_ABORTS = "npusuite_fraud_kafka_aborts_total"
FRAUD_KAFKA_PRODUCER_REPLACEMENTS = "npusuite_fraud_kafka_producer_replacements_total"
FRAUD_KAFKA_CLIENT_ERRORS = "npusuite_fraud_kafka_client_errors_total"
FRAUD_MODEL_SWAPS = "npusuite_fraud_model_swaps_total"
FRAUD_SHADOW_SCORES = "npusuite_fraud_shadow_scores_total"
FRAUD_SHADOW_SKIPPED = "npusuite_fraud_shadow_skipped_total"
FRAUD_RULE_HITS = "npusuite_fraud_rule_hits_total"
FRAUD_NOVELTY_ESCALATIONS = "npusuite_fraud_novelty_escalations_total"
FRAUD_STATE_RESTORE_SECONDS = "npusuite_fraud_state_restore_seconds"
FRAUD_SCORE = "npusuite_fraud_score"
FRAUD_SCORE_PSI = "npusuite_fraud_score_psi"
FRAUD_FEATURE_PSI = "npusuite_fraud_feature_psi"
FRAUD_DRIFT_WINDOW_RECORDS = "npusuite_fraud_drift_window_records"
FRAUD_SLA_SECONDS = 0.08  # the scoring SLA: npusuite_fraud_score_latency_seconds_bucket{le="0.08"}

# ---- inspection line (npusuite inspection run) ------------------------------------------------
INSPECTION_FRAMES = "npusuite_inspection_frames_total"
INSPECTION_DECISIONS = "npusuite_inspection_decisions_total"
INSPECTION_DECISION_SECONDS = "npusuite_inspection_decision_seconds"
INSPECTION_LATE_DECISIONS = "npusuite_inspection_late_decisions_total"
INSPECTION_FORWARD_SECONDS = "npusuite_inspection_forward_seconds"
INSPECTION_SCORE = "npusuite_inspection_score"
INSPECTION_SCORE_PSI = "npusuite_inspection_score_psi"
INSPECTION_ERRORS = "npusuite_inspection_errors_total"
INSPECTION_DROPPED_FRAMES = "npusuite_inspection_dropped_frames_total"

# ---- edge agent -------------------------------------------------------------------------------
EDGE_OUTBOX_PENDING_RECORDS = "npusuite_edge_outbox_pending_records"
EDGE_OUTBOX_PENDING_BYTES = "npusuite_edge_outbox_pending_bytes"
EDGE_OUTBOX_DROPPED = "npusuite_edge_outbox_dropped_total"
EDGE_OUTBOX_NG_OVER_BUDGET = "npusuite_edge_outbox_ng_over_budget_total"
EDGE_OUTBOX_DELIVERED = "npusuite_edge_outbox_delivered_total"
EDGE_OUTBOX_DEAD_LETTERS = "npusuite_edge_outbox_dead_letters_total"
EDGE_OUTBOX_WRITE_SECONDS = "npusuite_edge_outbox_write_seconds"

# ---- fleet server ---------------------------------------------------------------------------
FLEET_DEVICE_LAST_SEEN = "npusuite_fleet_device_last_seen_timestamp_seconds"

# ---- review app -------------------------------------------------------------------------------
REVIEW_SLA_BREACHED_OPEN_CASES = "npusuite_review_sla_breached_open_cases"
REVIEW_BACKLOG_CASES = "npusuite_review_backlog_cases"
REVIEW_CLOSED_CASES = "npusuite_review_closed_cases_total"


def counter_base(name: str) -> str:
    """The name to give prometheus-client's ``Counter`` (it appends ``_total`` itself)."""
    return name.removesuffix("_total")
