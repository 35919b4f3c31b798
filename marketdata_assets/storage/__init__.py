"""Storage: Parquet layout, atomic writes, compaction and the DuckDB catalog over the files.

Everything goes through a :class:`~marketdata_assets.storage.root.StorageRoot` (a pyarrow FileSystem
plus a base path: a local directory, ``file://`` or ``s3://``). Layout under the root::

    _root.json                                              synthetic/real claim (StorageRoot.claim)
    _locks/...                                              flock files of month rewrites (local roots;
                                                            object stores: Postgres advisory locks)
    raw/ohlcv_1m/exchange=X/symbol=Y/date=YYYY-MM-DD/data.parquet        one file per fetched day
    raw/dvol/currency=C/date=YYYY-MM-DD/data.parquet
    quarantine/ohlcv_1m/exchange=X/symbol=Y/date=YYYY-MM-DD/data.parquet rows that failed validation
    verdicts/ohlcv_1m/exchange=X/symbol=Y/date=YYYY-MM-DD/verdict.json   the validate step's verdict
    candles/timeframe=T/exchange=X/symbol=Y/month=YYYY-MM/data.parquet   served, one file per month
    dvol/timeframe=T/currency=C/month=YYYY-MM/data.parquet
    gaps/exchange=X/symbol=Y/month=YYYY-MM/data.parquet

Modules: :mod:`.root` (paths and their validation, the synthetic claim), :mod:`.locks` (month locks),
:mod:`.atomic` (temp-then-move deterministic Parquet writes), :mod:`.objectstore` (S3 settings and
single-version reads of S3 objects), :mod:`.schemas` (Arrow schemas), :mod:`.raw` (day files),
:mod:`.served` (month files: read-modify-write per day), :mod:`.verdicts` (each validated day's verdict),
:mod:`.compaction` (repair leftovers), :mod:`.catalog` (DuckDB).
"""

from marketdata_assets.storage.atomic import WriteInfo
from marketdata_assets.storage.locks import StorageLockError
from marketdata_assets.storage.root import InvalidNameError, StorageRoot, StorageRootError

__all__ = ["InvalidNameError", "StorageLockError", "StorageRoot", "StorageRootError", "WriteInfo"]
