"""The strict baseline for route: a trivial JSON answer through the lean handler's plumbing.

``bench_http --lean-baseline`` serves this module's ``application``: the project's ASGI
application plus ``GET /bench/lean-ping``, answered the way ``routing/api/fast.py`` answers a
route (JWT verified, the same headers, orjson) but without validation or routing. The route /
this ratio is what routing itself costs on top of the cheapest authenticated JSON answer the
server can give; the README's trivial view (``/api/v1/ping``, through Django) is measured as
before.
"""

from moe_project.asgi import application as project
from routing.api import fast

PATH = "/bench/lean-ping"
OK = fast.Answer(200, b'{"ok":true}')
REFUSED = fast.Answer(401, b'{"error":{"code":"not_authenticated","message":"","fields":{}}}')


async def application(scope, receive, send):
    if scope["type"] != "http" or scope["path"] != PATH:
        await project(scope, receive, send)
        return
    headers = dict(scope.get("headers") or ())
    user = fast._authenticate(headers)
    await send_ok(send, OK if user is not None else REFUSED)


async def send_ok(send, answer):
    await fast.send_answer(send, answer, secure=False)
