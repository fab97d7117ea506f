"""The sealed SQL sandbox: one SELECT over the dataset's views, in the locked database."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa

from ..errors import PublishError, QueryError
from .duck import DUCKDB_ERRORS, first_line, quote, sql_string
from .engine import Deadline, referenced_names
from .files import READ_ATTEMPTS, FileReader

__all__ = ["BATCH_ROWS", "Sandbox"]

BATCH_ROWS = 65_536
_DUCKDB_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}


class Sandbox(FileReader):
    """`sql`: views that are catalog objects of the database, and nothing else to read."""

    def views(self) -> dict[str, list[tuple[str, str]]]:
        """SQL view name -> the (site, table) pairs it reads: ``rack`` spans the sites,
        ``rack_1`` is site 1 only (skipped if a table has that name)."""
        views: dict[str, list[tuple[str, str]]] = {}
        for site, tables in self.tables().items():
            for table in tables:
                views.setdefault(table, []).append((site, table))
        for site, tables in self.tables().items():
            for table in tables:
                views.setdefault(f"{table}_{site}", [(site, table)])
        return views

    def sql(self, statement: str) -> pa.Table:
        """Run one read-only SELECT over the views (see `views`); the whole result."""
        for _ in range(READ_ATTEMPTS - 1):
            try:
                return self.sql_reader(statement).read_all()
            except QueryError:
                if not self._replaced():
                    raise
        return self.sql_reader(statement).read_all()

    def sql_reader(self, statement: str, batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
        """Run one read-only SELECT (or SHOW, DESCRIBE, SUMMARIZE) over the views, streaming.

        The statement is parsed, bound and run only in the Dataset's locked database, and
        a failure raises a `QueryError` with no exception chained to it.
        """
        deadline = self._deadline()
        cursor = deadline.cursor
        _check_statement(cursor, statement)
        self._make_views(cursor, statement)
        error = None
        try:
            with deadline.running():
                relation = cursor.sql(statement)
                assert relation is not None  # a SELECT always gives a relation
                reader = relation.to_arrow_reader(batch_rows)
        except DUCKDB_ERRORS as exc:
            error = self._sql_error(exc, deadline)
        if error is not None:
            raise error  # outside the except clause: nothing of DuckDB's is chained to it
        return pa.RecordBatchReader.from_batches(reader.schema, self._guarded(reader, deadline))

    def _guarded(
        self, reader: pa.RecordBatchReader, deadline: Deadline
    ) -> Iterator[pa.RecordBatch]:
        # Errors found while the rows are computed arrive during iteration.
        while True:
            error = None
            try:
                with deadline.running():
                    batch = reader.read_next_batch()
            except StopIteration:
                return
            except DUCKDB_ERRORS as exc:
                error = self._sql_error(exc, deadline)
            if error is not None:
                raise error
            yield batch

    def _sql_error(self, exc: Exception, deadline: Deadline) -> QueryError:
        """One line for the user; for a refused file, the same line whatever the file is."""
        names = ", ".join(self.views())
        if isinstance(exc, duckdb.PermissionException) or "Permission Error" in str(exc):
            return QueryError(
                f"the SQL can read only the views ({names}): other files, settings and "
                "extensions are refused"
            )
        return self._limit_error(exc, deadline) or QueryError(
            f"{first_line(exc)} (the SQL reads only the views: {names})"
        )

    def _make_views(self, cursor: duckdb.DuckDBPyConnection, statement: str) -> None:
        """Make the views the statement needs, as catalog objects of the database.

        A directory root gets every view over its files on the first call. A remote root
        gets, first, a stand-in for each view (its columns, from the manifests, but an
        error if scanned), then the real view for each name in the statement's text, so
        that only those tables' files are fetched.
        """
        views = self.views()
        with self._views_lock:
            first = self._real_views is None
            real = self._real_views = set() if first else self._real_views
            assert real is not None
            if first and self.cache is not None:
                for name, pairs in views.items():
                    stand_in = self._stand_in_sql(name, pairs)
                    cursor.execute(f"CREATE VIEW {quote(name)} AS {stand_in}")
            wanted = set(views) if self.cache is None else referenced_names(statement)
            for name in sorted((wanted & set(views)) - real):
                with self._files_lock:
                    files = [
                        f for site, table in views[name] for f in self._view_files(site, table)
                    ]
                sql = _view_sql(files) if files else self._stand_in_sql(name, views[name], True)
                try:
                    cursor.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {sql}")
                except DUCKDB_ERRORS as exc:
                    raise PublishError(
                        f"cannot read the files of view {name}: {first_line(exc)}; "
                        f"run `ess-export verify --target {self.target.uri}`"
                    ) from None
                real.add(name)

    def _stand_in_sql(self, name: str, pairs: list[tuple[str, str]], empty: bool = False) -> str:
        """A view's columns as its files give them, with no rows (`empty`) or an error if read.

        Files of one table share the manifest's columns; a view over several sites has
        them by name in site order, then the layout's `date` and `site`, as `_view_sql` gives.
        """
        columns: dict[str, str] = {}
        for site, table in pairs:
            for column in self.table_manifest(site, table).columns:
                columns.setdefault(column.name, _DUCKDB_TYPES[column.type])
        columns.update({"date": "DATE", "site": "VARCHAR"})  # DuckDB's order for hive keys
        listed = ", ".join(f"CAST(NULL AS {kind}) AS {quote(c)}" for c, kind in columns.items())
        if empty:  # a table with no published day yet
            return f"SELECT {listed} WHERE false"
        message = (
            f"view {name} was not named in the statement, so its files were not fetched; "
            "name it in the statement's text"
        )
        return f"SELECT {listed} FROM range(1) WHERE error({sql_string(message)}) IS NULL"

    def _view_files(self, site: str, table: str) -> list[str]:
        manifest = self.table_manifest(site, table)
        days = [p for p in manifest.partitions if "parquet" in p.files]
        return self._fresh_paths(site, table, days)


def _view_sql(files: list[str]) -> str:
    listed = ", ".join(sql_string(f) for f in files)
    return (
        f'SELECT * EXCLUDE ("table") FROM read_parquet([{listed}], hive_partitioning=true, '
        "union_by_name=true, hive_types={'site': VARCHAR, 'table': VARCHAR, 'date': DATE})"
    )


def _check_statement(connection: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Refuses all but one SELECT-like statement (SHOW, DESCRIBE, SUMMARIZE are SELECTs).

    The parser's verdict only: nothing is bound. Not EXPLAIN either: ``EXPLAIN ANALYZE
    COPY ... TO`` runs the COPY.
    """
    error = None
    try:
        statements = connection.extract_statements(statement)
    except duckdb.Error as exc:
        error = QueryError(first_line(exc))
    if error is not None:
        raise error
    if len(statements) != 1:
        raise QueryError(f"give exactly one SELECT statement (got {len(statements)})")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryError(
            f"only a read-only SELECT is allowed, not {kind.name}: the sql command cannot "
            "change settings, install extensions, attach databases or write files"
        )
