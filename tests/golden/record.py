"""Record the seed service's replies to tests/golden/requests.py into tests/golden/replies/.

    make golden            # or: .venv/bin/python -m tests.golden.record

Steps: copy the seed_api reconstruction to a temporary folder (its own folder may be
read-only), make its venv (pip, requirements.txt) unless it exists, start a throwaway
PostgreSQL (tests/support/pgcluster.py), load the reconstruction's fixture with its load.py
and the arguments in source.json, write the loaded tables' digests to source.json, start
gunicorn on a free loopback port, send every request twice (the second pass tells whether a
reply is stable), write one JSON file per reply, then stop everything.

Options: --venv DIR (default $ESS_GOLDEN_VENV or /tmp/ess-golden/venv), --only NAME...
(record only these; other reply files are kept), --keep (leave PostgreSQL and gunicorn
running and print how to reach them; Ctrl-C stops them).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.golden.requests import REQUESTS, Request
from tests.support.pgcluster import PgCluster
from tests.support.reference import seed_api_dir

HERE = Path(__file__).resolve().parent
REPLIES = HERE / "replies"
SOURCE = HERE / "source.json"
FIXTURE = HERE / "fixture"
FIXTURE_FILES = ("load.py", "schema.sql")
# The host the replies' absolute next/previous URLs name; sent as the Host header, whatever
# port the service really listens on, so the bodies do not depend on a free port.
HOST = "127.0.0.1:8771"
WORKERS = 2
# Bodies larger than this are stored as their digest, size and first/last lines.
INLINE_LIMIT = 256 * 1024
EDGE_LINES = 3
# Response headers that change from one request to the next.
VOLATILE = {"date"}
# The service's own switches, fixed so an environment cannot change the replies.
SERVICE_ENV = {"SEED_API_AUTH": "off", "SEED_API_TIME_RANGE": "on", "SEED_API_PAGE_SIZE": "1000"}


def log(msg: str) -> None:
    print(f"[golden] {msg}", file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    print(f"golden: {msg}", file=sys.stderr)
    raise SystemExit(1)


# --- the reference ------------------------------------------------------------------------


def reference_copy(scratch: Path) -> Path:
    src = seed_api_dir()
    if src is None:
        fail("the seed_api reconstruction was not found: set ESS_SEED_API_DIR to its folder")
    dst = scratch / "seed_api"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("samples", "__pycache__"))
    for path in [dst, *dst.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return dst


def ensure_venv(venv: Path, seed: Path) -> Path:
    python = venv / "bin" / "python"
    if (venv / "bin" / "gunicorn").exists():
        return python
    log(f"creating {venv} from the reference's requirements.txt (pip)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "-r", str(seed / "requirements.txt")]
    subprocess.run(pip, check=True, timeout=1800)
    return python


def versions(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    wanted = {"django", "djangorestframework", "drf-flex-fields", "gunicorn", "psycopg2-binary"}
    return {p["name"]: p["version"] for p in json.loads(out.stdout) if p["name"].lower() in wanted}


# --- the fixture --------------------------------------------------------------------------


def load_fixture(python: Path, seed: Path, pg: PgCluster, args: list[str]) -> None:
    base = pg.dsn("postgres").rsplit("/", 1)[0]  # load.py wants a URI without a database
    log(f"loading the fixture: load.py {' '.join(args)}")
    t0 = time.monotonic()
    cmd = [str(python), str(seed / "load.py"), "--dsn-base", base, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        fail(f"load.py failed:\n{res.stdout}\n{res.stderr}")
    log(f"loaded in {time.monotonic() - t0:.0f} s: {res.stdout.strip()}")


def table_digests(pg: PgCluster) -> dict[str, dict[str, dict[str, object]]]:
    """Per database and table: columns, row count and the md5 of COPY's text in table order.

    Table order (the order load.py wrote the rows in) matters: the service orders by
    TIMESTAMP only, so rows with equal timestamps come out in it.
    """
    out: dict[str, dict[str, dict[str, object]]] = {}
    for db in ("ess1", "ess2"):
        out[db] = {}
        with pg.connect(db) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' ORDER BY table_name"
            ).fetchall()
            for (table,) in tables:
                columns = conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                ).fetchall()
                md5, rows = hashlib.md5(), 0
                with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                    for chunk in copy:
                        md5.update(chunk)
                        rows += bytes(chunk).count(b"\n")
                out[db][table] = {
                    "columns": [[name, kind] for name, kind in columns],
                    "rows": rows,
                    "copy_md5": md5.hexdigest(),
                }
    return out


# --- the service --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(venv: Path, seed: Path, pg: PgCluster, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEED_", "ESS_DB", "ESS2_DB"))}
    env |= SERVICE_ENV | {
        "SEED_PG_HOST": pg.host,
        "SEED_PG_PORT": str(pg.port),
        "SEED_PG_USER": pg.superuser,
        "SEED_PG_PASSWORD": pg.password,
    }
    argv = [str(venv / "bin" / "gunicorn"), "--workers", str(WORKERS), "--timeout", "300"]
    argv += ["-b", f"127.0.0.1:{port}", "seed_api.wsgi"]
    log_file = open(seed / "gunicorn.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, cwd=seed, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"gunicorn exited: {(seed / 'gunicorn.log').read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    fail("gunicorn did not listen within 60 s")
    raise AssertionError("unreachable")


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


# --- requests and replies -----------------------------------------------------------------


def fetch(port: int, req: Request) -> tuple[int, str, list[list[str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(req.method, req.target, headers={"Host": HOST, **req.headers})
        resp = conn.getresponse()
        body = resp.read()
        headers = [[k, v] for k, v in resp.getheaders() if k.lower() not in VOLATILE]
        return resp.status, resp.reason, headers, body
    finally:
        conn.close()


def header(headers: list[list[str]], name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name]
    return values[0] if values else None


def body_fields(body: bytes) -> dict[str, object]:
    out: dict[str, object] = {
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    if len(body) > INLINE_LIMIT:
        lines = body.split(b"\n")
        out |= {
            "body_encoding": "digest",
            "body_lines": body.count(b"\n"),
            "body_head": [line.decode() for line in lines[:EDGE_LINES]],
            "body_tail": [line.decode() for line in lines[-EDGE_LINES - 1 :]],
        }
        return out
    try:
        out |= {"body_encoding": "text", "body": body.decode("utf-8")}
    except UnicodeDecodeError:
        out |= {"body_encoding": "base64", "body": base64.b64encode(body).decode()}
    return out


def record(req: Request, port: int) -> dict[str, object]:
    status, reason, headers, body = fetch(port, req)
    again = fetch(port, req)
    return {
        "name": req.name,
        "about": req.about,
        "covers": list(req.covers),
        "request": {"method": req.method, "target": req.target, "headers": {"Host": HOST}},
        "response": {
            "status": status,
            "reason": reason,
            "content_type": header(headers, "content-type"),
            "content_disposition": header(headers, "content-disposition"),
            "location": header(headers, "location"),
            "headers": headers,
            **body_fields(body),
        },
        # False when a second request got another status or body (ties in an unstable order).
        "stable": (again[0], again[3]) == (status, body),
    }


def write_json(path: Path, data: object) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# --- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_venv = os.environ.get("ESS_GOLDEN_VENV", "/tmp/ess-golden/venv")
    ap.add_argument("--venv", type=Path, default=Path(default_venv))
    ap.add_argument("--only", nargs="+", metavar="NAME", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    chosen = [r for r in REQUESTS if args.only is None or r.name in args.only]
    unknown = set(args.only or ()) - {r.name for r in REQUESTS}
    if unknown:
        fail(f"no such request in tests/golden/requests.py: {', '.join(sorted(unknown))}")

    source = json.loads(SOURCE.read_text(encoding="utf-8"))
    scratch = Path(tempfile.mkdtemp(prefix="ess-golden-"))
    pg = service = None
    try:
        seed = reference_copy(scratch)
        python = ensure_venv(args.venv, seed)
        pg = PgCluster.start()
        load_fixture(python, seed, pg, source["load_args"])
        tables = table_digests(pg)
        if source.get("tables") not in (None, tables):
            log("the loaded tables differ from source.json's: source.json is rewritten")
        source |= {
            "load_py_sha256": hashlib.sha256((seed / "load.py").read_bytes()).hexdigest(),
            "schema_sql_sha256": hashlib.sha256((seed / "schema.sql").read_bytes()).hexdigest(),
            "tables": tables,
        }
        port = free_port()
        service = start_service(args.venv, seed, pg, port)
        with pg.connect() as conn:
            server_version = conn.execute("SHOW server_version").fetchone()[0]
        source["recorded_with"] = {
            **versions(python),
            "postgresql": server_version.split()[0],
            "host": HOST,
            "gunicorn_workers": WORKERS,
            **SERVICE_ENV,
        }
        write_json(SOURCE, source)
        for name in FIXTURE_FILES:  # what the replay loads the source with, kept beside it
            shutil.copyfile(seed / name, FIXTURE / name)

        REPLIES.mkdir(exist_ok=True)
        if args.only is None:  # a full recording leaves no reply of a removed request
            for stale in REPLIES.glob("*.json"):
                stale.unlink()
        unstable = []
        for i, req in enumerate(chosen, 1):
            t0 = time.monotonic()
            reply = record(req, port)
            write_json(REPLIES / f"{req.name}.json", reply)
            resp = reply["response"]
            log(
                f"{i:3}/{len(chosen)} {resp['status']} {resp['body_bytes']:>9} B"  # type: ignore[index]
                f" {time.monotonic() - t0:5.1f} s {req.name}"
            )
            if not reply["stable"]:
                unstable.append(req.name)
        log(f"recorded {len(chosen)} replies into {REPLIES}")
        if unstable:
            log(f"unstable (differed on a second request): {', '.join(unstable)}")
        if args.keep:
            log(f"service: http://127.0.0.1:{port}/api/ess/ (Host {HOST}); {pg.dsn('ess1')}")
            log("Ctrl-C stops both")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if service is not None:
            stop_service(service)
        if pg is not None:
            pg.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
