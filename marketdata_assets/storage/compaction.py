"""Repair what writers can leave behind in a monthly dataset; safe to run any number of times.

The served layer is written by month read-modify-write, so it never accumulates small files. What can
still be found there:

* ``.tmp-*`` files of a writer that crashed before its final move: removed once older than
  ``tmp_older_than`` (a younger one may belong to a writer still running);
* extra Parquet files in a month directory (an older per-day layout, a copy, a peer tool): merged
  into ``data.parquet`` with day-replacement semantics, oldest file first, so for every day the most
  recently written file wins (``data.parquet`` wins ties). The merged file is committed atomically
  under the month lock *before* any merged file is deleted, so a crash at any point loses nothing,
  and a second run finds nothing to merge and changes nothing.

Files that cannot be merged (unreadable, foreign schema, rows of another month) are reported and
left where they are, never deleted.

On S3, "most recent" is the objects' ``LastModified``, which S3 keeps to the second: a leftover written
in the same second as ``data.parquet`` ties, and the tie goes to ``data.parquet``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs

from marketdata_assets.storage.atomic import (
    WriteInfo,
    frame_from_table,
    is_tmp_name,
    read_table,
)
from marketdata_assets.storage.root import (
    DATA_FILE,
    StorageRoot,
    dataset_segments,
    key_segments,
    parse_month,
)
from marketdata_assets.storage.served import MONTHLY_DATASETS, MonthlyDataset

DEFAULT_TMP_AGE = timedelta(minutes=30)


@dataclass
class CompactionReport:
    """What one :func:`compact` run did."""

    removed_tmp: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # files folded into data.parquet and then removed
    written: list[WriteInfo] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason"; left in place

    @property
    def changed(self) -> bool:
        return bool(self.removed_tmp or self.merged or self.written)


def remove_stale_tmp(
    root: StorageRoot, prefix: str, older_than: timedelta = DEFAULT_TMP_AGE, now: datetime | None = None
) -> list[str]:
    """Delete ``.tmp-*`` files under ``prefix`` (e.g. ``candles``, ``raw/ohlcv_1m``) older than ``older_than``."""
    now = now or datetime.now(UTC)
    directory = root.path(*dataset_segments(prefix))
    selector = pafs.FileSelector(directory, allow_not_found=True, recursive=True)
    removed = []
    for info in root.fs.get_file_info(selector):
        if info.type != pafs.FileType.File or not is_tmp_name(info.base_name):
            continue
        if info.mtime is not None and _aware(info.mtime) > now - older_than:
            continue
        root.fs.delete_file(root.check_inside(info.path))
        removed.append(root.display(info.path))
    return removed


def compact(
    root: StorageRoot,
    dataset: MonthlyDataset | str,
    *,
    tmp_older_than: timedelta = DEFAULT_TMP_AGE,
    now: datetime | None = None,
) -> CompactionReport:
    """Remove stale temporary files and merge stray Parquet files of ``dataset`` (``candles``, ``dvol``,
    ``gaps`` or a :class:`MonthlyDataset`) into their month's ``data.parquet``."""
    if isinstance(dataset, str):
        if dataset not in MONTHLY_DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; compactable: {', '.join(MONTHLY_DATASETS)}")
        dataset = MONTHLY_DATASETS[dataset]
    report = CompactionReport(removed_tmp=remove_stale_tmp(root, dataset.name, tmp_older_than, now))
    for keys in dataset.partitions(root):
        partition_dir = root.path(
            *dataset_segments(dataset.name), *key_segments(keys, dataset.partition_keys)
        )
        for info in root.fs.get_file_info(pafs.FileSelector(partition_dir, allow_not_found=True)):
            if info.type != pafs.FileType.Directory or not info.base_name.startswith("month="):
                continue
            month = info.base_name.removeprefix("month=")
            try:
                parse_month(month)
            except ValueError:
                report.skipped.append(f"{root.display(info.path)}: not a month directory")
                continue
            if _leftovers(root, info.path):
                _merge_month(root, dataset, keys, month, report)
    return report


