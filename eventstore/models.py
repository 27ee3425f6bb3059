"""Tables of the event log and of its consumers' checkpoints."""

from __future__ import annotations

from django.db import models


class StoredEvent(models.Model):
    """One row per event. Append-only: rows are never updated or deleted."""

    position = models.BigAutoField(primary_key=True)
    # pg_current_xact_id() of the appending transaction on PostgreSQL, 0 on
    # SQLite. Readers order by (tx, position) and stop at the snapshot's
    # xmin, so they never pass an uncommitted lower position.
    tx = models.BigIntegerField(default=0)
    event_id = models.UUIDField(unique=True)
    stream_id = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=100)
    schema_version = models.PositiveSmallIntegerField(default=1)
    data = models.TextField()
    metadata = models.TextField()
    recorded_at = models.DateTimeField()
    #: The shard of the event's partition key (its customer: eventstore.events.shard_of),
    #: 0 to SHARDS - 1; a partitioned consumer group reads ``shard % partitions``.
    #: Null only in rows written before shards existed, until the migration fills them.
    shard = models.SmallIntegerField(null=True)

    class Meta:
        db_table = "parley_events"
        constraints = [
            models.UniqueConstraint(fields=["stream_id", "version"], name="parley_events_stream_version"),
        ]
        indexes = [models.Index(fields=["tx", "position"], name="parley_events_reading_order")]

    def __str__(self) -> str:
        return f"{self.position} {self.stream_id}@{self.version} {self.event_type}"


class Checkpoint(models.Model):
    """How far a named consumer has processed the log, and who may process it.

    ``owner``/``lease_until`` elect one active instance per consumer name;
    the checkpoint itself is advanced with a compare-and-set on the old
    cursor, so even two instances that both believe they hold the lease
    cannot both commit the same batch.
    """

    name = models.CharField(max_length=100, primary_key=True)
    tx = models.BigIntegerField(default=0)
    position = models.BigIntegerField(default=0)
    owner = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: The event the group is stuck on (its last batch of one event failed),
    #: until a batch goes through again (eventstore.runner): what
    #: ``readmodels_status``, /healthz and /metrics report.
    error_event_id = models.UUIDField(null=True, blank=True)
    error_position = models.BigIntegerField(null=True, blank=True)
    error_member = models.CharField(max_length=100, blank=True, default="", db_default="")
    error_detail = models.TextField(blank=True, default="", db_default="")
    error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "parley_checkpoints"

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"


class Parked(models.Model):
    """An event one consumer group skips, by an operator's decision (``park_event``).

    A poison event (one a group's code cannot process) stops its group, and
    only its group. An operator parks it so the group goes on; the record
    keeps what was skipped, and ``replay_parked`` hands the event to the
    group again once the code is fixed (``replayed_at`` then says when).
    """

    consumer_group = models.CharField(max_length=100)
    event_id = models.UUIDField()
    position = models.BigIntegerField()
    tx = models.BigIntegerField()
    event_type = models.CharField(max_length=100)
    detail = models.TextField(blank=True, default="")
    parked_at = models.DateTimeField()
    parked_by = models.CharField(max_length=200, blank=True, default="")
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "parley_parked"
        constraints = [models.UniqueConstraint(fields=["consumer_group", "event_id"], name="parley_parked_once")]

    def __str__(self) -> str:
        return f"{self.consumer_group}: {self.event_type} {self.event_id} at {self.position}"


class ConsumerProcess(models.Model):
    """A process that runs partitions of the consumer groups, and when it was last seen.

    With a partitioned pipeline each process takes a fair share of the
    partitions (eventstore.sharing): how many processes are alive is read
    here. A process renews its row every few seconds; one not seen for a
    lease's time is gone, and the others take its share.

    ``groups`` names the consumer groups it runs (``runworkers --groups``),
    comma-separated in the deployment's order: processes share partitions
    with the processes that run the same groups, not with the rest.
    """

    owner = models.CharField(max_length=100, primary_key=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    groups = models.CharField(max_length=200, default="")

    class Meta:
        db_table = "parley_consumer_processes"


class SubjectKey(models.Model):
    """The data key of one person (a subject of events: eventstore.keys).

    ``wrapped`` is the key encrypted with the master key ``master`` (one of
    PARLEY_KEYS): the table alone, or a backup of it, opens nothing. Erasing
    the person empties ``wrapped`` and sets ``erased_at``; the row stays, so
    that the log knows the events of that subject are gone for good.
    """

    subject = models.CharField(max_length=64, primary_key=True)
    master = models.CharField(max_length=32, blank=True, default="")
    wrapped = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "parley_subject_keys"

    def __str__(self) -> str:
        return f"{self.subject} ({'erased' if self.erased_at else self.master})"
