"""A unit of work for one batch of the log: rows read once, changed in memory, written once.

The consumers of the pipeline (projections, process managers, the fan-out)
each handle a batch in the same transaction. Through a ``Unit`` they first
say which rows they need (``want``), the unit reads them all in one round
(``load``), the consumers change them as plain dicts, and the unit writes
every change in one round (``flush``). On PostgreSQL each round is one
pipeline (psycopg's pipeline mode: the statements go out together), so a
batch costs a handful of round trips whatever the number of consumers, and
the fan-out builds its frames from the rows the projections just computed.

Tables are described from their Django models (``Table``), so the schema
stays in models and migrations; values are converted the way Django stores
them on each backend. Plain SQL, because the ORM's per-statement cost was
most of a batch's time (docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, models

Row = dict[str, Any]
Convert = Callable[[Any], Any]

#: Keys per SELECT or DELETE, and rows per INSERT (SQLite allows 32766 variables).
CHUNK = 500


def _identity(value: Any) -> Any:
    return value


def _sqlite_datetime(value: Any) -> dt.datetime | None:
    """Django keeps naive UTC on SQLite (as text, or parsed by the driver)."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


class Table:
    """A Django model's table as the unit reads and writes it (rows keyed by attname)."""

    def __init__(self, model: type[models.Model], using: str = "default") -> None:
        conn = connections[using]
        self.model = model
        self.name = model._meta.db_table
        pk = model._meta.pk
        assert pk is not None
        self.pk = pk.attname
        self.pk_column = pk.column
        self.fields = list(model._meta.concrete_fields)
        self.generated_pk = isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField)
        self.postgres = conn.vendor == "postgresql"
        self.attnames = [f.attname for f in self.fields]
        self.defaults = {f.attname: f.get_default() for f in self.fields}
        self.columns = {f.attname: f.column for f in self.fields}
        self._to_db = {f.attname: self._to_db_converter(f) for f in self.fields}
        self._from_db = {f.attname: self._from_db_converter(f) for f in self.fields}

    def _to_db_converter(self, field: models.Field) -> Convert:  # type: ignore[type-arg]
        if isinstance(field, models.ForeignKey):
            field = field.target_field  # the column holds the target's key
        if isinstance(field, models.UUIDField) and not self.postgres:
            return lambda v: v.hex if isinstance(v, uuid.UUID) else v
        if isinstance(field, models.DateTimeField) and not self.postgres:
            return lambda v: v if v is None else v.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" ")
        if isinstance(field, models.JSONField):
            if self.postgres:
                from psycopg.types.json import Jsonb

                return lambda v: v if v is None else Jsonb(v)
            return lambda v: v if v is None else json.dumps(v)
        return _identity

    def _from_db_converter(self, field: models.Field) -> Convert:  # type: ignore[type-arg]
        if isinstance(field, models.ForeignKey):
            field = field.target_field
        if isinstance(field, models.UUIDField) and not self.postgres:
            return lambda v: v if v is None or isinstance(v, uuid.UUID) else uuid.UUID(v)
        if isinstance(field, models.DateTimeField) and not self.postgres:
            return _sqlite_datetime
        if isinstance(field, models.JSONField):
            # SQLite stores text; on PostgreSQL Django has jsonb come back as text too.
            return lambda v: json.loads(v) if isinstance(v, str) else v
        if isinstance(field, models.BooleanField) and not self.postgres:
            return lambda v: v if v is None else bool(v)
        return _identity

    def to_db(self, attname: str, value: Any) -> Any:
        return self._to_db[attname](value)

    def row(self, values: Sequence[Any]) -> Row:
        return {a: self._from_db[a](v) for a, v in zip(self.attnames, values, strict=True)}

    def select(self) -> str:
        return ", ".join(f'"{self.columns[a]}"' for a in self.attnames)


