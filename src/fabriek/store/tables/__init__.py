"""The database tables, as SQLAlchemy 2 typed mappings, one module per capability on one
shared base (`base`).

Rows are the store's shape of the domain; services convert them to domain values and API
bodies with named functions. Every change of the schema comes with an Alembic migration.
Every row class is importable from here, so that importing this package maps all tables
on the one `Base.metadata` (what Alembic and the tests compare against).
"""

from fabriek.store.tables.access import AllocationRow, CallRow, ChargeRow, ProposalRow, ReviewRow
from fabriek.store.tables.accounts import (
    PosixAccountRow,
    PosixGroupRow,
    SshCertificateRow,
    SshKeyRow,
    TermsAcceptanceRow,
    TermsRow,
)
from fabriek.store.tables.ai_act import (
    AiClassificationRow,
    AiJobReportRow,
    AiModelBaseRow,
    AiModelJobRow,
    AiModelRow,
    AiModelVersionRow,
    AiRiskAnswerRow,
    AiSystemRow,
    AiThresholdEventRow,
    SandboxDocumentRow,
    SandboxRow,
)
from fabriek.store.tables.audit import AuditHeadRow, AuditRow
from fabriek.store.tables.base import NAMING, Base, Timestamp, utcnow
from fabriek.store.tables.datasets import (
    DatasetGrantRow,
    DatasetRow,
    DatasetVersionRow,
    OrganisationKeyRow,
)
from fabriek.store.tables.endpoints import (
    EndpointKeyRow,
    EndpointReplicaRow,
    EndpointRow,
    EndpointUsageRow,
)
from fabriek.store.tables.energy import GridIntensityRow, HeatDemandRow, JobEnergyRow
from fabriek.store.tables.federation import (
    FederationOrderRow,
    FederationResourceRow,
    FederationUsageRow,
)
from fabriek.store.tables.identity import (
    ApiTokenRow,
    IdentityLinkOfferRow,
    MembershipRow,
    OidcLoginRow,
    OrganisationRow,
    ProjectRow,
    StaffRoleRow,
    UserIdentityRow,
    UserRow,
)
from fabriek.store.tables.jobs import JobEventRow, JobRow
from fabriek.store.tables.leadership import LeaseRow
from fabriek.store.tables.notifications import (
    NoticeSentRow,
    NotificationRow,
    NotificationSettingsRow,
)
from fabriek.store.tables.partners import PartnerJobRow
from fabriek.store.tables.sites import (
    InstallationRow,
    NodeGroupRow,
    SiteAgentReportRow,
    SiteAgentRow,
    SiteHarvestRow,
    SiteRow,
)
from fabriek.store.tables.support import (
    ArticleRow,
    ConsultationRow,
    ExpertAssignmentRow,
    ExpertiseRequestRow,
    ExpertRow,
    ExpertSkillRow,
    SupportAttachmentRow,
    SupportEventRow,
    SupportMailRow,
    SupportMessageRow,
    SupportTicketRow,
)

__all__ = [
    "NAMING",
    "AiClassificationRow",
    "AiJobReportRow",
    "AiModelBaseRow",
    "AiModelJobRow",
    "AiModelRow",
    "AiModelVersionRow",
    "AiRiskAnswerRow",
    "AiSystemRow",
    "AiThresholdEventRow",
    "AllocationRow",
    "ApiTokenRow",
    "ArticleRow",
    "AuditHeadRow",
    "AuditRow",
    "Base",
    "CallRow",
    "ChargeRow",
    "ConsultationRow",
    "DatasetGrantRow",
    "DatasetRow",
    "DatasetVersionRow",
    "EndpointKeyRow",
    "EndpointReplicaRow",
    "EndpointRow",
    "EndpointUsageRow",
    "ExpertAssignmentRow",
    "ExpertRow",
    "ExpertSkillRow",
    "ExpertiseRequestRow",
    "FederationOrderRow",
    "FederationResourceRow",
    "FederationUsageRow",
    "GridIntensityRow",
    "HeatDemandRow",
    "IdentityLinkOfferRow",
    "InstallationRow",
    "JobEnergyRow",
    "JobEventRow",
    "JobRow",
    "LeaseRow",
    "MembershipRow",
    "NodeGroupRow",
    "NoticeSentRow",
    "NotificationRow",
    "NotificationSettingsRow",
    "OidcLoginRow",
    "OrganisationKeyRow",
    "OrganisationRow",
    "PartnerJobRow",
    "PosixAccountRow",
    "PosixGroupRow",
    "ProjectRow",
    "ProposalRow",
    "ReviewRow",
    "SandboxDocumentRow",
    "SandboxRow",
    "SiteAgentReportRow",
    "SiteAgentRow",
    "SiteHarvestRow",
    "SiteRow",
    "SshCertificateRow",
    "SshKeyRow",
    "StaffRoleRow",
    "SupportAttachmentRow",
    "SupportEventRow",
    "SupportMailRow",
    "SupportMessageRow",
    "SupportTicketRow",
    "TermsAcceptanceRow",
    "TermsRow",
    "Timestamp",
    "UserIdentityRow",
    "UserRow",
    "utcnow",
]
