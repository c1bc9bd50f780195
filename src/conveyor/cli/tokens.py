"""``conveyor tokens create|list|revoke``: access tokens, straight on the store."""

from __future__ import annotations

import argparse
import sys

from conveyor import wire
from conveyor.cli import render
from conveyor.cli.common import Formatter, add_db, open_app, whole
from conveyor.engine.tokens import parse_duration


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "tokens",
        help="API access tokens: create (shown once), list, revoke",
        epilog="examples:\n  conveyor tokens create --scope admin --name ops\n  conveyor tokens list",
        formatter_class=Formatter,
    )
    ts = t.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ts.add_parser(
        "create",
        help="create a token and print its secret (only this once)",
        epilog=(
            "scopes: admin, read, submit:<queue-glob>, schedules:write,\n"
            "  checks:write (reserved for heartbeat checks, not served yet)\n"
            "examples:\n"
            "  conveyor tokens create --scope admin --name ops\n"
            "  conveyor tokens create --scope submit:reports-* --scope read --expires 30d --name webapp"
        ),
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--scope", action="append", required=True, help="a scope (repeat)")
    p.add_argument("--name", default="", help="a name to recognise the token by")
    p.add_argument("--expires", metavar="DURATION", help="e.g. 90s, 15m, 12h, 30d, 2w (default: never)")
    p.set_defaults(func=cmd_create)
    p = ts.add_parser(
        "list",
        help="tokens (never their secrets)",
        epilog="example: conveyor tokens list --all",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--all", action="store_true", help="include revoked tokens")
    p.set_defaults(func=cmd_list)
    p = ts.add_parser(
        "revoke",
        help="revoke a token (idempotent)",
        epilog="example: conveyor tokens revoke 3",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("id", type=whole)
    p.set_defaults(func=cmd_revoke)


def cmd_create(args: argparse.Namespace) -> int:
    # "" is refused, not taken for "never": an unset shell variable must not make a token for ever
    expires = parse_duration("expires", args.expires) if args.expires is not None else None
    with open_app(args) as app:
        token, secret = app.tokens.create(args.name, args.scope, expires)
    if args.json:
        render.emit_json({**wire.token_to_dict(token), "token": secret})
    else:
        sys.stdout.write(secret + "\n")
        sys.stderr.write(
            f"conveyor: token {token.id} ({', '.join(token.scopes)}) created; the secret above is shown only once\n"
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        tokens = app.tokens.list(include_revoked=args.all)
    if args.json:
        render.emit_json([wire.token_to_dict(t) for t in tokens])
        return 0
    render.table(
        ["id", "name", "scopes", "created", "expires", "last used", "revoked"],
        [
            (
                t.id,
                t.name,
                " ".join(t.scopes),
                render.when(t.created_at),
                render.when(t.expires_at) or "never",
                render.when(t.last_used_at),
                render.when(t.revoked_at),
            )
            for t in tokens
        ],
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        app.tokens.get(args.id)
        token, changed = app.tokens.revoke(args.id)
    if args.json:
        render.emit_json({**wire.token_to_dict(token), "changed": changed})
    else:
        sys.stdout.write(f"token {token.id} revoked{'' if changed else ' (already)'}\n")
    return 0
