from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Worker plumbing"

    def ready(self) -> None:
        # Appends wake the consumer groups of this process at once, and of
        # other processes through Redis or NOTIFY (workers.wakeup).
        from eventstore import store
        from workers import wakeup

        if wakeup.announce_append not in store.append_listeners:
            store.append_listeners.append(wakeup.announce_append)
