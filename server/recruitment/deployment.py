"""This deployment's identity: a random id made once and kept in the database (table
`settings`, key `deployment_id`), so that every server process of one deployment shares
it and another deployment (another database) never does."""
from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..models import Setting, db

KEY = "deployment_id"


def deployment_id() -> str:
    """Return this deployment's id (32 hex digits), creating it on first use."""
    value = db.session.execute(select(Setting.value).where(Setting.key == KEY)).scalar()
    if value:
        return value
    db.session.add(Setting(key=KEY, value=secrets.token_hex(16)))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another process made it first: use theirs
    return db.session.execute(select(Setting.value).where(Setting.key == KEY)).scalar_one()
