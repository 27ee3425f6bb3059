from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The composition root: wires the contexts' ports, and owns serve, runworkers, ensure_demo_agent."""

    name = "project"
    verbose_name = "Parley"

    def ready(self) -> None:
        from attachments import expiry, removal
        from chat import ports
        from conversations import ports as conversation_ports
        from conversations import scheduled
        from customers.directory import KnownCustomers
        from notifications import fallback_email
        from notifications import ports as notification_ports
        from project import privacy
        from project.adapters import (
            AgentNamesFromProfiles,
            AgentsFromIdentity,
            AttachmentsFromCatalog,
            CustomersFromDirectory,
            EmailLinksToWeb,
            SystemMessagesToChat,
        )
        from project.bootstrap import declare_groups
        from readmodels import ports as readmodel_ports

        ports.install(KnownCustomers())
        ports.install_attachments(AttachmentsFromCatalog())
        expiry.register()
        removal.register()
        conversation_ports.install(AgentsFromIdentity(), CustomersFromDirectory(), SystemMessagesToChat())
        scheduled.register()
        readmodel_ports.install(AgentNamesFromProfiles())
        notification_ports.install(EmailLinksToWeb())
        fallback_email.register()
        privacy.register()
        declare_groups()
