"""Scratch: start a scaled stack, hold a few sockets, log what PostgreSQL runs while idle."""
import asyncio, json, os, sys, time, subprocess
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e import conftest as e2e
import psycopg, websockets

async def main():
    tmp = Path("/tmp/harness"); tmp.mkdir(exist_ok=True)
    stack, drop = e2e.start_stack(tmp, web=2, separate_workers=True, extra_env={"PARLEY_POLL_INTERVAL": os.environ.get("PI","5"), "PARLEY_DEBUG": "0", "LOG_LEVEL": "WARNING"})
    try:
        dbname = stack.env["DATABASE_URL"].rsplit("/",1)[1]
        c = stack.register_customer()
        a = stack.agent_token()
        wss = [await websockets.connect(stack.ws_url(c["token"], i % 2)) for i in range(4)] + [await websockets.connect(stack.ws_url(a, 1))]
        for w in wss: await w.send(json.dumps({"type":"resume","after":0}))
        await asyncio.sleep(3)
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET log_statement = 'all'"); conn.execute('SELECT pg_reload_conf()')
            def commits():
                return conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname=%s", [dbname]).fetchone()[0]
            c0 = commits(); t0 = time.time()
            await asyncio.sleep(float(os.environ.get("IDLE", "10")))
            c1 = commits(); print("idle commits/s", (c1-c0)/(time.time()-t0))
            conn.execute('ALTER SYSTEM RESET log_statement'); conn.execute('SELECT pg_reload_conf()')
        for w in wss: await w.close()
    finally:
        e2e.stop_stack(stack); drop()
asyncio.run(main())
