"""mamoru engine: the outbound mail transfer agent and the domain model under it.

One package per stage, each importing only those below it (``[tool.importlinter]`` in
pyproject.toml checks this):

    delivery   the hot path: claim -> route -> lane -> send -> outcome -> record
    staff      staff accounts, rights, the audit log, broadcasts sent by staff
    twoway     sending to an audience with read confirmation, surveys, reports, replies
    message    one mail: building, signing, personal links, return paths
    people     boards, schools, classes, groups, accounts, contacts; audience -> deliveries
    queue      the deliveries table: fan-out, claim, lease, retry, expiry
    bounce     what a receiver's answer means; the suppression list; the error report
    throttle   carrier profiles and the shaper
    platform   settings, database, clock, errors, sealing, metrics, CSV, PDF
"""
