"""SQL snippets of the System Administrator Guide, verbatim but for placeholders.

Placeholders ('tenant-uuid', 'YOUR_TENANT_UUID', 'campaign-uuid', ...) are replaced by real
values of the test's seed; nothing else is changed.  They must run unchanged on PostgreSQL.
"""

from __future__ import annotations

# Statements that write (guide 3.2, 3.4, 4.4); run in order.
GUIDE_WRITES = [
    # 3.2 Custom Permissions
    """INSERT INTO permissions (name, description, resource, action)
VALUES
  ('view_sensitive_data', 'View financial information', 'accounts', 'read'),
  ('bulk_delete', 'Perform bulk delete operations', '*', 'delete')""",
    """INSERT INTO role_permissions (role, permission_id)
SELECT 'financial_manager', id
FROM permissions
WHERE name = 'view_sensitive_data'""",
    # 3.4 API Key Authentication
    """INSERT INTO api_keys (key, tenant_id, name, permissions, expires_at)
VALUES ('550e8400-e29b-41d4-a716-446655440000', '{tenant}', 'Integration Key', '["read:contacts"]', '2026-01-01')""",
    # 4.4 Module Settings
    """INSERT INTO module_settings (tenant_id, module_name, is_enabled, settings)
VALUES
  ('{tenant}', 'opportunities', true, '{{"stages":["prospect","qualified","proposal","negotiation","closed"]}}'),
  ('{tenant}', 'workflows', true, '{{"max_workflows":50}}'),
  ('{tenant}', 'document_processing', false, NULL),
  ('{tenant}', 'realtime_voice', true, '{{"ptt_enabled":true,"auto_play_responses":true}}')""",
    # 4.4 Custom Fields
    """INSERT INTO custom_fields (tenant_id, entity, field_name, field_type, options)
VALUES
  ('{tenant}', 'contact', 'referral_source', 'select', '["Website","Referral","Event","Other"]'),
  ('{tenant}', 'account', 'annual_contract_value', 'currency', NULL),
  ('{tenant}', 'lead', 'qualification_score', 'number', NULL)""",
    # 4.4 Entity Label Customization
    """INSERT INTO entity_labels (tenant_id, entity_key, custom_label, custom_label_singular)
VALUES ('{tenant}', 'accounts', 'Clients', 'Client')""",
]

