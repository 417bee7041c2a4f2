"""`./scripts/bench scale` (`bench.scale.run`): appends on SQLite and on PostgreSQL, pages from one and from
two `ledger serve` hosts, tile reads through nginx against the portal; `./scripts/bench tiles` is
`bench.scale.tiles` alone. `servers` starts the nginx and the PostgreSQL they need, and the tests import it
from here (the benchmarks import nothing from `tests/`).
"""
