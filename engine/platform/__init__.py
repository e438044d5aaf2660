"""The platform under everything else in the engine: it imports nothing above it.

    config     settings: one TOML file plus ``MAMORU_*`` environment overrides, validated
    db         the asyncpg pool, the embedded PostgreSQL, migrations, ``analyze``
    clock      the one clock (wall and monotonic time), replaceable in tests
    errors     the one exception hierarchy (``MamoruError`` and its kinds)
    key_files  secret keys in 0600 files outside the database
    sealing    encryption at rest (AES-GCM) and keyed lookup hashes
    at_rest    sealing rows stored in plain text before migration 016
    address    checking, normalising and masking mail addresses
    outage     telling a database outage from a failed statement, and saying so once
    metrics    the Prometheus metrics
    csv_io     CSV in and out (UTF-8 with BOM out; UTF-8 or CP932 in)
    pdf        print-outs (A4 PDF)

Nothing is imported here: ``engine.throttle`` and the bounce classifier use ``errors`` and
``clock`` without pulling in the database driver.
"""
