"""The seed's Flask app, run by tcpadvisor workload --app flask under gunicorn.

GET /test/<n> sets the key n to 155030303 in Redis, reads it back and returns
it. per_request creates a client per request, as the seed's first version
did: each redis.Redis() has a connection pool of its own, so every request
opens a TCP connection and closes it when the client is dropped. pooled
shares one module-level client, the seed's fix.
"""

import os

import flask
import redis

REDIS_HOST = os.environ["REDIS_HOST"]
REDIS_PORT = int(os.environ["REDIS_PORT"])


def set_and_get(client, n):
    try:
        client.set(n, 155030303)
        return client.get(n)
    except redis.ConnectionError as err:
        # The message names the cause ("Cannot assign requested address"
        # when no local port is left), which the load counts apart.
        return str(err), 500


per_request = flask.Flask("per_request")


@per_request.route("/test/<n>")
def test_per_request(n):
    return set_and_get(redis.Redis(host=REDIS_HOST, port=REDIS_PORT), n)


pooled = flask.Flask("pooled")
shared = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)


@pooled.route("/test/<n>")
def test_pooled(n):
    return set_and_get(shared, n)
