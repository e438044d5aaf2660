"""The message: what one mail is, before any connection is opened.

    checks       what an operator asks to send, checked before anything is stored
    compose      RFC 5322/MIME building: one template per broadcast, per recipient only what
                 differs (personal links, Message-ID), List-Unsubscribe
    dkim         DKIM signing, one key operation per mail (keys loaded by ``_dkim_keys``)
    links        signed, expiring personal link tokens
    verp         VERP return paths, signed so that a forged bounce cannot name another delivery

Nothing is imported here; import the module you need.
"""
