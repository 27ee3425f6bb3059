import os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django; django.setup()
from django.db import connection, transaction
connection.ensure_connection()
raw = connection.connection
def plain():
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("SELECT 1"); c.fetchall()
            c.execute("SELECT 2"); c.fetchall()
            c.execute("SELECT 3"); c.fetchall()
def piped():
    with transaction.atomic():
        with raw.pipeline():
            cs = []
            for i in range(3):
                cur = raw.cursor(); cur.execute("SELECT %s::int", [i]); cs.append(cur)
            r = [c.fetchall() for c in cs]
        assert r == [[(0,)],[(1,)],[(2,)]], r
for f in (plain, piped):
    f(); t=time.perf_counter()
    for _ in range(300): f()
    print(f.__name__, (time.perf_counter()-t)/300*1000, "ms")
