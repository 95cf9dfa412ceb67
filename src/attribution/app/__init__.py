"""Use cases shared by every adapter (the CLI, the HTTP API): `config` (put, delete and list
pixels and line items, with every check), `reports` (outcome tallies, windows, percentiles,
pixel health) and `hourly` (the rows of the hourly conversion reports). They depend on the domain and the contract, never on Faust, aiohttp or click."""
