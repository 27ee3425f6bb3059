from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The composition root: wires the contexts' ports, and owns serve, runworkers, ensure_demo_agent."""

    name = "project"
    verbose_name = "Parley"

    def ready(self) -> None:
        from chat import ports
        from customers.directory import KnownCustomers

        ports.install(KnownCustomers())
