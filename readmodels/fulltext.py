"""Full-text matching for the search read model, on each database.

The search projection keeps one row per searchable text in
``readmodels_searchentry`` (readmodels.models.SearchEntry). How those rows
are matched, ranked and highlighted differs by backend, and lives here:

- **PostgreSQL**: a GIN index over ``to_tsvector(<config>, text)``
  (``FullTextIndex``), where ``<config>`` is ``PARLEY_SEARCH_CONFIG``;
  ranked with ``ts_rank``, highlighted with ``ts_headline``.
- **SQLite**: an FTS5 table, ``readmodels_search_fts``, kept in step with the
  rows by triggers (made in readmodels/migrations/0005_search.py, so also in
  ``make run``'s database); ranked with ``bm25()``, highlighted with
  ``snippet()``.

Both answer the same question: every word of the query, as a word prefix
(``refun`` finds "refund" and "refunded"), in any order; best match first
among the newest ``RANKED`` matches, the newest first among equals.

A highlight is the matched text's best fragment with each match between
``MARK_START`` (U+0002) and ``MARK_END`` (U+0003), and ``ELLIPSIS`` where
the fragment cuts the text. The markers are control characters the stored
text never holds (``indexable`` takes them out), so a client splits on
them and shows the pieces as text: nothing in a highlight is markup.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement

from eventstore.events import Cursor

SEARCH_TABLE = "readmodels_searchentry"
FTS_TABLE = "readmodels_search_fts"

MARK_START = "\x02"
MARK_END = "\x03"
ELLIPSIS = "\u2026"
#: What "<" is stored as. PostgreSQL's parser reads "<...>" as an HTML tag and
#: leaves it out of the index and out of ts_headline's fragment; chat text is
#: not HTML, and "<script>" must come back as the text it is.
STORED_LT = "\x04"
#: What "@" is stored as. PostgreSQL's parser keeps an email address as one
#: word, so "acme.com" would not find "ada@acme.com"; apart, the address is a
#: name and a host, found by either (as FTS5, which splits at "@", finds it).
STORED_AT = "\x05"

#: Matches ranked at most: the newest this many. Ranking reads every
#: candidate's text again on PostgreSQL (the index keeps no word counts),
#: so a query matching most of a large log is bounded by this, not by the log.
RANKED = 1000
#: Words of a fragment (PostgreSQL) and tokens (SQLite) around the matches.
FRAGMENT_WORDS = 24
HEADLINE_OPTIONS = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={FRAGMENT_WORDS}, MinWords=8, MaxFragments=1, '
    # Short words at a fragment's edges stay (by default words of up to three
    # letters are dropped there: the "b" of a leading "<b>", the "i" of "</i>?").
    "ShortWord=0"
)

_HIDDEN = {ord(MARK_START): " ", ord(MARK_END): " ", ord(STORED_LT): " ", ord(STORED_AT): " ",
           ord("<"): STORED_LT, ord("@"): STORED_AT}
_WORD = re.compile(r"\w+")
#: Any character ``indexable`` changes (most texts have none: one scan in C, no copy).
_CHANGED = re.compile("[" + re.escape("".join(map(chr, _HIDDEN))) + "]")


def indexable(text: str) -> str:
    """The form of ``text`` the index stores (and a query is parsed in): no
    marker characters; "<" and "@" hidden from PostgreSQL's parser."""
    return text.translate(_HIDDEN) if _CHANGED.search(text) else text


def readable(fragment: str) -> str:
    """A highlight fragment as the client sees it: the stored form's "<" and "@" given back."""
    return fragment.replace(STORED_LT, "<").replace(STORED_AT, "@")


def search_config() -> str:
    """The PostgreSQL text search configuration (validated by project.settings, so safe to inline)."""
    return str(settings.PARLEY_SEARCH_CONFIG)


