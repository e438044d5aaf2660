"""The delivery path: one claimed delivery, from the queue to its recorded outcome.

Read it as a line; each stage hands the next one value:

    claim    _runner           claims due deliveries into free slots (``engine.queue``)
    route    _routing          the recipient domain's destinations (transport map, else MX)
             _tls_policy       where plain text is never allowed
    lane     _lanes            waits per site under the shaper (``engine.throttle``)
    send     _transport        Envelope, SendResult, the Session/Transport seam
             _smtp, _smtp_session, _pipelining   the SMTP client (aiosmtplib)
    outcome  _outcomes         what a result means: an ``AttemptResult`` (``engine.bounce``)
    record   _recorder         writes outcomes in batches, feeds the suppression list

Beside the line: ``_broadcast_cache`` (rendered templates, ``engine.message``), ``_upkeep``
(liveness, stale leases) and ``_reporter`` (shaping state for operators).

Offered to the rest of mamoru:

    context        ``Engine``: the parts opened together from the settings; ``Engine.runner()``
    workers        ``mamoru serve --workers N``: runner processes on one queue
    preflight      start-up checks before any runner starts
    shaping_state  the shaper's state in the database, for ``mamoru shaping status``
"""
