"""Scratch: time one-event pipeline batches in-process (PostgreSQL scratch DB)."""
import os, sys, time, uuid, asyncio
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common
name = common.scratch_name("pipeprobe")
common.create_database(name)
os.environ["DATABASE_URL"] = common.url_for(name)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django; django.setup()
from django.core.management import call_command
try:
    call_command("migrate", verbosity=0)
    from customers.services import customer_register
    from chat.domain import Actor, SendMessage, SenderKind
    from chat.handlers import send_message
    from project.bootstrap import pipeline
    import cProfile, pstats
    cust = [customer_register(name=f"c{i}").customer for i in range(20)]
    r = pipeline(); r.acquire_lease()
    while r.process_batch().moved: pass
    agent = Actor(SenderKind.AGENT, "1", "Ag")
    def one(i):
        c = cust[i % 20]
        who = agent if i % 2 else Actor(SenderKind.CUSTOMER, str(c.id))
        t0 = time.perf_counter(); send_message(SendMessage(uuid.uuid4(), c.id, who, f"b{i}")); t1 = time.perf_counter()
        p = r.process_batch(); t2 = time.perf_counter()
        for cons, eff in p.effects: asyncio.run(cons.after_commit(eff))
        t3 = time.perf_counter()
        return t1-t0, t2-t1, t3-t2
    for i in range(20): one(i)
    res = [one(i) for i in range(200)]
    for k, label in enumerate(("send", "batch", "after")):
        v = sorted(x[k] for x in res); print(f"{label}: p50 {v[100]*1000:.2f} ms p90 {v[180]*1000:.2f} ms")
    pr = cProfile.Profile(); pr.enable()
    for i in range(200): one(i)
    pr.disable(); pstats.Stats(pr).sort_stats("cumulative").print_stats(40)
finally:
    from django.db import connections
    connections.close_all()
    common.drop_database(name)
