"""A small web app for the notebook benchmark, run by a job with the Python of the tests'
JupyterLab environment (which has Tornado): GET /apps/<id>/ping answers a few bytes, and a
WebSocket at /apps/<id>/ws echoes every message. Like every Fabriek web app it trusts only
the proxy: a request without the job's secret is answered 403."""

import asyncio
import os

from tornado import web, websocket

SECRET = os.environ["FABRIEK_WEB_SECRET"]
PREFIX = os.environ["FABRIEK_WEB_BASE_URL"]


def trusted(handler):
    return handler.request.headers.get("x-fabriek-web-secret") == SECRET


class Ping(web.RequestHandler):
    def get(self):
        if not trusted(self):
            raise web.HTTPError(403)
        self.write("pong")


class Echo(websocket.WebSocketHandler):
    def prepare(self):
        if not trusted(self):
            raise web.HTTPError(403)

    def check_origin(self, origin):
        return True

    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))


async def main():
    app = web.Application(
        [(PREFIX + "ping", Ping), (PREFIX + "ws", Echo)], websocket_max_message_size=2**30
    )
    app.listen(int(os.environ["FABRIEK_WEB_PORT"]), address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
