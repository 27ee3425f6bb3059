from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The composition root: wires the contexts' ports, and owns serve, runworkers, ensure_demo_agent."""

    name = "project"
    verbose_name = "Parley"

    def ready(self) -> None:
        from chat import ports
        from conversations import ports as conversation_ports
        from conversations import scheduled
        from customers.directory import KnownCustomers
        from project.adapters import AgentsFromIdentity, CustomersFromDirectory

        ports.install(KnownCustomers())
        conversation_ports.install(AgentsFromIdentity(), CustomersFromDirectory())
        scheduled.register()
