"""Scratch: sequential messages through a scaled stack; where does the time go?"""
import asyncio, json, os, sys, time, uuid
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e import conftest as e2e
import psycopg, websockets

async def main():
    tmp = Path("/tmp/harness"); tmp.mkdir(exist_ok=True)
    env = {"PARLEY_POLL_INTERVAL": "5", "PARLEY_DEBUG": "0", "LOG_LEVEL": os.environ.get("LL","WARNING")}
    stack, drop = e2e.start_stack(tmp, web=2, separate_workers=True, extra_env=env)
    try:
        dbname = stack.env["DATABASE_URL"].rsplit("/",1)[1]
        c = stack.register_customer(); a = stack.agent_token()
        cws = await websockets.connect(stack.ws_url(c["token"], 0)); aws = await websockets.connect(stack.ws_url(a, 1))
        for w in (cws, aws): await w.send(json.dumps({"type":"resume","after":0}))
        await asyncio.sleep(2)
        got = {}
        async def reader(ws, tag):
            async for raw in ws:
                f = json.loads(raw)
                if f["type"] in ("ack","message.sent"):
                    key = f.get("ref") or f["message"]["message_id"]
                    got.setdefault((tag, f["type"], key), time.perf_counter())
        ta = asyncio.create_task(reader(cws, "c")); tb = asyncio.create_task(reader(aws, "a"))
        conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        def commits(): return conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname=%s", [dbname]).fetchone()[0]
        c0 = commits(); t0=time.time()
        acks, recv = [], []
        N = int(os.environ.get("N","60"))
        for i in range(N):
            mid = str(uuid.uuid4()); t = time.perf_counter()
            await cws.send(json.dumps({"type":"message.send","message_id":mid,"body":f"m{i}"}))
            while ("a","message.sent",mid) not in got: await asyncio.sleep(0.0005)
            acks.append(got.get(("c","ack",mid), float("nan")) - t); recv.append(got[("a","message.sent",mid)] - t)
            await asyncio.sleep(0.1)
        c1 = commits(); dt_=time.time()-t0
        acks.sort(); recv.sort()
        print(f"ack p50 {acks[len(acks)//2]*1000:.1f} ms  recv p50 {recv[len(recv)//2]*1000:.1f} p90 {recv[int(len(recv)*.9)]*1000:.1f} ms; commits {c1-c0} for {N} msgs in {dt_:.1f}s")
    finally:
        e2e.stop_stack(stack); drop()
asyncio.run(main())