def _leftovers(root: StorageRoot, month_dir: str) -> list[pafs.FileInfo]:
    """Parquet files in a month directory (at any depth) other than its ``data.parquet``."""
    selector = pafs.FileSelector(month_dir, allow_not_found=True, recursive=True)
    found = []
    for info in root.fs.get_file_info(selector):
        relative = posixpath.relpath(info.path, month_dir)
        hidden = any(part.startswith((".", "_")) for part in relative.split("/"))
        if (
            info.type == pafs.FileType.File
            and relative != DATA_FILE
            and not hidden
            and relative.endswith(".parquet")
        ):
            found.append(info)
    return found


def _merge_month(
    root: StorageRoot, dataset: MonthlyDataset, keys: dict[str, str], month: str, report: CompactionReport
) -> None:
    segments = dataset.month_segments(keys, month)
    path = root.path(*segments)
    month_dir = posixpath.dirname(path)
    with root.lock(*segments):
        leftovers = _leftovers(root, month_dir)  # again, under the lock: a peer may have merged them
        sources = [(info, False) for info in leftovers]
        current = root.fs.get_file_info(path)
        if current.type == pafs.FileType.File:
            sources.append((current, True))
        # Oldest first, data.parquet last among equals: later sources replace earlier ones day by day.
        sources.sort(key=lambda item: (_mtime(item[0]), item[1], item[0].path))
        merged = dataset.schema.empty_table()
        folded = []
        for info, is_current in sources:
            try:
                table = _conform(root, dataset, keys, month, info.path)
            except (OSError, ValueError, pa.ArrowException) as exc:
                if is_current:
                    report.skipped.append(
                        f"{root.display(info.path)}: unreadable month file ({exc}); month left as is"
                    )
                    return
                report.skipped.append(f"{root.display(info.path)}: {exc}")
                continue
            days = {d.date() for d in dataset.days_of(frame_from_table(table)).unique()}
            merged = pa.concat_tables([dataset.without_days(merged, days), table])
            if not is_current:
                folded.append(info.path)
        if not folded:
            return
        try:
            report.written.append(dataset.commit_month(root, path, [merged]))
        except ValueError as exc:
            report.skipped.extend(f"{root.display(p)}: merge failed ({exc})" for p in folded)
            return
        # Only now, with the merged file committed, are the merged files safe to delete.
        for leftover in folded:
            root.fs.delete_file(leftover)
            report.merged.append(root.display(leftover))
        _remove_empty_dirs(root, month_dir, folded)


def _conform(
    root: StorageRoot, dataset: MonthlyDataset, keys: dict[str, str], month: str, path: str
) -> pa.Table:
    """A stray file's rows in the dataset's schema; partition columns (incl. ``month``) are dropped
    after checking they agree with the directory."""
    frame = frame_from_table(read_table(root.fs, path))
    if "month" in frame.columns:
        if (frame["month"].astype(str) != month).any():
            raise ValueError(f"column 'month' disagrees with the directory month={month}")
        frame = frame.drop(columns=["month"])
    if len(frame) == 0:
        return dataset.schema.empty_table()
    day_source = dataset.day_column or dataset.time_column
    if day_source not in frame.columns:
        raise ValueError(f"not a {dataset.name} file: no {day_source!r} column")
    try:
        days = dataset.days_of(frame)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"column {day_source!r} does not hold UTC days/timestamps ({exc})") from None
    if (days.dt.strftime("%Y-%m") != month).any():
        raise ValueError(f"holds rows outside {month}; not merged")
    tables = [
        dataset.to_table(frame[(days == day).to_numpy()], keys, day.date()) for day in sorted(days.unique())
    ]
    return pa.concat_tables(tables)


def _remove_empty_dirs(root: StorageRoot, month_dir: str, removed_files: list[str]) -> None:
    """Remove sub-directories of the month directory left empty by the merge (deepest first)."""
    parents = {posixpath.dirname(p) for p in removed_files} - {month_dir}
    for directory in sorted(parents, key=lambda p: p.count("/"), reverse=True):
        while directory != month_dir and directory.startswith(month_dir + "/"):
            contents = root.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
            if contents:
                break
            root.fs.delete_dir(directory)
            directory = posixpath.dirname(directory)


def _mtime(info: pafs.FileInfo) -> datetime:
    return _aware(info.mtime) if info.mtime is not None else datetime.min.replace(tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
