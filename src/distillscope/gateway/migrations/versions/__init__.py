"""Migration scripts, applied in order by ``upgrade_database``."""
