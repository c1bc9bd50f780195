"""Peer job queues for the side-by-side benchmark (see bench/README.md).

Each entry maps a system name to ``module:Class``; modules are imported lazily
so that one broken peer does not stop the others.
"""

REGISTRY = {
    "conveyor-sqlite": "peers.conveyor_peer:ConveyorSQLitePeer",
    "conveyor-postgres": "peers.conveyor_peer:ConveyorPostgresPeer",
    "celery": "peers.celery_peer:CeleryPeer",
    "rq": "peers.rq_peer:RQPeer",
    "rq-simple": "peers.rq_peer:RQSimplePeer",
    "dramatiq": "peers.dramatiq_peer:DramatiqPeer",
    "huey": "peers.huey_peer:HueyPeer",
    "procrastinate": "peers.procrastinate_peer:ProcrastinatePeer",
    "psycopg-baseline": "peers.baselines:PsycopgBaseline",
    "sqlite-baseline": "peers.baselines:SqliteBaseline",
    "body-baseline": "peers.baselines:BodyBaseline",
}

DEFAULT_PEERS = list(REGISTRY)


def peer_class(name: str):
    import importlib

    mod_name, cls_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(mod_name), cls_name)


def load(name: str):
    return peer_class(name)()
