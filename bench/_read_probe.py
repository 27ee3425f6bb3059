import os, sys, time, uuid
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common
name = common.scratch_name("readprobe"); common.create_database(name)
os.environ["DATABASE_URL"] = common.url_for(name); os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django; django.setup()
from django.core.management import call_command
from django.db import connection
try:
    call_command("migrate", verbosity=0)
    from eventstore.store import EventStore
    from eventstore.events import Cursor
    from tests.eventstore_fixtures import noted
    s = EventStore()
    for i in range(2000): s.append(f"s{i}", [noted()], 0)
    head = s.head()
    def t(f, n=300):
        f(); t0=time.perf_counter()
        for _ in range(n): f()
        return (time.perf_counter()-t0)/n*1000
    print("read_batch empty at head", t(lambda: s.read_batch(head, 500)))
    print("head()", t(lambda: s.head()))
    from eventstore import store as st
    sql = f"WITH barrier AS (SELECT {st._BARRIER_XID} AS xid) SELECT {st._COLUMNS}, tx < barrier.xid FROM parley_events, barrier WHERE (tx, position) > (%s, %s) ORDER BY tx, position LIMIT %s"
    connection.ensure_connection(); raw = connection.connection
    def rawq(prep):
        with raw.cursor() as c:
            c.execute(sql, [head.tx, head.position, 500], prepare=prep); c.fetchall()
    print("raw no prepare", t(lambda: rawq(False)))
    print("raw prepared", t(lambda: rawq(True)))
    def rawsel1():
        with raw.cursor() as c:
            c.execute("SELECT 1"); c.fetchall()
    print("raw select 1", t(rawsel1))
    with connection.cursor() as c:
        c.execute("EXPLAIN ANALYZE WITH barrier AS (SELECT (SELECT 1::bigint << 40) AS xid) SELECT position FROM parley_events, barrier WHERE (tx, position) > (%s, %s) ORDER BY tx, position LIMIT 500", [head.tx, head.position])
        print("\n".join(r[0] for r in c.fetchall()))
    from eventstore import store as st
    with connection.cursor() as c:
        sql = f"EXPLAIN ANALYZE WITH barrier AS (SELECT {st._BARRIER_XID} AS xid) SELECT {st._COLUMNS}, tx < barrier.xid FROM parley_events, barrier WHERE (tx, position) > (%s, %s) ORDER BY tx, position LIMIT %s"
        c.execute(sql, [head.tx, head.position - 1, 500])
        print("\n".join(r[0] for r in c.fetchall()))
finally:
    from django.db import connections
    connections.close_all(); common.drop_database(name)
