"""The platform under everything else in the engine: it imports nothing above it.

    config     settings: one TOML file plus ``MAMORU_*`` environment overrides, validated;
               config_search (which file), config_values (durations, host:port, networks),
               config_checks (the [attachments] and [backup] checks)
    db         the asyncpg pool, migrations, ``analyze``; embedded (the embedded PostgreSQL:
               start, recover, status, stop); pg_tools (pg_dump / pg_restore)
    clock      the one clock (wall and monotonic time), replaceable in tests
    errors     the one exception hierarchy (``MamoruError`` and its kinds)
    key_files  secret keys in 0600 files outside the database; link_key (the links' key)
    sealing    encryption at rest (AES-GCM) and keyed lookup hashes
    at_rest    sealing rows stored in plain text before migration 016
    address    checking, normalising and masking mail addresses
    outage     telling a database outage from a failed statement, and saying so once
    metrics    the Prometheus metrics; service_status (last result of periodic checks)
    csv_io     CSV in and out (UTF-8 with BOM out; UTF-8 or CP932 in); private_files (0600)
    pdf        print-outs (A4 PDF)
    backup_archive, backup_files   the sealed backup archive and its generations

Nothing is imported here: ``engine.throttle`` and the bounce classifier use ``errors`` and
``clock`` without pulling in the database driver.
"""
