"""A unit of work for one batch of the log: rows read once, changed in memory, written once.

The consumers of the pipeline (projections, process managers, the fan-out)
each handle a batch in the same transaction. Through a ``Unit`` they first
say which rows they need (``want``), the unit reads them all in one round
(``load``), the consumers change them as plain dicts, and the unit writes
every change in one round (``flush``). On PostgreSQL each round is one
pipeline (psycopg's pipeline mode: the statements go out together), so a
batch costs a handful of round trips whatever the number of consumers, and
the fan-out builds its frames from the rows the projections just computed.

Tables are described from their Django models (``Table``, eventstore.tables),
so the schema stays in models and migrations; values are converted the way
Django stores them on each backend. Plain SQL, because the ORM's
per-statement cost was most of a batch's time (docs/benchmarks.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import psycopg
from django.db import connections, models

from eventstore.tables import Row, Table

#: Keys per SELECT or DELETE, and rows per INSERT (SQLite allows 32766 variables).
CHUNK = 500
#: The longest JSON document of rows one statement sends to PostgreSQL, in characters
#: (a rebuild's flush can hold hundreds of thousands of rows). PostgreSQL refuses a
#: ``jsonb`` value over 256 MiB; 32 Mi characters are 128 MiB of UTF-8 at most, and
#: leave room for the headers and offsets ``jsonb`` adds to small values.
DOCUMENT_CHARS = 32 << 20
#: Rows per statement of a table sent as arrays (Table.arrays): far under a
#: parameter's 1 GiB limit for rows of a few KiB each.
ARRAY_ROWS = 10_000


class Unit:
    """The rows one batch touches, for every consumer of a group (see the module docstring)."""

    def __init__(self, using: str = "default", *, keep: bool = False) -> None:
        """``keep``: the unit outlives a flush (a rebuild's): rows written
        stay known as stored, so later batches need not read them again."""
        self.using = using
        self.keep = keep
        self._complete: set[str] = set()
        self._tables: dict[str, Table] = {}
        self._of_model: dict[type[models.Model], Table] = {}  # the same, by model: save() is a replay's hottest call
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
        self._returning: set[int] = set()  # indexes in _after of the statements that answer rows
        self._reads: list[tuple[str, list[Any], Callable[[list[tuple[Any, ...]]], None]]] = []
        #: Rows each ``flush`` so far added to each table, less the rows it removed, as far
        #: as the unit can tell (``_count_growth``; eventstore.statistics).
        self.grown: dict[str, int] = defaultdict(int)

    def table(self, model: type[models.Model]) -> Table:
        found = self._of_model.get(model)
        if found is None:
            name = model._meta.db_table
            found = self._tables.get(name)
            if found is None:
                found = self._tables[name] = Table.of(model, self.using)
            self._of_model[model] = found
        return found

    # -- reading --------------------------------------------------------------------------

    def want(self, model: type[models.Model], keys: Iterable[Any]) -> None:
        """Rows of ``model`` by primary key, to be read by ``load``."""
        name = self.table(model).name
        if name in self._complete:
            return  # every stored row is in memory: nothing to read (nor to work out: ``keys`` is not consumed)
        self._wanted[name].update(keys)

    def want_by(self, model: type[models.Model], attname: str, values: Iterable[Any]) -> None:
        """Rows of ``model`` whose ``attname`` is one of ``values`` (an indexed column)."""
        self._wanted_by[(self.table(model).name, attname)].update(values)

    def read(self, sql: str, params: list[Any], keep: Callable[[list[tuple[Any, ...]]], None]) -> None:
        """A query of some other table to send with ``load``'s round trip; ``keep`` gets its rows."""
        self._reads.append((sql, params, keep))

    def load(self, before: Sequence[tuple[str, list[Any]]] = ()) -> list[list[tuple[Any, ...]]]:
        """Read everything wanted and asked for by ``read`` (after running ``before``,
        whose rows it returns), in one round trip."""
        queries: list[tuple[str, list[Any], Callable[[list[tuple[Any, ...]]], None] | None]] = [
            (sql, params, None) for sql, params in before
        ]
        queries += self._reads
        self._reads = []
        for name, keys in self._wanted.items():
            table = self._tables[name]
            if name in self._complete:
                continue  # every stored row is in memory: the others do not exist
            keys -= self._rows[name].keys() | self._dirty[name].keys() | self._removed[name]
            for chunk in _chunks([k for k in keys], self._chunk(table)):
                queries.append(self._select(table, table.pk, chunk, self._keep_rows(table)))
        for (name, attname), values in self._wanted_by.items():
            table = self._tables[name]
            for chunk in _chunks(list(values), self._chunk(table)):
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
        where, params = table.among(attname, keys)
        return f'SELECT {table.select()} FROM "{table.name}" WHERE {where}', params, keep

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

    def assume_empty(self, model: type[models.Model]) -> None:
        """The table holds no row but the ones this (keeping) unit writes: never read it."""
        assert self.keep
        self._complete.add(self.table(model).name)

    def held(self) -> int:
        """Rows the unit holds in memory, stored or to be written."""
        return sum(map(len, self._rows.values())) + self.pending()

    def pending(self) -> int:
        """Rows ``flush`` would write or delete."""
        return sum(
            len(rows) for group in (self._dirty, self._removed, self._added, self._added_unique) for rows in group.values()
        )

    def forget(self) -> None:
        """Drop the rows held in memory (after a flush): later batches read what they need."""
        assert not self.pending(), "flush before forgetting"
        self._rows.clear()
        self._found.clear()
        self._complete.clear()

    def get(self, model: type[models.Model], key: Any) -> Row | None:
        """A row by primary key: as loaded, or as changed since (None: absent or removed)."""
        # The hottest call of a replay: each lookup hashes the key again (a UUID's hash is Python code).
        name = model._meta.db_table
        removed = self._removed.get(name)
        if removed and key in removed:
            return None
        dirty = self._dirty.get(name)
        if dirty:
            row = dirty.get(key)
            if row is not None:
                return row
        rows = self._rows.get(name)
        return rows.get(key) if rows else None

    def find(self, model: type[models.Model], attname: str, value: Any) -> list[Row]:
        """Rows loaded through ``want_by`` for ``value``."""
        return self._found.get((model._meta.db_table, attname), {}).get(value, [])

    # -- writing --------------------------------------------------------------------------

    def save(self, model: type[models.Model], row: Row) -> None:
        """Insert or update this row (by primary key) at ``flush``."""
        table = self._of_model.get(model) or self.table(model)
        key = row[table.pk]
        if self._removed:
            removed = self._removed.get(table.name)
            if removed:
                removed.discard(key)
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

    def then(self, sql: str, params: list[Any], *, returning: bool = False) -> None:
        """A statement to run after the writes, in the same round (a checkpoint update);
        ``returning``: it answers rows (a ``RETURNING`` clause), which ``flush`` returns."""
        if returning:
            self._returning.add(len(self._after))
        self._after.append((sql, params))

    def flush(
        self, *, copy_with: Callable[[list[tuple[Table, list[Row]]]], None] | None = None
    ) -> list[list[tuple[Any, ...]]]:
        """Write every change, then the ``then`` statements, in one round; returns the
        rows of each ``then`` statement marked ``returning``, in order.

        ``copy_with``: what writes the rows a keeping unit copies in (new rows of
        tables it assumed empty), given every (table, rows) at once, instead of
        COPY on this connection one table after the other (a rebuild spreads
        them over connections of its own: readmodels.rebuild)."""
        statements: list[tuple[str, list[Any]]] = []
        copies: list[tuple[Table, list[Row]]] = []
        for name, keys in self._removed.items():
            table = self._tables[name]
            if name in self._complete:  # only rows written before need deleting
                keys = {k for k in keys if k in self._rows[name]}
            for chunk in _chunks(list(keys), self._chunk(table)):
                where, params = table.among(table.pk, chunk)
                statements.append((f'DELETE FROM "{name}" WHERE {where}', params))
        for name, dirty in self._dirty.items():
            table = self._tables[name]
            rows = list(dirty.values())
            if name in self._complete and table.postgres:
                # Rows never written go in with COPY, the others are updated.
                stored = self._rows[name]
                copies.append((table, [row for key, row in dirty.items() if key not in stored]))
                rows = [row for key, row in dirty.items() if key in stored]
            statements += self._insert(table, rows, upsert=True)
        for name, added in self._added.items():
            table = self._tables[name]
            if self.keep and table.postgres:
                copies.append((table, added))
            else:
                statements += self._insert(table, added)
        for name, by_key in self._added_unique.items():
            statements += self._insert(self._tables[name], list(by_key.values()), ignore=self._unique_on[name])
        returning = {len(statements) + i for i in self._returning}
        statements += self._after
        if copy_with is not None:
            copy_with([(table, rows) for table, rows in copies if rows])
        else:
            for table, rows in copies:
                self._copy(table, rows)
        results = self._run(statements, fetch=returning)
        if self.keep:
            for name, dirty in self._dirty.items():
                self._rows[name].update(dirty)
            for name, keys in self._removed.items():
                for key in keys:
                    self._rows[name].pop(key, None)
        else:  # a rebuild's (keeping) unit fills tables of its own and reports nothing
            self._count_growth()
        self._removed.clear()
        self._dirty.clear()
        self._added.clear()
        self._added_unique.clear()
        self._after = []
        self._returning = set()
        return results

    def _count_growth(self) -> None:
        """Add what this flush did to ``grown``: rows added, less rows removed. A saved
        row the unit had not read by key counts as added (an upsert of a row it did
        not look at, most often a new one)."""
        for name, dirty in self._dirty.items():
            read = self._rows.get(name, {})
            self.grown[name] += sum(1 for key in dirty if key not in read)
        for name, added in self._added.items():
            self.grown[name] += len(added)
        for name, by_key in self._added_unique.items():
            self.grown[name] += len(by_key)
        for name, keys in self._removed.items():
            self.grown[name] -= len(keys)

    def _copy(self, table: Table, rows: list[Row]) -> None:
        copy_rows(connections[self.using].connection, table, rows)

    def _insert(
        self, table: Table, rows: list[Row], *, upsert: bool = False, ignore: Sequence[str] = ()
    ) -> list[tuple[str, list[Any]]]:
        if not rows:
            return []
        if table.arrays:
            return array_statements(table, rows, upsert=upsert, ignore=ignore)
        attnames, cols, tail = insert_clauses(table, upsert=upsert, ignore=ignore)
        if table.postgres:
            # The rows as one JSON parameter the server expands into the
            # table's row type (Table.json_rows, which says why jsonb): a
            # statement of the same text for any number of rows.
            sql = (f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} '
                   f'FROM jsonb_populate_recordset(NULL::"{table.name}", %s::jsonb){tail}')
            return [(sql, [document]) for document in _documents(table, rows, attnames)]
        out = []
        one = "(" + ", ".join(["%s"] * len(attnames)) + ")"
        for chunk in _chunks(rows, max(1, CHUNK * 4 // len(attnames))):
            params = [table.to_db(a, row[a] if a in row else table.defaults[a]) for row in chunk for a in attnames]
            out.append((f'INSERT INTO "{table.name}" ({cols}) VALUES {", ".join([one] * len(chunk))}{tail}', params))
        return out

    @staticmethod
    def _chunk(table: Table) -> int:
        """Keys per statement: all of them in one array on PostgreSQL; SQLite caps a statement's variables."""
        return 1 << 30 if table.postgres else CHUNK

    # -- running ----------------------------------------------------------------------------

    def _run(
        self, statements: Sequence[tuple[str, list[Any]]], *, fetch: bool | Collection[int],
    ) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` in one round trip (PostgreSQL's pipeline mode); the rows of
        each (``fetch`` True), of those at the indexes ``fetch`` lists, or of none."""
        if not statements:
            return []
        wanted = range(len(statements)) if fetch is True else (fetch or ())
        conn = connections[self.using]
        conn.ensure_connection()
        if conn.vendor != "postgresql":
            out = []
            with conn.cursor() as cursor:
                for i, (sql, params) in enumerate(statements):
                    cursor.execute(sql, params)
                    if i in wanted:
                        out.append(cursor.fetchall())
            return out
        return run_pipelined(conn.connection, statements, wanted)


def _documents(table: Table, rows: list[Row], attnames: list[str]) -> list[str]:
    """``rows`` as JSON documents (Table.json_rows), each at most ``DOCUMENT_CHARS`` long
    unless it holds a single row. A pipeline's batch makes one; a rebuild's flush of
    hundreds of thousands of rows is cut into as many parts as its length says, each
    written once (a part whose rows run longer than the average is cut again)."""
    document = table.json_rows(rows, attnames)
    if len(document) <= DOCUMENT_CHARS or len(rows) == 1:
        return [document]
    size = -(-len(rows) // (len(document) // DOCUMENT_CHARS + 1))
    return [part for i in range(0, len(rows), size) for part in _documents(table, rows[i:i + size], attnames)]


def insert_clauses(
    table: Table, *, upsert: bool = False, ignore: Sequence[str] = ()
) -> tuple[list[str], str, str]:
    """What an INSERT of ``table``'s rows says around the rows themselves: the attnames
    it writes, their quoted column list, and its conflict clause (``upsert``: on the
    primary key, every other column updated; ``ignore``: skipped on these columns'
    unique constraint; neither: none). Unit._insert's and array_statements'."""
    attnames = table.insertable()
    cols = ", ".join(f'"{table.columns[a]}"' for a in attnames)
    if upsert:
        updates = ", ".join(f'"{table.columns[a]}" = excluded."{table.columns[a]}"' for a in attnames if a != table.pk)
        tail = f' ON CONFLICT ("{table.pk_column}") DO UPDATE SET {updates}'
    elif ignore:
        tail = " ON CONFLICT (" + ", ".join(f'"{table.columns[a]}"' for a in ignore) + ") DO NOTHING"
    else:
        tail = ""
    return attnames, cols, tail


def array_statements(
    table: Table, rows: list[Row], *, upsert: bool = False, ignore: Sequence[str] = ()
) -> list[tuple[str, list[Any]]]:
    """PostgreSQL statements that write ``rows`` of ``table`` as one binary array per
    column (``unnest``): the same text for any number of rows, and nothing for the
    server to parse. The unit's for a table with JSON kept as text (Table.arrays);
    bench/batch.py's baseline for every table."""
    attnames, cols, tail = insert_clauses(table, upsert=upsert, ignore=ignore)
    arrays = ", ".join(f"%b::{t}" for t in table.array_types(attnames))
    sql = f'INSERT INTO "{table.name}" ({cols}) SELECT * FROM unnest({arrays}){tail}'
    return [(sql, table.column_arrays(chunk, attnames)) for chunk in _chunks(rows, ARRAY_ROWS)]


def copy_rows(raw: psycopg.Connection[Any], table: Table, rows: list[Row]) -> None:
    """Write new rows of ``table`` with COPY (binary) over ``raw``: a rebuild's
    bulk of rows, three times faster than an INSERT of the same rows."""
    if not rows:
        return
    attnames = table.insertable()
    cols = ", ".join(f'"{table.columns[a]}"' for a in attnames)
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(
            "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0", [table.name]
        )
        oids = dict(cursor.fetchall())
        values = table.copy_values(attnames)
        defaults = {a: table.defaults[a] for a in attnames}
        with cursor.copy(f'COPY "{table.name}" ({cols}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.set_types([oids[table.columns[a]] for a in attnames])
            for row in rows:
                copy.write_row(values(defaults | row))


def run_pipelined(
    raw: psycopg.Connection[Any], statements: Sequence[tuple[str, list[Any]]], wanted: Collection[int],
) -> list[list[tuple[Any, ...]]]:
    """Run ``statements`` on a PostgreSQL connection in one round trip (pipeline mode);
    the rows of those at the indexes ``wanted``. Server-side binding (Django's cursors
    bind on the client) and prepared: the texts are few and the same for every batch."""
    with raw.pipeline():
        bound: list[psycopg.Cursor[Any]] = []
        for sql, params in statements:
            server = psycopg.Cursor(raw)
            server.execute(sql, params, prepare=True)
            bound.append(server)
        return [c.fetchall() for i, c in enumerate(bound) if i in wanted]


def _chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])