class Unit:
    """The rows one batch touches, for every consumer of a group (see the module docstring)."""

    def __init__(self, using: str = "default") -> None:
        self.using = using
        self._tables: dict[str, Table] = {}
        self._wanted: dict[str, set[Any]] = defaultdict(set)
        self._wanted_by: dict[tuple[str, str], set[Any]] = defaultdict(set)
        self._rows: dict[str, dict[Any, Row]] = defaultdict(dict)
        self._found: dict[tuple[str, str], dict[Any, list[Row]]] = defaultdict(dict)
        self._dirty: dict[str, dict[Any, Row]] = defaultdict(dict)
        self._removed: dict[str, set[Any]] = defaultdict(set)
        self._added: dict[str, list[Row]] = defaultdict(list)
        self._added_unique: dict[str, dict[tuple[Any, ...], Row]] = defaultdict(dict)
        self._unique_on: dict[str, tuple[str, ...]] = {}
        self._after: list[tuple[str, list[Any]]] = []

    def table(self, model: type[models.Model]) -> Table:
        name = model._meta.db_table
        found = self._tables.get(name)
        if found is None:
            found = self._tables[name] = Table(model, self.using)
        return found

    # -- reading --------------------------------------------------------------------------

    def want(self, model: type[models.Model], keys: Iterable[Any]) -> None:
        """Rows of ``model`` by primary key, to be read by ``load``."""
        self._wanted[self.table(model).name].update(keys)

    def want_by(self, model: type[models.Model], attname: str, values: Iterable[Any]) -> None:
        """Rows of ``model`` whose ``attname`` is one of ``values`` (an indexed column)."""
        self._wanted_by[(self.table(model).name, attname)].update(values)

    def load(self, before: Sequence[tuple[str, list[Any]]] = ()) -> list[list[tuple[Any, ...]]]:
        """Read everything wanted (after running ``before``, whose rows it returns)."""
        queries: list[tuple[str, list[Any], Callable[[list[tuple[Any, ...]]], None] | None]] = [
            (sql, params, None) for sql, params in before
        ]
        for name, keys in self._wanted.items():
            table = self._tables[name]
            keys -= set(self._rows[name])
            for chunk in _chunks([k for k in keys], CHUNK):
                queries.append(self._select(table, table.pk, chunk, self._keep_rows(table)))
        for (name, attname), values in self._wanted_by.items():
            table = self._tables[name]
            for chunk in _chunks(list(values), CHUNK):
                queries.append(self._select(table, attname, chunk, self._keep_found(table, attname, chunk)))
        self._wanted.clear()
        self._wanted_by.clear()
        results = self._run([(sql, params) for sql, params, _ in queries], fetch=True)
        out = []
        for (_, _, keep), rows in zip(queries, results, strict=True):
            if keep is None:
                out.append(rows)
            else:
                keep(rows)
        return out

    def _select(self, table: Table, attname: str, keys: list[Any], keep: Any) -> tuple[str, list[Any], Any]:
        marks = ", ".join(["%s"] * len(keys))
        sql = f'SELECT {table.select()} FROM "{table.name}" WHERE "{table.columns[attname]}" IN ({marks})'
        return sql, [table.to_db(attname, k) for k in keys], keep

    def _keep_rows(self, table: Table) -> Callable[[list[tuple[Any, ...]]], None]:
        def keep(rows: list[tuple[Any, ...]]) -> None:
            for values in rows:
                row = table.row(values)
                self._rows[table.name][row[table.pk]] = row

        return keep

    def _keep_found(self, table: Table, attname: str, asked: list[Any]) -> Callable[[list[tuple[Any, ...]]], None]:
        def keep(rows: list[tuple[Any, ...]]) -> None:
            found = self._found[(table.name, attname)]
            for value in asked:
                found.setdefault(value, [])
            for values in rows:
                row = table.row(values)
                found[row[attname]].append(row)

        return keep

    def get(self, model: type[models.Model], key: Any) -> Row | None:
        """A row by primary key: as loaded, or as changed since (None: absent or removed)."""
        name = model._meta.db_table
        if key in self._removed.get(name, ()):
            return None
        dirty = self._dirty.get(name)
        if dirty is not None and key in dirty:
            return dirty[key]
        return self._rows.get(name, {}).get(key)

    def find(self, model: type[models.Model], attname: str, value: Any) -> list[Row]:
        """Rows loaded through ``want_by`` for ``value``."""
        return self._found.get((model._meta.db_table, attname), {}).get(value, [])

    # -- writing --------------------------------------------------------------------------

    def save(self, model: type[models.Model], row: Row) -> None:
        """Insert or update this row (by primary key) at ``flush``."""
        table = self.table(model)
        key = row[table.pk]
        if table.name in self._removed:
            self._removed[table.name].discard(key)
        self._dirty[table.name][key] = row

    def remove(self, model: type[models.Model], key: Any) -> None:
        """Delete the row with this primary key at ``flush``."""
        table = self.table(model)
        if table.name in self._dirty:
            self._dirty[table.name].pop(key, None)
        self._removed[table.name].add(key)

    def add(self, model: type[models.Model], row: Row, *, unless_exists: Sequence[str] = ()) -> None:
        """Insert a new row at ``flush`` (its generated key is left to the database).

        With ``unless_exists`` (the columns of a unique constraint) a row
        that is already stored is skipped instead of failing.
        """
        table = self.table(model)
        if unless_exists:
            self._unique_on[table.name] = tuple(unless_exists)
            self._added_unique[table.name][tuple(row[a] for a in unless_exists)] = row
        else:
            self._added[table.name].append(row)

    def added(self, model: type[models.Model]) -> list[Row]:
        name = model._meta.db_table
        return self._added.get(name, []) + list(self._added_unique.get(name, {}).values())

    def then(self, sql: str, params: list[Any]) -> None:
        """A statement to run after the writes, in the same round (a checkpoint update)."""
        self._after.append((sql, params))

    def flush(self) -> None:
        statements: list[tuple[str, list[Any]]] = []
        for name, keys in self._removed.items():
            table = self._tables[name]
            for chunk in _chunks(list(keys), CHUNK):
                marks = ", ".join(["%s"] * len(chunk))
                statements.append(
                    (f'DELETE FROM "{name}" WHERE "{table.pk_column}" IN ({marks})', [table.to_db(table.pk, k) for k in chunk])
                )
        for name, dirty in self._dirty.items():
            statements += self._insert(self._tables[name], list(dirty.values()), upsert=True)
        for name, added in self._added.items():
            statements += self._insert(self._tables[name], added)
        for name, by_key in self._added_unique.items():
            statements += self._insert(self._tables[name], list(by_key.values()), ignore=self._unique_on[name])
        statements += self._after
        self._run(statements, fetch=False)
        self._removed.clear()
        self._dirty.clear()
        self._added.clear()
        self._added_unique.clear()
        self._after = []

    def _insert(
        self, table: Table, rows: list[Row], *, upsert: bool = False, ignore: Sequence[str] = ()
    ) -> list[tuple[str, list[Any]]]:
        if not rows:
            return []
        attnames = [a for a in table.attnames if not (table.generated_pk and a == table.pk)]
        cols = ", ".join(f'"{table.columns[a]}"' for a in attnames)
        one = "(" + ", ".join(["%s"] * len(attnames)) + ")"
        if upsert:
            updates = ", ".join(f'"{table.columns[a]}" = excluded."{table.columns[a]}"' for a in attnames if a != table.pk)
            tail = f' ON CONFLICT ("{table.pk_column}") DO UPDATE SET {updates}'
        elif ignore:
            tail = " ON CONFLICT (" + ", ".join(f'"{table.columns[a]}"' for a in ignore) + ") DO NOTHING"
        else:
            tail = ""
        out = []
        for chunk in _chunks(rows, max(1, CHUNK * 4 // len(attnames))):
            params = [table.to_db(a, row[a] if a in row else table.defaults[a]) for row in chunk for a in attnames]
            out.append((f'INSERT INTO "{table.name}" ({cols}) VALUES {", ".join([one] * len(chunk))}{tail}', params))
        return out

    # -- running ----------------------------------------------------------------------------

    def _run(self, statements: Sequence[tuple[str, list[Any]]], *, fetch: bool) -> list[list[tuple[Any, ...]]]:
        if not statements:
            return []
        conn = connections[self.using]
        conn.ensure_connection()
        if conn.vendor != "postgresql":
            out = []
            with conn.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
                    out.append(cursor.fetchall() if fetch else [])
            return out
        raw = conn.connection
        with raw.pipeline():
            cursors = []
            for sql, params in statements:
                cursor = raw.cursor()
                cursor.execute(sql, params)
                cursors.append(cursor)
            return [c.fetchall() for c in cursors] if fetch else []


def _chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])
