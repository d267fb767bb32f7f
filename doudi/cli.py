"""The `doudi` command: quote claims and inspect, validate and compare policies.

Thin by design: it reads files, calls `doudi.services`, and prints. Exit codes: 0 done, 1 a problem in
the input (every problem is printed, each naming its file or field), 2 a usage error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from doudi import cli_operations, masking, services
from policies.library import LIBRARY_DIR, Library, PolicyError, load_library
from settlement.claims import decode_json, parse_claims
from settlement.errors import FieldError
from settlement.explain import identity_problems
from settlement.slip import format_slip

app = typer.Typer(
    help="Doudi (兜底): one-stop settlement across every fund that owes part of a bill.",
    no_args_is_help=True,
    add_completion=False,
)
policy_app = typer.Typer(help="Inspect, validate and compare policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

LibraryOption = Annotated[Path, typer.Option("--library", help="Folder of policy files.")]


def _fail(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(1)


def _library(directory: Path) -> Library:
    try:
        return services.open_library(directory)
    except PolicyError as err:
        _fail([str(p) for p in err.problems])
        raise  # unreachable; for type checkers


def _read_claims(path: Path) -> tuple[list[Any], bool]:
    """The claims in a file, and whether the file held a single claim object."""
    try:
        data = decode_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        _fail([f"{path}: cannot read: {err}"])
    except ValueError as err:  # json.JSONDecodeError included
        _fail([f"{path}: not valid JSON: {err}"])
    if isinstance(data, dict) and "claims" in data:
        return (data["claims"] if isinstance(data["claims"], list) else [data["claims"]]), False
    return (data, False) if isinstance(data, list) else ([data], True)


@app.command()
def quote(
    claims_file: Annotated[Path, typer.Argument(help="A claim, a list of claims, or {claims: [...]} in JSON.")],
    policy: Annotated[str, typer.Option("--policy", help="Policy id, id@version, or a policy file.")],
    output: Annotated[str, typer.Option("--format", help="json or slip")] = "json",
    library_dir: LibraryOption = LIBRARY_DIR,
) -> None:
    """Settle claims in order (预结算) and print the result; nothing is recorded."""
    if output not in ("json", "slip"):
        _fail([f"--format: {output!r} is not one of json, slip"])
    library = _library(library_dir)
    try:
        library, ref = services.resolve_policy(library, policy)
    except PolicyError as err:
        _fail([str(p) for p in err.problems] or [f"--policy: {policy} holds no valid policy"])
    except KeyError as err:
        _fail([f"--policy: {err.args[0]}"])
    items, single = _read_claims(claims_file)
    claims, errors = parse_claims(items)
    if errors:
        _fail([f"{claims_file}: {e}" for e in errors])
    try:
        records, state = services.quote_claims(library, ref, claims)
    except KeyError as err:
        _fail([f"--policy: {err.args[0]}"])
    except ValueError as err:
        _fail([f"{claims_file}: {err}"])
    for record in records:
        problems = identity_problems(record["nhsa"]["setlinfo"])
        if problems:  # pragma: no cover - the engine's invariants make this unreachable
            _fail([f"{record['claim_id']}: {p}" for p in problems])
    if output == "slip":
        typer.echo("\n".join(format_slip(r) for r in records), nl=False)
        return
    if single:
        typer.echo(json.dumps(records[0], ensure_ascii=False, indent=2))
    else:
        out = {"settlements": records, "accumulators": services.accumulator_rows(state)}
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL; default DOUDI_DATABASE_URL, else var/doudi.sqlite3."),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="Seed the demo region and print a token per role.")] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes (each uses one core). Needs uvloop, which the install brings: under "
            "asyncio's own loop uvicorn's processes leave Nagle's algorithm on (about 40 ms per request).",
        ),
    ] = 1,
    database_url: DatabaseOption = None,
    cpu: Annotated[
        int | None,
        typer.Option(
            "--cpu",
            min=0,
            help="Keep the (one) server process on this core (Linux). Its request threads then stop handing "
            "Python's interpreter lock between cores, which cost up to half of its settlements on two cores.",
        ),
    ] = None,
) -> None:
    """Run the HTTP service: migrate the database, optionally seed the demo region, and serve."""
    import datetime as dt

    import uvicorn

    if cpu is not None:
        _pin_to_core(cpu, workers)

    from api.app import database_url as resolve_url
    from api.app import open_engine, served_app
    from doudi import demo as demo_region
    from doudi import logs
    from doudi.catalogue import Catalogue

    url = resolve_url(database_url)
    os.environ["DOUDI_DATABASE_URL"] = url  # what the app factory reads
    app_ = served_app(url)
    if demo:
        files = services.open_library()
        engine = open_engine(url)
        tokens = demo_region.seed(engine, Catalogue(engine, files), files, dt.datetime.now())
        passwords = demo_region.set_passwords(engine, dt.datetime.now())
        engine.dispose()
        for kind, secrets in (("tokens", tokens), ("passwords", passwords)):
            folder = Path(f"var/demo-{kind}")
            folder.mkdir(parents=True, exist_ok=True)
            for user, secret in secrets.items():
                path = folder / user
                path.write_text(secret + "\n", encoding="utf-8")
                path.chmod(0o600)
        typer.echo(
            "Demo users (new tokens and passwords on every start; also in var/demo-tokens/, var/demo-passwords/):"
        )
        typer.echo(f"  {'user':<14} {'password (web pages)':<20} token (API)")
        for user, token in tokens.items():
            typer.echo(f"  {user:<14} {passwords[user]:<20} {token}")
    typer.echo(f"Doudi on http://{host}:{port}  (sign in: http://{host}:{port}/login; API: /openapi.json)")
    if workers == 1:
        uvicorn.run(app_, host=host, port=port, log_config=logs.uvicorn_config())
    else:  # each process builds its own app from DOUDI_DATABASE_URL; the schema is already migrated above
        uvicorn.run(
            "api.app:served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=logs.uvicorn_config(),
        )


def _pin_to_core(cpu: int, workers: int) -> None:
    """Run this process, and every thread it starts from now on, on core `cpu` only."""
    if workers != 1:
        _fail(["--cpu: keeps one server process on one core; with --workers, leave the cores to the workers"])
    if not hasattr(os, "sched_setaffinity"):
        _fail(["--cpu: this system cannot keep a process on a core (Linux can)"])
    allowed = sorted(os.sched_getaffinity(0))
    if cpu not in allowed:
        _fail([f"--cpu: core {cpu} is not one this process may use ({', '.join(map(str, allowed))})"])
    # Every thread already running (libraries start some on import) as well as this one; later threads
    # inherit it from the thread that starts them.
    tasks = Path("/proc/self/task")
    for thread in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        os.sched_setaffinity(thread, {cpu})


users_app = typer.Typer(
    help="Accounts: create users (printing their token), set passwords, revoke tokens.", no_args_is_help=True
)
app.add_typer(users_app, name="users")


def _session_for(database_url: str | None) -> Any:
    from sqlalchemy.orm import Session

    from api.app import database_url as resolve_url
    from api.app import open_engine
    from ledger.migrations import upgrade

    url = resolve_url(database_url)
    upgrade(url)
    return Session(open_engine(url))


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="desk, finance, policy or admin.")],
    hospital: Annotated[str | None, typer.Option("--hospital", help="The desk's hospital id.")] = None,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create a user and print their token (shown this once); with --password-stdin, also a password for
    the web pages."""
    import datetime as dt

    from doudi import accounts, registry
    from doudi.accounts import SYSTEM
    from settlement.errors import ClaimError

    now = dt.datetime.now()
    try:
        user = registry.validated(accounts.UserIn, {"name": name, "role": role, "hospital_id": hospital})
        password = _password_from_stdin() if password_stdin else None
        with _session_for(database_url) as session, session.begin():
            accounts.create_user(session, user, now)
            token = accounts.issue_token(session, name, now)
            if password is not None:
                accounts.set_password(session, name, password)
            accounts.audit(session, SYSTEM, "user.create", name, user.model_dump(), now)
    except ClaimError as err:
        _fail([str(e) for e in err.errors])
    typer.echo(token)


PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the web sign-in password from the first line of stdin.")
]


def _password_from_stdin() -> str:
    from doudi import accounts
    from settlement.errors import ClaimError

    password = sys.stdin.readline().rstrip("\r\n")
    problems = accounts.password_problems(password)
    if problems:
        raise ClaimError(problems)
    return password


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: PasswordStdin = False,
    database_url: DatabaseOption = None,
) -> None:
    """Set a user's password for the web pages (asked twice, not shown); their browser sessions end."""
    import datetime as dt

    from doudi import accounts
    from doudi.accounts import SYSTEM
    from settlement.errors import ClaimError

    now = dt.datetime.now()
    try:
        if password_stdin:
            password = _password_from_stdin()
        else:
            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        with _session_for(database_url) as session, session.begin():
            accounts.set_password(session, name, password)
            ended = accounts.end_web_sessions(session, name, now)
            accounts.audit(session, SYSTEM, "user.password", name, {"sessions_ended": ended}, now)
    except ClaimError as err:
        _fail([str(e) for e in err.errors])
    typer.echo(f"password of {name} set; {ended} browser session(s) ended")


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="User name.")],
    token_id: Annotated[str | None, typer.Option("--token-id", help="Only this token (default: all).")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a user's tokens (all, or one by its id)."""
    import datetime as dt

    from doudi import accounts
    from doudi.accounts import SYSTEM
    from ledger.models import User

    now = dt.datetime.now()
    with _session_for(database_url) as session, session.begin():
        if session.get(User, name) is None:
            _fail([f"{name}: no such user"])
        count = accounts.revoke(session, name, now, token_id)
        if count == 0:
            _fail([f"{name}: no active token to revoke" + (f" with id {token_id}" if token_id else "")])
        accounts.audit(session, SYSTEM, "token.revoke", name, {"token_id": token_id, "revoked": count}, now)
    typer.echo(f"revoked {count} token(s) of {name}")


@app.command()
def simulate(
    claims: Annotated[
        Path, typer.Option("--claims", help="Claims dataset (.parquet, .csv, or a folder of Parquet parts).")
    ],
    baseline: Annotated[list[str], typer.Option("--baseline", help="POLICY[@VERSION], or AREA=POLICY (repeat).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for summary.json, report.xlsx, report.html.")],
    reform: Annotated[
        list[str] | None, typer.Option("--reform", help="POLICY[@VERSION], AREA=POLICY or a policy file (repeat).")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="POLICY@VERSION:PATH=VALUE, applied to the reform (repeat).")
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option("--sheet", help="A parameter sheet (XLSX: policy, path, value).")
    ] = None,
    threshold: Annotated[
        str, typer.Option(help="Household burden share of annual income counted as catastrophic.")
    ] = "0.4",
    scheduler: Annotated[
        str | None,
        typer.Option(help="Run on Dask: a scheduler's address (tcp://host:8786), or local[:N] for N local workers."),
    ] = None,
    part_claims: Annotated[
        int, typer.Option("--part-claims", min=1, help="Claims per partition (memory per worker grows with it).")
    ] = 250_000,
    library_dir: LibraryOption = LIBRARY_DIR,
) -> None:
    """Re-settle past claims under the baseline and under a reform, exactly as the desks would, and compare."""
    import time
    from decimal import Decimal, InvalidOperation

    from simulation import reform as reforms
    from simulation.dataset import DatasetError
    from simulation.report import yuan
    from simulation.run import Scenario, ScenarioError
    from simulation.runner import Job, labels
    from simulation.runner import simulate as run_simulation
    from simulation.tally import share_fraction

    started = time.perf_counter()
    library = _library(library_dir)
    problems: list[str] = []
    try:
        base_map = reforms.assignment(baseline, "--baseline")
    except reforms.ReformError as err:
        _fail(["the baseline is refused:", *(f"  {p}" for p in err.problems)])
    sheet_data = None
    if sheet is not None:
        try:
            sheet_data = (str(sheet), sheet.read_bytes())
        except OSError as err:
            problems.append(f"--sheet: cannot read {sheet}: {err}")
    try:
        changed = reforms.build_reform(library, base_map, reform or [], overrides or [], sheet_data)
    except reforms.ReformError as err:
        problems += [str(p) for p in err.problems]
        changed = None
    try:
        share = Decimal(threshold)
        share_fraction(share)
    except (InvalidOperation, ValueError) as err:
        problems.append(
            f"--threshold: {threshold!r}: {err}"
            if isinstance(err, ValueError)
            else f"--threshold: {threshold!r} is not a decimal number"
        )
        share = Decimal("0.4")
    base = Scenario("baseline", library, base_map)
    problems += base.problems()
    if problems or changed is None:
        _fail(["the simulation is refused:", *(f"  {p}" for p in problems)])
    assert changed is not None  # refused above otherwise
    job = Job(base, Scenario("reform", changed.library, changed.policies), share)

    last = [0.0]

    def show(progress: Any) -> None:
        now = time.perf_counter()
        if now - last[0] >= 1.0 or progress.parts_done == progress.parts_total:
            last[0] = now
            _step(progress.line())

    _step(f"reading {claims} in partitions of about {part_claims:,} claims" + (f" on {scheduler}" if scheduler else ""))
    try:
        comparison, written = run_simulation(
            claims,
            job,
            out,
            labels(claims, base_map, changed.label),
            scheduler=scheduler,
            part_claims=part_claims,
            progress=show,
            person_ids=masking.identifier,  # a policy report needs no one's full number
        )
    except DatasetError as err:
        _fail([str(err)])
    except (ScenarioError, ValueError, OSError) as err:
        _fail([str(err)])
    total = comparison.funds.to_dict("records")[-1]  # the last row is the total
    typer.echo(
        f"{comparison.claims:,} claims: fund spending {yuan(total['baseline'])} → {yuan(total['reform'])} yuan "
        f"({yuan(total['difference'])}); {time.perf_counter() - started:.1f} s"
    )
    for path in written:
        typer.echo(str(path))


