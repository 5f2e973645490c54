"""JWT authentication for the hot endpoints: stateless and with verified tokens remembered.

Verifying a token's HS256 signature costs tens of microseconds per request in PyJWT (it also
re-checks that the secret is not a PEM key each time). A token that verified once is
remembered by its exact bytes until its own ``exp``; the user comes from the token's claims,
not the database. There is no token blacklist in this project, so nothing can revoke a token
earlier than its expiry, and remembering one changes no outcome.
"""

import threading
import time

from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

# Bounded so that a flood of distinct tokens cannot grow memory; cleared when full.
MAX_REMEMBERED_TOKENS = 10_000


class CachedStatelessJWTAuthentication(JWTStatelessUserAuthentication):
    _verified: dict[bytes, tuple[float, object]] = {}
    _lock = threading.Lock()

    def get_validated_token(self, raw_token: bytes):
        hit = self._verified.get(raw_token)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        token = super().get_validated_token(raw_token)
        expires = token.get("exp")
        if expires is not None:
            with self._lock:
                if len(self._verified) >= MAX_REMEMBERED_TOKENS:
                    self._verified.clear()
                self._verified[raw_token] = (float(expires), token)
        return token
