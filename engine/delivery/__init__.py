"""The delivery path: one claimed delivery, from the queue to its recorded outcome.

Read it as a line; each stage hands the next one value and never calls back into the stage
before it (the runner claims and routes, the lanes send, the outcome stage decides and hands
the result to the recorder):

    claim    _runner           claims due deliveries into free slots (``engine.queue``)
    route    _routing          the recipient domain's destinations (transport map, else MX)
             _tls_policy       where plain text is never allowed
    lane     _lanes            waits per site under the shaper (``engine.throttle``)
    send     _transport        Envelope, SendResult, the Session/Transport seam
             _smtp, _smtp_session, _pipelining   the SMTP client (aiosmtplib)
    outcome  _outcomes         what a result means: an ``AttemptResult`` (``engine.bounce``),
                               handed to the recorder
    record   _recorder         writes outcomes in batches, feeds the suppression list

Beside the line: ``_broadcast_cache`` (rendered templates, ``engine.message``), ``_upkeep``
(liveness, stale leases), ``_reporter`` (shaping state for operators) and ``_tasks`` (the
background tasks every stage starts, waited for at a graceful stop).

Offered to the rest of mamoru:

    context        ``Engine``: the parts opened together from the settings; ``Engine.runner()``
    workers        ``mamoru serve --workers N``: runner processes on one queue
    preflight      start-up checks before any runner starts
    shaping_state  the shaper's state in the database, for ``mamoru shaping status``
"""