class FullTextIndex(models.Index):
    """On PostgreSQL, a GIN index over ``to_tsvector('<config>'::regconfig, <field>)``.

    The configuration is read when the index is created: by the migration,
    and again by every ``rebuild_readmodels`` of the search projection (it
    creates the table afresh from the model), which is how a changed
    ``PARLEY_SEARCH_CONFIG`` reaches the index. Queries name the
    configuration as a literal, like the index, so the planner can use it.

    On other databases the statement is empty: SQLite's index is the FTS5
    table of migration 0005.
    """

    def create_sql(self, model: type[models.Model], schema_editor: BaseDatabaseSchemaEditor | None, using: str = "",
                   **kwargs: Any) -> Statement:
        assert schema_editor is not None
        if schema_editor.connection.vendor != "postgresql":
            return Statement("")
        field = model._meta.get_field(self.fields[0])
        assert isinstance(field, models.Field) and field.column
        column = field.column
        return Statement(
            "CREATE INDEX %(name)s ON %(table)s USING gin (to_tsvector(%(config)s, %(column)s))",
            name=schema_editor.quote_name(self.name), table=schema_editor.quote_name(model._meta.db_table),
            config=f"'{search_config()}'::regconfig", column=schema_editor.quote_name(column),
        )

    def remove_sql(self, model: type[models.Model], schema_editor: BaseDatabaseSchemaEditor, **kwargs: Any) -> str:
        if schema_editor.connection.vendor != "postgresql":
            return ""
        return super().remove_sql(model, schema_editor, **kwargs)


@dataclass(frozen=True)
class Match:
    """A search row that matched, with its highlight."""

    kind: str  # "message" | "customer"
    customer_id: uuid.UUID
    message_id: uuid.UUID | None
    highlight: str


def match(query: str, *, until: Cursor, limit: int, customer_id: uuid.UUID | None = None,
          kind: str | None = None) -> list[Match]:
    """The rows at or before ``until`` that match every word of ``query``, best first.

    ``customer_id`` and ``kind`` narrow the rows searched (a customer's own
    messages). A query without a word to search for matches nothing.
    """
    if connection.vendor == "postgresql":
        return _match_postgres(query, until, limit, customer_id, kind)
    return _match_sqlite(query, until, limit, customer_id, kind)


