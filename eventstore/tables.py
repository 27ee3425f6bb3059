"""Tables as the unit of work sees them: a Django model's table, its rows as dicts.

``Table`` describes a table from its Django model, so the schema stays in
models and migrations, and converts values the way Django stores them on
each backend (UUIDs as hex text and naive UTC times on SQLite, JSON as
text). It is apart from the unit (eventstore.unit) because it is the one
place that knows Django's fields: the unit builds its statements from a
``Table``'s names and converts every value through it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import operator
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from django.db import connections, models

Row = dict[str, Any]
Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _sqlite_datetime(value: Any) -> dt.datetime | None:
    """Django keeps naive UTC on SQLite (as text, or parsed by the driver)."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _json_default(value: Any) -> Any:
    """What orjson cannot write itself, written as PostgreSQL reads it back into a column."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"cannot write {type(value).__name__} to a row")


_ROWS_JSON = orjson.OPT_NON_STR_KEYS


def json_text(value: Any) -> str | None:
    """``value`` as the JSON text the unit writes (orjson; what it cannot say, as ``_json_default`` says it)."""
    return None if value is None else orjson.dumps(value, default=_json_default, option=_ROWS_JSON).decode()


class JSONText(models.TextField):  # type: ignore[type-arg]
    """JSON kept as text: a value written and read whole, never looked into by SQL.

    A ``jsonb`` column costs PostgreSQL a parse of every value it is given:
    the text lexed, each object's keys sorted, the binary tree built. A
    table whose rows carry a large JSON value that no statement looks
    into pays that for nothing; as text the value is stored as written and
    comes back parsed (``from_db_value``). The unit sends such a table's
    rows as one binary array per column (``Table.arrays``): the text then
    reaches the server as it is, not escaped inside a JSON document and
    lexed a character at a time. Python values come back as JSON gives
    them (times as ISO text, tuples as lists), as from a ``JSONField``.
    """

    description = "JSON, stored as text"
    empty_strings_allowed = False  # its default is None, not "", as a JSONField's is
    # What django-stubs types the attribute as (any JSON value, as a JSONField's).
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return value if value is None else json.loads(value)

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> Any:
        return json_text(value)

    def value_to_string(self, obj: Any) -> Any:
        return self.value_from_object(obj)  # serialisers (dumpdata) write the JSON value itself


class Table:
    """A Django model's table as the unit reads and writes it (rows keyed by attname).

    A table's description is the same for the life of the process, and
    building one walks every field of its model (``db_type`` is Django code):
    ``of`` keeps one per model and database.

    Every column must be named as its attname (no ``db_column``): a row's
    keys are then its columns' names, and PostgreSQL's batches send rows as
    they are (``json_rows``; ``column_arrays`` for a table with a ``JSONText``
    column). A model with another column name is refused.
    """

    _known: dict[tuple[type[models.Model], str, str], Table] = {}

    @classmethod
    def of(cls, model: type[models.Model], using: str = "default") -> Table:
        """The description of ``model``'s table on the database ``using``, built once per process."""
        key = (model, using, connections[using].vendor)
        found = cls._known.get(key)
        if found is None:
            found = cls._known[key] = cls(model, using)
        return found

    def __init__(self, model: type[models.Model], using: str = "default") -> None:
        conn = connections[using]
        self.model = model
        self.name = model._meta.db_table
        pk = model._meta.pk
        assert pk is not None
        for f in model._meta.concrete_fields:
            if f.column != f.attname:
                raise TypeError(
                    f"{model._meta.label}.{f.name}: its column {f.column!r} is not named as its attname "
                    f"{f.attname!r}; the unit of work takes a row's keys for its columns' names "
                    "(eventstore.tables.Table), so its models set no db_column"
                )
        self.pk = pk.attname
        self.pk_column = pk.column
        self.fields = list(model._meta.concrete_fields)
        self.generated_pk = isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField)
        self.postgres = conn.vendor == "postgresql"
        self.attnames = [f.attname for f in self.fields]
        self.defaults = {f.attname: f.get_default() for f in self.fields}
        self.columns = {f.attname: f.column for f in self.fields}
        # PostgreSQL column types, for the key arrays a statement compares with (``varchar(200)[]``...).
        self.types = {f.attname: f.db_type(conn) for f in self.fields} if self.postgres else {}
        self._to_db = {f.attname: self._to_db_converter(f) for f in self.fields}
        self._from_db = {f.attname: self._from_db_converter(f) for f in self.fields}
        #: Rows go to PostgreSQL as one binary array per column (``column_arrays``),
        #: not as a JSON document: a table with JSON kept as text (``JSONText``).
        self.json_texts = frozenset(f.attname for f in self.fields if isinstance(f, JSONText))
        self.arrays = self.postgres and bool(self.json_texts)

    def _to_db_converter(self, field: models.Field) -> Convert:  # type: ignore[type-arg]
        if isinstance(field, models.ForeignKey):
            field = field.target_field  # the column holds the target's key
        if isinstance(field, models.UUIDField) and not self.postgres:
            return lambda v: v.hex if isinstance(v, uuid.UUID) else v
        if isinstance(field, models.DateTimeField) and not self.postgres:
            return lambda v: v if v is None else v.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" ")
        if isinstance(field, models.JSONField):
            return lambda v: v if v is None else json.dumps(v)  # text, cast to jsonb by the statement
        if isinstance(field, JSONText):
            return json_text
        return _identity

    def _from_db_converter(self, field: models.Field) -> Convert:  # type: ignore[type-arg]
        if isinstance(field, models.ForeignKey):
            field = field.target_field
        if isinstance(field, models.UUIDField) and not self.postgres:
            return lambda v: v if v is None or isinstance(v, uuid.UUID) else uuid.UUID(v)
        if isinstance(field, models.DateTimeField) and not self.postgres:
            return _sqlite_datetime
        if isinstance(field, models.JSONField | JSONText):
            # SQLite stores text; on PostgreSQL Django has jsonb come back as text too.
            return lambda v: json.loads(v) if isinstance(v, str) else v
        if isinstance(field, models.BooleanField) and not self.postgres:
            return lambda v: v if v is None else bool(v)
        return _identity

    def to_db(self, attname: str, value: Any) -> Any:
        return self._to_db[attname](value)

    def from_db(self, attname: str, value: Any) -> Any:
        """One column's value as read from the database, as Django would give it."""
        return self._from_db[attname](value)

    def row(self, values: Sequence[Any]) -> Row:
        return {a: self._from_db[a](v) for a, v in zip(self.attnames, values, strict=True)}

    def json_rows(self, rows: Sequence[Row], attnames: Sequence[str]) -> str:
        """``rows`` as one JSON array of objects keyed by column (as the rows are:
        each column is named as its attname), each holding every column of
        ``attnames`` (a row's defaults where it has no value), for PostgreSQL's
        ``jsonb_populate_recordset``.

        One parameter, written in C by orjson. As one binary array per
        column, which psycopg builds element by element in Python, a live
        batch's rows cost the pipeline a quarter more CPU, and its
        PostgreSQL backend no less (bench/batch.py). Values go in as they are (JSON
        columns as nested JSON, not as text); the server converts each to its
        column's type as it reads the row. Keys other than the columns
        written are ignored by the server.

        The statement casts the parameter to ``jsonb``, not ``json``: the
        document is parsed once, and a ``jsonb`` column's value is taken from
        it as it is. From ``json``, each nested value was written out as text
        again and parsed a second time for its column; a backlog's batches
        cost PostgreSQL about 8% less CPU per event (docs/benchmarks.md).
        """
        defaults = {a: self.defaults[a] for a in attnames}
        wanted = defaults.keys()
        out = [row if wanted <= row.keys() else defaults | row for row in rows]
        return orjson.dumps(out, default=_json_default, option=_ROWS_JSON).decode()

    def column_arrays(self, rows: Sequence[Row], attnames: Sequence[str]) -> list[list[Any]]:
        """``rows`` as one list per column of ``attnames`` (a row's defaults where it has
        no value), for a statement that ``unnest``s them (``array_types``): psycopg
        sends each as a binary array, which the server reads without parsing. Values are
        converted as ``to_db`` converts them: on PostgreSQL, JSON to its text (a ``jsonb``
        column's array is cast by the statement, ``array_types``), the rest as they are."""
        out = []
        for a in attnames:
            convert, default = self._to_db[a], self.defaults[a]
            out.append([convert(row[a] if a in row else default) for row in rows])
        return out

    def copy_values(self, attnames: Sequence[str]) -> Callable[[Row], Sequence[Any]]:
        """What gives a row's values in the order of ``attnames``, as binary COPY takes
        them (the row holding every column): psycopg dumps each by its column's type,
        JSON for a ``jsonb`` column as the object itself; JSON kept as text goes as its
        text. Without such a column, one ``itemgetter``: in C, per row."""
        plain: Callable[[Row], Sequence[Any]] = (
            operator.itemgetter(*attnames) if len(attnames) > 1 else (lambda r: (r[attnames[0]],)))
        if not self.json_texts.intersection(attnames):
            return plain
        texts = [a in self.json_texts for a in attnames]
        return lambda r: [json_text(v) if t else v for t, v in zip(texts, plain(r), strict=True)]

    def array_types(self, attnames: Sequence[str]) -> list[str]:
        """Each column's array type, as ``column_arrays``' lists are cast to: a ``jsonb``
        column's JSON travels as text and is cast on the server."""
        return [f"text[]::{t}[]" if t == "jsonb" else f"{t}[]" for t in (self.types[a] for a in attnames)]

    def select(self) -> str:
        return ", ".join(f'"{self.columns[a]}"' for a in self.attnames)

    def insertable(self) -> list[str]:
        """The attnames an INSERT gives values for (a generated key is the database's)."""
        return [a for a in self.attnames if not (self.generated_pk and a == self.pk)]

    def among(self, attname: str, keys: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition "``attname`` is one of ``keys``" and its parameters.

        On PostgreSQL one array parameter, so the statement's text is the same
        whatever the number of keys (psycopg prepares it once per connection).
        """
        column = f'"{self.columns[attname]}"'
        values = [self.to_db(attname, k) for k in keys]
        if self.postgres:
            return f"{column} = ANY(%b::{self.types[attname]}[])", [values]
        return f"{column} IN ({', '.join(['%s'] * len(values))})", values
