"""Signals other apps listen to; sessions imports none of them (DESIGN: tokens ──► sessions).

session_ended is sent once per session, inside the transaction that ends it, with `session`
(the LoginSession, ended_at set) and `reason`. A receiver records the work the end calls for
in that transaction, so that it commits or rolls back with the end (nothing is lost to a crash
between the two), and leaves side effects outside the database to transaction.on_commit. The
tokens app records a back-channel delivery per relying party of the session and queues it
after commit (OpenID Connect Back-Channel Logout 1.0).
"""

from django.dispatch import Signal

session_ended = Signal()