def _narrowing(alias: str, until: Cursor, customer_id: uuid.UUID | None, kind: str | None,
               uuid_param: Any) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the rows a search may see:
    those the pipeline wrote up to ``until``, of one customer and kind if
    asked. ``uuid_param`` binds a UUID as the backend stores it (SQLite: the
    hex text Django writes)."""
    where = f"({alias}.tx < %s OR ({alias}.tx = %s AND {alias}.position <= %s))"
    params: list[Any] = [until.tx, until.tx, until.position]
    if customer_id is not None:
        where += f" AND {alias}.customer_id = %s"
        params.append(uuid_param(customer_id))
    if kind is not None:
        where += f" AND {alias}.kind = %s"
        params.append(kind)
    return where, params


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


# -- PostgreSQL -------------------------------------------------------------------------


def prefix_tsquery(lexemes: list[str]) -> str:
    """``'refund':* & 'order':*``: every lexeme, as a prefix (quoted as tsquery input wants)."""
    quoted = ("'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "':*" for lexeme in lexemes)
    return " & ".join(quoted)


def _match_postgres(query: str, until: Cursor, limit: int, customer_id: uuid.UUID | None,
                    kind: str | None) -> list[Match]:
    config = f"'{search_config()}'::regconfig"
    with connection.cursor() as c:
        # The query's words as the configuration normalises them (lower case,
        # stemmed, stop words dropped), parsed like the text they are to match
        # (in the stored form: "ada@example.com" is "ada" and "example.com").
        c.execute(f"SELECT lexeme FROM unnest(to_tsvector({config}, %s))", [indexable(query)])
        lexemes = [row[0] for row in c.fetchall()]
        if not lexemes:
            return []
        where, params = _narrowing("e", until, customer_id, kind, lambda u: u)
        # The newest RANKED matches come from the index alone; only they are
        # ranked (ts_rank parses each one's text again), and only the page
        # is highlighted.
        c.execute(
            f"""
            WITH q AS (SELECT %s::tsquery AS query),
            candidates AS (
                SELECT e.kind, e.customer_id, e.message_id, e.text, e.position
                FROM "{SEARCH_TABLE}" e, q
                WHERE to_tsvector({config}, e.text) @@ q.query AND {where}
                ORDER BY e.position DESC
                LIMIT {RANKED}
            ),
            best AS (
                SELECT c.*, ts_rank(to_tsvector({config}, c.text), q.query, 1) AS rank
                FROM candidates c, q
                ORDER BY rank DESC, c.position DESC
                LIMIT %s
            )
            SELECT best.kind, best.customer_id, best.message_id, best.text,
                   ts_headline({config}, best.text, q.query, %s)
            FROM best, q
            ORDER BY best.rank DESC, best.position DESC
            """,
            [prefix_tsquery(lexemes), *params, limit, HEADLINE_OPTIONS],
        )
        rows = c.fetchall()
    return [Match(kind, uuid.UUID(str(cid)), _uuid(mid), readable(_with_ellipses(text, fragment)))
            for kind, cid, mid, text, fragment in rows]


def _with_ellipses(text: str, fragment: str) -> str:
    """ts_headline's fragment, given back what it trims at its edges, or an
    ellipsis on each side where it cuts words off the text.

    The fragment starts and ends with a word: text beyond it that holds no
    word (a leading "<", a closing "?") is put back, so a short text comes
    back whole.
    """
    fragment = fragment.strip()
    plain = fragment.replace(MARK_START, "").replace(MARK_END, "")
    at = text.find(plain)
    if at < 0:  # cannot happen: the fragment is a piece of the text; still, never fail a search on it
        return ELLIPSIS + fragment + ELLIPSIS
    before, after = text[:at], text[at + len(plain):]
    head = before.lstrip() if not _WORD.search(before) else ELLIPSIS
    tail = after.rstrip() if not _WORD.search(after) else ELLIPSIS
    return head + fragment + tail


# -- SQLite -----------------------------------------------------------------------------


def fts5_query(query: str) -> str:
    """``"refund"* "order"*``: every word as a quoted prefix, all required.

    Quoting makes FTS5 read each word as text, never as its query syntax
    (``AND``, ``NEAR``, ``col:``), and words are runs of letters and digits,
    which hold no quote.
    """
    return " ".join(f'"{word}"*' for word in _WORD.findall(indexable(query)))


def _match_sqlite(query: str, until: Cursor, limit: int, customer_id: uuid.UUID | None,
                  kind: str | None) -> list[Match]:
    expression = fts5_query(query)
    if not expression:
        return []
    where, params = _narrowing("e", until, customer_id, kind, lambda u: u.hex)
    with connection.cursor() as c:
        # As on PostgreSQL: the best of the newest RANKED matches, the page highlighted.
        c.execute(
            f"""
            SELECT ranked.position, ranked.kind, ranked.customer_id, ranked.message_id
            FROM (
                SELECT e.position, e.kind, e.customer_id, e.message_id, bm25("{FTS_TABLE}") AS score
                FROM "{FTS_TABLE}" JOIN "{SEARCH_TABLE}" e ON e.position = "{FTS_TABLE}".rowid
                WHERE "{FTS_TABLE}" MATCH %s AND {where}
                ORDER BY e.position DESC
                LIMIT {RANKED}
            ) ranked
            ORDER BY ranked.score, ranked.position DESC
            LIMIT %s
            """,
            [expression, *params, limit],
        )
        page = c.fetchall()
        if not page:
            return []
        positions = [row[0] for row in page]
        c.execute(
            f"""
            SELECT rowid, snippet("{FTS_TABLE}", 0, %s, %s, %s, {FRAGMENT_WORDS})
            FROM "{FTS_TABLE}" WHERE "{FTS_TABLE}" MATCH %s AND rowid IN ({", ".join(["%s"] * len(positions))})
            """,
            [MARK_START, MARK_END, ELLIPSIS, expression, *positions],
        )
        fragments = dict(c.fetchall())
    return [Match(kind, uuid.UUID(str(cid)), _uuid(mid), readable(fragments[position]))
            for position, kind, cid, mid in page]
