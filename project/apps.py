from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The composition root's own commands (serve, runworkers, ensure_demo_agent)."""

    name = "project"
    verbose_name = "Parley"
