"""People: the board, schools, grades, classes, groups, accounts and contacts; audiences.

The one place that knows the tables of migrations 007 and 010. Names, addresses and
registration codes are sealed at rest (engine/platform/sealing.py). Modules:

    store       People (pool + sealer + clock), the key check, the sealed values' purposes
    models      kinds, categories, delivery conditions, Audience, skip reasons
    codes       registration codes
    directory   organisations, school years, grades, classes, groups; name -> id lookups
    audience    audience -> addresses -> deliveries, in one transaction (``fan_out``;
                broadcasts go through ``engine.twoway.send_broadcast``, which links them)
    csv_import  reading and checking an accounts CSV
    accounts    import, export and purge of accounts and contacts
    contacts    one contact at a time: add, link, confirm, leave; accounts by registration code
    rollover    the new school year (class_moves: the class changes file it takes)
    notices     print-ready registration notices (PDF with a mailto: QR code)
    recipients  accounts behind a broadcast's addresses; addresses of grades and classes
    registration  registration by empty mail: requests, completing them with a code or groups
    attempts    wrong registration codes counted per address and network; waits and refusals
    choices     a contact's own choices from its link: public groups, leave, rejoin
    replies     the registration mails (link, completion), through the queue

Migration 010 adds the registration tables (registration_requests, registration_attempts).
"""

from engine.people.audience import FanOut, fan_out, resolve
from engine.people.models import (
    Audience,
    Category,
    DeliveryConditions,
    Group,
    NightWindow,
    Organisation,
    OrgKind,
    SkipReason,
)
from engine.people.store import People

__all__ = [
    "Audience",
    "Category",
    "DeliveryConditions",
    "FanOut",
    "Group",
    "NightWindow",
    "OrgKind",
    "Organisation",
    "People",
    "SkipReason",
    "fan_out",
    "resolve",
]
