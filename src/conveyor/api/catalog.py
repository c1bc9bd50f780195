"""/v1 catalogue and administration: definitions, queues, compute environments, workers, tokens."""

from __future__ import annotations

from datetime import timedelta

from conveyor import errors, wire
from conveyor.api.http import Call, Reply
from conveyor.engine import validate


def _read(call: Call) -> None:
    call.require(call.principal.reader, "read the catalogue (needs the read or admin scope)")


def _admin(call: Call, what: str) -> None:
    call.require(call.principal.admin, f"{what} (needs the admin scope)")


def _name(call: Call, key: str = "name") -> str:
    return validate.name(key, call.path[key])


# -- definitions ------------------------------------------------------------------------------------


def list_definitions(call: Call) -> Reply:
    _read(call)
    found = call.app.store.definition_list(include_inactive=call.q_bool("include_inactive"))
    return Reply({"definitions": [wire.definition_to_dict(d) for d in found]})


def register_definition(call: Call) -> Reply:
    _admin(call, "register job definitions")
    definition, created = call.app.catalog.register_definition(call.body["name"], call.body["spec"])
    body = {**wire.definition_to_dict(definition), "created": created}
    return Reply(body, 201 if created else 200, {"Location": f"/v1/definitions/{definition.name}"})


def get_definition(call: Call) -> Reply:
    _read(call)
    revision = call.q_int("revision", None, 1, 2**31)
    return Reply(wire.definition_to_dict(call.app.catalog.definition(_name(call), revision)))


def deactivate_definition(call: Call) -> Reply:
    _admin(call, "deactivate job definitions")
    name = _name(call)
    call.app.catalog.deactivate_definition(name)
    return Reply(None, 204)


# -- queues -----------------------------------------------------------------------------------------


def list_queues(call: Call) -> Reply:
    _read(call)
    counts = call.app.store.queue_counts()
    return Reply(
        {"queues": [wire.queue_to_dict(q, counts.get(q.name, {})) for q in call.app.store.queue_list()]}
    )


def get_queue(call: Call) -> Reply:
    _read(call)
    name = _name(call)
    queue = call.app.store.queue_get(name)
    if queue is None:
        raise errors.UnknownQueue(name)
    return Reply(wire.queue_to_dict(queue, call.app.store.queue_counts().get(name, {})))


def put_queue(call: Call) -> Reply:
    """Create or update: members left out keep their value (or the default for a new queue)."""
    _admin(call, "change queues")
    queue, created = call.app.catalog.apply_queue(_name(call), call.body)
    return Reply(wire.queue_to_dict(queue), 201 if created else 200)


def delete_queue(call: Call) -> Reply:
    _admin(call, "delete queues")
    call.app.catalog.delete_queue(_name(call))
    return Reply(None, 204)


# -- compute environments -----------------------------------------------------------------------


def list_environments(call: Call) -> Reply:
    _read(call)
    usage = call.app.store.environment_usage(call.app.clock.now())
    return Reply(
        {
            "environments": [
                wire.environment_to_dict(e, usage.get(e.name)) for e in call.app.store.environment_list()
            ]
        }
    )


def get_environment(call: Call) -> Reply:
    _read(call)
    name = _name(call)
    env = call.app.store.environment_get(name)
    if env is None:
        raise errors.NotFound("compute environment", name)
    return Reply(
        wire.environment_to_dict(env, call.app.store.environment_usage(call.app.clock.now()).get(name))
    )


def put_environment(call: Call) -> Reply:
    """Create or update: members left out keep their value; ``null`` limits mean unlimited."""
    _admin(call, "change compute environments")
    env, created = call.app.catalog.apply_environment(_name(call), call.body)
    return Reply(wire.environment_to_dict(env), 201 if created else 200)


def delete_environment(call: Call) -> Reply:
    _admin(call, "delete compute environments")
    call.app.catalog.delete_environment(_name(call))
    return Reply(None, 204)


# -- workers ----------------------------------------------------------------------------------------


def list_workers(call: Call) -> Reply:
    _read(call)
    found = call.app.store.worker_list(call.app.clock.now(), include_stopped=call.q_bool("include_stopped"))
    return Reply({"workers": [wire.worker_to_dict(w) for w in found]})


# -- tokens -----------------------------------------------------------------------------------------


def list_tokens(call: Call) -> Reply:
    _admin(call, "list tokens")
    found = call.app.tokens.list(include_revoked=call.q_bool("include_revoked"))
    return Reply({"tokens": [wire.token_to_dict(t) for t in found]})


def create_token(call: Call) -> Reply:
    _admin(call, "create tokens")
    body = call.body
    seconds = body.get("expires_in_seconds")
    token, secret = call.app.tokens.create(
        body.get("name", ""),
        body["scopes"],
        None if seconds is None else timedelta(seconds=seconds),
    )
    return Reply({**wire.token_to_dict(token), "token": secret}, 201, {"Location": f"/v1/tokens/{token.id}"})


def revoke_token(call: Call) -> Reply:
    _admin(call, "revoke tokens")
    token_id = call.id_param("token_id")
    call.app.tokens.get(token_id)
    token, changed = call.app.tokens.revoke(token_id)
    return Reply({**wire.token_to_dict(token), "changed": changed})