# Read-only statements (2.4, 4.3, 9.5, 9.6, 9.7, 13.x).
GUIDE_READS = [
    """SELECT table_name
FROM information_schema.tables
WHERE table_schema = 'public'
ORDER BY table_name""",
    """SELECT c1.id as contact_a, c2.id as contact_b
FROM contacts c1
JOIN contacts c2 ON c1.id = c2.id
WHERE c1.tenant_id != c2.tenant_id""",
    """SELECT tablename, rowsecurity
FROM pg_tables
WHERE schemaname = 'public'
  AND rowsecurity = false""",
    """SELECT * FROM contacts WHERE email LIKE '%@acme.com'""",
    """SELECT metadata->>'ai_email_config'
FROM ai_campaigns WHERE id = '{uuid}'""",
    """SELECT * FROM tenant_integrations
WHERE id = '{uuid}' AND is_active = true""",
    """SELECT
  id,
  name,
  status,
  metadata->'error' as error_message,
  metadata->'lifecycle'->>'failed_at' as failed_at
FROM ai_campaigns
WHERE status = 'failed'""",
    """SELECT
    id,
    related_type,
    subject,
    created_at,
    metadata->'call_sid' as call_sid,
    metadata->'duration' as duration,
    metadata->'sentiment' as sentiment
FROM activities
WHERE type = 'call'
ORDER BY created_at DESC
LIMIT 10""",
    """SELECT
    id,
    type,
    subject,
    status,
    due_date,
    metadata->'priority' as priority,
    metadata->'auto_created' as auto_created
FROM activities
WHERE metadata->>'auto_created' = 'true'
ORDER BY created_at DESC
LIMIT 20""",
    """SELECT
    id,
    subject,
    status,
    completed_at,
    metadata->'completion_note' as what_was_done,
    metadata->'auto_completed' as auto_completed
FROM activities
WHERE metadata->>'auto_completed' = 'true'
ORDER BY completed_at DESC
LIMIT 20""",
    """SELECT
    content,
    metadata->'action_items' as action_items
FROM notes
WHERE related_id = '{uuid}'
ORDER BY created_at DESC
LIMIT 1""",
    """SELECT * FROM activities
WHERE related_id = '{uuid}'
  AND status = 'pending'
  AND type IN ('email', 'call', 'meeting')
ORDER BY created_at DESC""",
    """SELECT * FROM tenant_integrations
WHERE tenant_id = '{tenant}'
  AND integration_type = 'openai'
  AND is_active = true""",
    """SELECT * FROM system_settings
WHERE setting_key = 'openai_api_key'""",
    """SELECT
    entity_type,
    entity_id,
    previous_state,
    current_state,
    transition_reason,
    transitioned_at
FROM care_states
WHERE tenant_id = '{tenant}'
ORDER BY transitioned_at DESC
LIMIT 20""",
    """SELECT
    event_type,
    entity_type,
    entity_id,
    reason,
    metadata->>'trigger_type' as trigger,
    created_at
FROM care_audit_log
WHERE event_type = 'ESCALATION_DETECTED'
AND tenant_id = '{tenant}'
ORDER BY created_at DESC
LIMIT 50""",
    """SELECT
    metadata->>'action_origin' as origin,
    metadata->>'policy_gate_result' as decision,
    reason,
    COUNT(*) as count
FROM care_audit_log
WHERE event_type IN ('ACTION_ALLOWED', 'ACTION_BLOCKED')
AND created_at > NOW() - INTERVAL '24 hours'
GROUP BY origin, decision, reason
ORDER BY count DESC""",
    """SELECT
    metadata->>'event_id' as event_id,
    metadata->>'trigger_type' as trigger,
    metadata->>'http_status' as status,
    metadata->>'attempt' as attempt,
    created_at
FROM care_audit_log
WHERE metadata->>'action_type' = 'workflow_trigger'
ORDER BY created_at DESC
LIMIT 100""",
    """SELECT
    DATE(created_at) as date,
    COUNT(*) as escalations
FROM care_audit_log
WHERE event_type = 'ESCALATION_DETECTED'
AND tenant_id = '{tenant}'
AND created_at > NOW() - INTERVAL '30 days'
GROUP BY DATE(created_at)
ORDER BY date DESC""",
    """SELECT
    event_type,
    COUNT(*) as count,
    ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (), 2) as percentage
FROM care_audit_log
WHERE event_type IN ('ACTION_ALLOWED', 'ACTION_BLOCKED')
AND tenant_id = '{tenant}'
AND created_at > NOW() - INTERVAL '7 days'
GROUP BY event_type""",
    """SELECT
    reason,
    metadata->>'trigger_type' as trigger,
    COUNT(*) as count
FROM care_audit_log
WHERE event_type = 'ESCALATION_DETECTED'
AND tenant_id = '{tenant}'
AND created_at > NOW() - INTERVAL '7 days'
GROUP BY reason, trigger
ORDER BY count DESC
LIMIT 10""",
    """SELECT entity_type, current_state, COUNT(*)
FROM care_states
WHERE updated_at > NOW() - INTERVAL '24 hours'
GROUP BY entity_type, current_state""",
    """SELECT
    TO_CHAR(created_at, 'YYYY-MM-DD HH24:MI:SS') as time,
    event_type,
    entity_type,
    reason,
    metadata->>'action_origin' as origin,
    metadata->>'policy_gate_result' as decision
FROM care_audit_log
ORDER BY created_at DESC
LIMIT 100""",
    """SELECT
    we.id,
    we.workflow_id,
    w.name as workflow_name,
    we.status,
    we.trigger_payload->>'trigger_type' as care_trigger,
    we.trigger_payload->>'entity_type' as entity_type,
    we.started_at,
    we.completed_at
FROM workflow_execution we
JOIN workflow w ON w.id = we.workflow_id
WHERE we.trigger_payload->>'type' = 'care.escalation_detected'
ORDER BY we.started_at DESC
LIMIT 50""",
    """SELECT
    status,
    COUNT(*) as count,
    ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (), 2) as percentage
FROM workflow_execution
WHERE trigger_payload->>'type' = 'care.escalation_detected'
AND started_at > NOW() - INTERVAL '7 days'
GROUP BY status""",
    """SELECT id, name, status FROM workflow WHERE id = '{uuid}'""",
    """SELECT trigger_payload, execution_log
FROM workflow_execution
WHERE id = '{uuid}'""",
    # 13.7 retention
    """DELETE FROM care_audit_log
WHERE created_at < NOW() - INTERVAL '90 days'""",
]
