"""Configuration: the settings a daemon or command runs with.

What it owns: the settings and their validation (settings.py: pydantic-settings, TOML plus
`INGESTD_*` variables, one line naming a bad key, the token's sources), finding and reading the
config file, and the quick path `status` takes without pydantic (file.py), and the upload
bandwidth and hours' syntax (limits.py).

What it does not own: what changes when the config is reloaded (daemon.reload), or acting on
any setting (every component reads its own).
"""
