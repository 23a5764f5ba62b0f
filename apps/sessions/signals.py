"""Signals other apps listen to; sessions imports none of them (DESIGN: tokens ──► sessions).

session_ended is sent once per session, after the transaction that ended it commits, with
`session` (the LoginSession, ended_at set) and `reason`. The tokens app tells the session's
relying parties (OpenID Connect Back-Channel Logout 1.0).
"""

from django.dispatch import Signal

session_ended = Signal()