reconcile_app = typer.Typer(help="Monthly reconciliation: statements, matching a hospital's file, closing.")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(cli_operations.audit_app, name="audit")  # audit verify, backup, restore: for IT staff
app.command()(cli_operations.backup)
app.command()(cli_operations.restore)
MonthOption = Annotated[str, typer.Option("--month", help="The month, like 2014-07.")]


def _month(text: str) -> Any:
    from reconciliation.frames import Month

    try:
        return Month.parse(text)
    except ValueError as err:
        _fail([f"--month: {err}"])


def _step(message: str) -> None:
    typer.echo(f"… {message}", err=True)


@reconcile_app.command("statement")
def reconcile_statement(
    month: MonthOption,
    out: Annotated[Path, typer.Option("--out", help="Folder for the files (made if missing).")],
    hospital: Annotated[str | None, typer.Option("--hospital", help="One hospital (default: all).")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Write a month's statement (summary, detail, checks as CSV and XLSX; national detail files), checked
    to balance before anything is written."""
    from doudi import reconcile
    from reconciliation.statement import Unbalanced

    chosen = _month(month)
    _step(f"reading {chosen} from the ledger")
    with _session_for(database_url) as plain, reconcile.month_session(plain.get_bind()) as session:
        built = reconcile.statement(session, chosen, hospital)
    _step(f"{len(built.detail)} detail rows, {len(built.summary)} hospital × fund rows; writing files")
    try:
        found = reconcile.write_files(built, out)
    except Unbalanced as err:
        _fail([str(err)])
    for file in found["files"]:
        typer.echo(f"{file['sha256']}  {out / file['name']}")
    typer.echo(f"balanced: {len(built.checks)} checks hold; due to hospitals {_yuan(found['due_fen'])} yuan")


@reconcile_app.command("match")
def reconcile_match(
    month: MonthOption,
    hospital: Annotated[str, typer.Option("--hospital", help="The hospital whose file this is.")],
    file: Annotated[Path, typer.Option("--file", help="The hospital's detail file (.zip, .txt, .csv, .xlsx).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the difference report (made if missing).")],
    database_url: DatabaseOption = None,
) -> None:
    """Compare a hospital's own detail file with the ledger; write the difference report (CSV and XLSX).
    Exit 0 when balanced, 1 when there are differences or the file has problems."""
    from doudi import reconcile
    from reconciliation.matching import difference_sheets
    from reconciliation.writers import csv_bytes, xlsx_bytes

    chosen = _month(month)
    try:
        data = file.read_bytes()
    except OSError as err:
        _fail([f"--file: cannot read {file}: {err}"])
    _step(f"matching {file.name} against {chosen} of {hospital}")
    with _session_for(database_url) as session:
        matching = reconcile.match_file(session, chosen, hospital, data, file.name)
    read = matching.file
    typer.echo(f"file: {read.format}{' (zipped)' if read.zipped else ''}, encoding {read.encoding or '-'}")
    for problem in read.problems[:20]:
        typer.echo(masking.scrub(f"  row {problem.row}, {problem.column}: {problem.message}"))
    if len(read.problems) > 20:
        typer.echo(f"  … and {len(read.problems) - 20} more problems (see the report)")
    sheets = difference_sheets(matching)
    out.mkdir(parents=True, exist_ok=True)
    (out / "differences.csv").write_bytes(csv_bytes(sheets[-1]))
    (out / "differences.xlsx").write_bytes(xlsx_bytes(sheets, chosen.start))
    for kind, count in matching.counts.items():
        if count:
            typer.echo(f"{kind}: {count}")
    verdict = matching.verdict
    typer.echo(f"verdict: {verdict.stmt_rslt} {verdict.stmt_rslt_dscr}")
    typer.echo(f"report: {out / 'differences.csv'}, {out / 'differences.xlsx'}")
    if not verdict.balanced:
        raise typer.Exit(1)


@reconcile_app.command("close")
def reconcile_close(month: MonthOption, database_url: DatabaseOption = None) -> None:
    """月结: write the month's files once into the archive (DOUDI_ARCHIVE_DIR, default var/reconciliation),
    store their hashes and freeze the month. Closing again changes nothing."""
    import datetime as dt

    from doudi import reconcile
    from doudi.accounts import SYSTEM
    from reconciliation.statement import Unbalanced

    chosen = _month(month)
    folder = reconcile.archive_folder(chosen)
    with _session_for(database_url) as session:
        engine = session.get_bind()
    try:
        found, new = reconcile.close_month(
            engine, chosen, SYSTEM, dt.datetime.now(), lambda built: reconcile.write_files(built, folder)
        )
    except (reconcile.MonthError, Unbalanced) as err:
        _fail([str(err)])
    typer.echo(f"{chosen} {'closed' if new else 'was already closed'}; files in {folder}")
    for file in found["files"]:
        typer.echo(f"{file['sha256']}  {file['name']}")


def _yuan(fen: int) -> str:
    from reconciliation.national import yuan_text

    return yuan_text(fen)


@policy_app.command("list")
def policy_list(library_dir: LibraryOption = LIBRARY_DIR) -> None:
    """Every policy in the library with its region, dates and funds."""
    for row in services.policy_summary(_library(library_dir)):
        until = row["valid_until"] or "…"
        typer.echo(f"{row['policy']:<28} {row['region']}  {row['valid_from']} – {until:<10}  {row['title']}")
        typer.echo(f"{'':<28} funds: {', '.join(row['tiers'])}")


@policy_app.command("show")
def policy_show(
    policy: Annotated[str, typer.Argument(help="id or id@version")], library_dir: LibraryOption = LIBRARY_DIR
) -> None:
    """A policy as it settles: every fund (included ones too), its parameters and their references."""
    library = _library(library_dir)
    try:
        found = library.get(policy)
    except KeyError as err:
        _fail([str(err.args[0])])
    typer.echo(yaml.safe_dump(services.composed_view(library, found), allow_unicode=True, sort_keys=False))


@policy_app.command("validate")
def policy_validate(
    files: Annotated[list[Path], typer.Argument(help="Policy or disease-list files.")],
    library_dir: LibraryOption = LIBRARY_DIR,
) -> None:
    """Check policy files against the schema and the library; print every problem; exit 1 on any."""
    base, base_problems = load_library([library_dir])
    _, problems = load_library(files, base=base)
    problems = [p for p in problems if p not in base_problems or str(Path(p.file)) in {str(f) for f in files}]
    if problems:
        _fail([str(p) for p in problems])
    typer.echo(f"ok: {len(files)} file(s) valid")


@policy_app.command("diff")
def policy_diff(
    a: Annotated[str, typer.Argument(help="id@version")],
    b: Annotated[str, typer.Argument(help="id@version")],
    everything: Annotated[bool, typer.Option("--all", help="Also titles, notes and references.")] = False,
    library_dir: LibraryOption = LIBRARY_DIR,
) -> None:
    """Parameter-by-parameter differences between two policies, with their effective dates."""
    library = _library(library_dir)
    try:
        left, right = library.get(a), library.get(b)
    except KeyError as err:
        _fail([str(err.args[0])])
    rows = services.diff_policies(library, left, right, everything)
    typer.echo(f"{left.key}: in force {left.valid_from} – {left.valid_until or '…'}")
    typer.echo(f"{right.key}: in force {right.valid_from} – {right.valid_until or '…'}")
    if not rows:
        typer.echo("no differences")
    for path, old, new in rows:
        typer.echo(f"{path}: {_show(old)} → {_show(new)}")


def _show(value: Any) -> str:
    if value is services.ABSENT:
        return "(not set)"
    return "none" if value is None else json.dumps(value, ensure_ascii=False)


@app.command()
def generate(
    people: Annotated[int, typer.Option("--people", min=1, help="Persons in the synthetic population.")],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed; the same seed gives the same claims.")],
    out: Annotated[Path, typer.Option("--out", help="A .parquet or .csv file, or a folder for Parquet parts.")],
    profile: Annotated[str, typer.Option("--profile", help="The model's parameters.")] = "jilin-2014",
    part_claims: Annotated[
        int, typer.Option("--part-claims", min=1, help="At most this many claims per part file of a folder.")
    ] = 250_000,
) -> None:
    """Write a synthetic province-year of claims (the model and its sources: docs/claims-dataset.md).

    The population is drawn and written 500,000 persons at a time, so any size fits in memory; a folder
    gets Parquet parts cut between households (a dataset partitioned by household)."""
    import time

    from simulation.dataset import ClaimsWriter
    from simulation.generate import PROFILES, generate_chunks

    if profile not in PROFILES:
        _fail([f"--profile: {profile!r} is not one of {', '.join(PROFILES)}"])
    if out.suffix.lower() not in ("", ".parquet", ".csv"):
        _fail([f"--out: {out} must end in .parquet or .csv, or name a folder for Parquet parts"])
    started = time.perf_counter()
    claims = persons = households = 0
    try:
        if out.parent != Path("."):
            out.parent.mkdir(parents=True, exist_ok=True)
        with ClaimsWriter(out, part_claims) as writer:
            for chunk in generate_chunks(people, seed, PROFILES[profile]):
                writer.write(chunk)
                frame = chunk.frame
                claims += len(frame)
                persons += frame["person_id"].nunique()
                households += frame["household_id"].nunique()
                if people > 500_000:
                    _step(f"{claims:,} claims written")
    except OSError as err:
        _fail([f"--out: cannot write {out}: {err}"])
    typer.echo(
        f"{claims:,} claims of {persons:,} people in {households:,} households (of {people:,} people; profile "
        f"{profile}, seed {seed}) written to {out} in {time.perf_counter() - started:.1f} s"
    )


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # pragma: no cover - `doudi policy list | head`
        sys.exit(0)


__all__ = ["FieldError", "app", "main"]
