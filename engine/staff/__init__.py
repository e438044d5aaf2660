"""Staff: accounts and roles, sign-in and sessions, API keys, rights, broadcasts they make.

The one place that knows the staff tables of migration 011 (the audit log is engine/staff/audit.py).
Modules:

    models     roles, StaffMember, Principal (who acts), AuthError / RightsError / NotFoundError
    store      Staff (pool + sealer + clock + settings + audit key), ``Staff.log``
    passwords  argon2id hashing and the password rule (password_list: the common passwords)
    accounts   add, list, disable, reset another's password; the compulsory-TOTP policy
    backoff    failed sign-ins counted per (login, source); a source that failed waits
    sessions   login with back-off and TOTP, sessions with idle and absolute ends
    credentials  one's own password and TOTP, changed only with the current factors
    apikeys    API keys of the board or a school
    rights     what an actor may see, count and send to
    sending    broadcasts by staff and applications, with owners and idempotency keys
    follow     lists, counts and recipients of the broadcasts an actor may see
    audit      the chained audit log; audit_keys (its key file), audit_checkpoints (heads
               kept outside the database), audit_keeper (serve's daily prune/verify/checkpoint)
"""

from engine.staff.models import (
    ActorKind,
    AuthError,
    NotFoundError,
    Principal,
    RightsError,
    Role,
    StaffMember,
)
from engine.staff.store import Staff

__all__ = [
    "ActorKind",
    "AuthError",
    "NotFoundError",
    "Principal",
    "RightsError",
    "Role",
    "Staff",
    "StaffMember",
]
