"""Signals other apps listen to; accounts imports none of them (DESIGN: everything builds on
accounts).

password_changed is sent with `user` after a save that set a new password: the admin's
password form, `manage.py changepassword`, any set_password() followed by save(). A hash
upgrade at sign-in (the same password, rehashed) is not a change and sends nothing. It is
sent inside the saving transaction when there is one, so what receivers do commits with it.
"""

from django.dispatch import Signal

password_changed = Signal()
