"""Every table of the guide, one module per aggregate.  Importing this package registers all."""

from aisha_server.db.models.campaigns import AiCampaign
from aisha_server.db.models.care import CareAuditLog, CareState
from aisha_server.db.models.crm import Account, Activity, Contact, Lead, Note, Opportunity
from aisha_server.db.models.deliveries import CareTriggerDelivery
from aisha_server.db.models.identity import (
    ApiKey,
    AuthRefreshToken,
    AuthSession,
    Employee,
    PasswordResetToken,
    Permission,
    RolePermission,
    User,
    UserInvitation,
)
from aisha_server.db.models.sync import SyncChange, SyncConflict, SyncCounter, SyncMutation
from aisha_server.db.models.system import SystemLog, SystemSetting
from aisha_server.db.models.tenancy import (
    CustomField,
    EntityLabel,
    ModuleSetting,
    Tenant,
    TenantIntegration,
    Webhook,
)
from aisha_server.db.models.workflows import Workflow, WorkflowExecution

__all__ = [
    "Account",
    "Activity",
    "AiCampaign",
    "ApiKey",
    "AuthRefreshToken",
    "AuthSession",
    "CareAuditLog",
    "CareState",
    "CareTriggerDelivery",
    "Contact",
    "CustomField",
    "Employee",
    "EntityLabel",
    "Lead",
    "ModuleSetting",
    "Note",
    "Opportunity",
    "PasswordResetToken",
    "Permission",
    "RolePermission",
    "SyncChange",
    "SyncConflict",
    "SyncCounter",
    "SyncMutation",
    "SystemLog",
    "SystemSetting",
    "Tenant",
    "TenantIntegration",
    "User",
    "UserInvitation",
    "Webhook",
    "Workflow",
    "WorkflowExecution",
]
