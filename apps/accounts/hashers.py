from django.contrib.auth.hashers import Argon2PasswordHasher


class OwaspArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2id with the OWASP Password Storage Cheat Sheet's parameters: m=19 MiB, t=2, p=1.

    Same algorithm name as Django's, so hashes made with other parameters (and PBKDF2 ones)
    are rehashed with these at the next successful login.
    """

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
